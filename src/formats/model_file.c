/* Model files: which format a path holds, and the dispatch to that format's loader or writer (the public
 * sq_model_load / sq_model_save). A loader fills an empty model; sq_model_bind then checks it. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "formats/formats.h"
#include "tokenizer/tokenizer.h"

static int is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A tokenizer next to the model file: tokenizer.model, then tokenizer.bin, then tokenizer.json. */
static SQ_NODISCARD sq_error *find_tokenizer_beside(const char *model_path, sq_tokenizer **out) {
    *out = NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    static const char *const names[] = {"tokenizer.model", "tokenizer.bin", "tokenizer.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(p, &st) == 0) return sq_tokenizer_load(p, out);
    }
    return NULL;
}

sq_error *sq_model_load(const char *path, const sq_load_options *opts, sq_model **out) {
    *out = NULL;
    sq_model *m = sq_model_new();
    if (!m) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    sq_error *err = NULL;
    if (is_directory(path)) {
        err = sq_hf_load(path, m);
    } else {
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            sq_model_free(m);
            return sq_errorf(SQ_ERR_IO, "%s: cannot open model", path);
        }
        char magic[4] = {0};
        size_t n = fread(magic, 1, 4, fp);
        fclose(fp);
        err = n == 4 && memcmp(magic, "GGUF", 4) == 0 ? sq_gguf_load(path, m) : sq_llama2c_load(path, m);
    }
    if (!err) err = sq_model_bind(m, path);
    if (!err && opts && opts->tokenizer_path) {
        sq_tokenizer_free(m->tokenizer);
        m->tokenizer = NULL;
        err = sq_tokenizer_load(opts->tokenizer_path, &m->tokenizer);
        if (!err && sq_tokenizer_vocab_size(m->tokenizer) > m->cfg.vocab_size)
            err = sq_errorf(SQ_ERR_FORMAT, "%s: tokenizer has %d tokens but the model only %d",
                            opts->tokenizer_path, sq_tokenizer_vocab_size(m->tokenizer), m->cfg.vocab_size);
    } else if (!err && !m->tokenizer && !is_directory(path)) {
        err = find_tokenizer_beside(path, &m->tokenizer);
        /* A tokenizer that merely sits in the same folder but cannot belong to this model (stories260K beside
         * the Llama-2 tokenizer) is left out: the model loads without one and callers that need it say so. */
        if (!err && m->tokenizer && sq_tokenizer_vocab_size(m->tokenizer) > m->cfg.vocab_size) {
            sq_tokenizer_free(m->tokenizer);
            m->tokenizer = NULL;
        }
    }
    if (!err && m->tokenizer)
        err = sq_model_add_eos(&m->cfg, sq_tokenizer_eos(m->tokenizer), &m->warnings, path);
    if (err) {
        sq_model_free(m);
        return err;
    }
    *out = m;
    return NULL;
}

sq_error *sq_model_save(const sq_model *m, const char *path, sq_file_format format) {
    switch (format) {
    case SQ_FORMAT_LLAMA2C:
        return sq_llama2c_save(m, path);
    case SQ_FORMAT_SAFETENSORS:
        return sq_hf_save(m, path);
    case SQ_FORMAT_GGUF:
        return sq_gguf_save(m, path);
    }
    return sq_errorf(SQ_ERR_INVALID_ARG, "unknown output format %d", (int)format);
}
