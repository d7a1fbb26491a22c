#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_fail(sq_error *err) {
    fprintf(stderr, "squeeze: %s\n", sq_error_message(err));
    sq_error_free(err);
    return 1;
}

SQ_NODISCARD sq_error *cli_load_model(const char *path, const sq_load_options *opts, sq_model **out) {
    sq_error *err = sq_model_load(path, opts, out);
    if (err) return err;
    for (int i = 0; i < sq_model_n_warnings(*out); i++)
        fprintf(stderr, "squeeze: warning: %s\n", sq_model_warning(*out, i));
    return NULL;
}

SQ_NODISCARD sq_error *cli_load_model_lora(const char *path, const sq_load_options *opts, const char *lora,
                                           sq_model **out) {
    sq_error *err = cli_load_model(path, opts, out);
    if (err || !lora) return err;
    if ((err = sq_model_apply_lora(*out, lora))) {
        sq_model_free(*out);
        *out = NULL;
    }
    return err;
}

SQ_NODISCARD sq_error *cli_load_tokenizer(const char *path, sq_tokenizer **out) {
    sq_error *err = sq_tokenizer_load(path, out);
    if (err) return err;
    for (int i = 0; i < sq_tokenizer_n_warnings(*out); i++)
        fprintf(stderr, "squeeze: warning: %s\n", sq_tokenizer_warning(*out, i));
    return NULL;
}

uint64_t cli_clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32) &
           ((1ull << 53) - 1);
}

int cli_bos_policy(const char *verb, int bos, int no_bos, sq_bos_policy *policy) {
    *policy = bos ? SQ_BOS_ADD : no_bos ? SQ_BOS_NONE : SQ_BOS_AUTO;
    return bos && no_bos ? cli_usage_error(verb, "--bos and --no-bos exclude each other") : CLI_CONTINUE;
}

/* The flag's choices are the type names, so every text the parser lets through names one. */
sq_kv_type cli_kv_type(const char *text) {
    for (sq_kv_type t = SQ_KV_F32; text && sq_kv_type_name(t); t++)
        if (!strcmp(text, sq_kv_type_name(t))) return t;
    return SQ_KV_F32;
}

int cli_calib_samples(const char *verb, const sq_model *model, const char *path, int n_samples, int seq_len,
                      long seed, sq_calib_samples *out) {
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (!tok)
        return cli_usage_error(verb, "--calib %s: the model has no tokenizer (give one with --tokenizer)",
                               path);
    if (seq_len > info.max_seq_len) {
        fprintf(stderr, "squeeze: calibration windows of %d tokens (the model's context) instead of %d\n",
                info.max_seq_len, seq_len);
        seq_len = info.max_seq_len;
    }
    int bos;
    sq_error *err = sq_tokenizer_bos_for(tok, SQ_BOS_AUTO, &bos);
    char *text = NULL;
    size_t len = 0;
    if (!err) err = sq_eval_read_text(path, &text, &len);
    if (!err)
        err = sq_calib_samples_from_text(tok, text, len, n_samples, seq_len, bos,
                                         seed < 0 ? cli_clock_seed() : (uint64_t)seed, out);
    free(text);
    return err ? cli_fail(err) : CLI_CONTINUE;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

sq_file_format cli_output_format(const char *out, const char *to) {
    if (!to) to = ends_with(out, ".gguf") ? "gguf" : ends_with(out, ".bin") ? "llama2c" : "hf";
    return !strcmp(to, "gguf")      ? SQ_FORMAT_GGUF
           : !strcmp(to, "llama2c") ? SQ_FORMAT_LLAMA2C
                                    : SQ_FORMAT_SAFETENSORS;
}

void cli_note_lowrank(const char *verb, const sq_model *model, const char *out) {
    sq_model_info mi;
    sq_model_get_info(model, &mi);
    int n = 0;
    for (int l = 0; l < mi.n_layers; l++) {
        sq_layer_info li;
        sq_error_free(sq_model_layer_info(model, l, &li));
        for (int i = 0; i < 7; i++) n += li.lowrank_rank[i] > 0;
    }
    if (n)
        fprintf(stderr,
                "squeeze %s: note: %s holds %d low-rank (factorised) weights, squeeze's own tensors "
                "(docs/formats.md): llama.cpp cannot load it\n",
                verb, out, n);
}
