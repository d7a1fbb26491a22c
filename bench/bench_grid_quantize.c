/* bench_grid_quantize: the quality of a method on a quantization grid that has no storage format yet
 * (squeeze's asymmetric int4/int3/int2 per group of G columns, GPTQ's and AWQ's own setting): every block
 * matrix of MODEL is rounded onto the grid by RTN, GPTQ or AWQ (these two block by block through
 * sq_calibrate, as `squeeze quantize --method gptq|awq` runs them) and stored back as its fp32 values, the
 * rest unchanged, so that `squeeze ppl` can measure it. Only the values are simulated: the file is
 * fp32-sized.
 *
 *   bench_grid_quantize MODEL OUT.gguf rtn|gptq|awq TYPE GROUP [CALIB_TEXT N_SAMPLES SEQ_LEN SEED ACT_ORDER]
 *
 * Prints the seconds the quantization took. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/quant/awq.h"
#include "compress/quant/gptq.h"
#include "squeeze.h"

typedef struct job {
    const char *type;
    int group, act_order, awq;
} job;

static const char *const suffixes[4][3] = {
    {".attn_q.weight", ".attn_k.weight", ".attn_v.weight"}, /* SQ_TAP_ATTN_IN */
    {".attn_output.weight"},                                /* SQ_TAP_ATTN_OUT */
    {".ffn_gate.weight", ".ffn_up.weight"},                 /* SQ_TAP_FFN_IN */
    {".ffn_down.weight"},                                   /* SQ_TAP_FFN_DOWN */
};

/* Block `layer`'s matrices onto the grid; stats NULL: RTN. */
static SQ_NODISCARD sq_error *quantize_block(void *user, sq_model *model, int layer,
                                             const sq_calib_stats *stats) {
    const job *j = user;
    double *xtx[4] = {0}; /* AWQ: X^T X of the scaled inputs */
    const char *types[SQ_AWQ_N_LINEAR];
    for (int i = 0; i < SQ_AWQ_N_LINEAR; i++) types[i] = j->type;
    if (j->awq) SQ_TRY(sq_awq_scale_block(model, layer, stats, types, j->group, xtx, NULL));
    sq_error *err = NULL;
    for (int p = 0; p < 4 && !err; p++)
        for (int k = 0; k < 3 && suffixes[p][k]; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d%s", layer, suffixes[p][k]);
            sq_tensor_info t;
            sq_model_tensor_info(model, sq_model_tensor_index(model, name), &t);
            const int64_t rows = t.shape[0], cols = t.shape[1];
            float *w = malloc((size_t)(rows * cols) * sizeof *w),
                  *v = malloc((size_t)(rows * cols) * sizeof *v);
            sq_grid g;
            sq_error *err = w && v ? sq_grid_for(j->type, j->group, cols, &g) : NULL;
            if (!err) err = sq_model_read_tensor(model, name, w, rows * cols);
            if (!err && !stats) err = sq_grid_rtn(&g, w, rows, cols, v, NULL);
            if (!err && stats)
                err = sq_gptq_quantize(name, w, rows, cols, stats[p].xtx, stats[p].n_tokens, &g,
                                       &(sq_gptq_options){.act_order = j->act_order}, v, NULL);
            if (!err)
                err = sq_model_edit_tensors(model,
                                            &(sq_tensor_edit){.name = name, .dtype = "f32", .values = v}, 1);
            free(w);
            free(v);
        }
    for (int p = 0; p < 4; p++) free(xtx[p]);
    return err;
}

int main(int argc, char **argv) {
    const int awq = argc == 11 && !strcmp(argv[3], "awq");
    const int gptq = argc == 11 && (!strcmp(argv[3], "gptq") || awq); /* calibrated */
    if (!(argc == 6 && !strcmp(argv[3], "rtn")) && !gptq) {
        fprintf(stderr,
                "usage: bench_grid_quantize MODEL OUT.gguf rtn|gptq|awq TYPE GROUP [CALIB_TEXT N_SAMPLES "
                "SEQ_LEN SEED ACT_ORDER]\n");
        return 2;
    }
    job j = {argv[4], atoi(argv[5]), gptq ? atoi(argv[10]) : 0, awq};
    sq_model *model = NULL;
    sq_calib_samples s = {0};
    char *text = NULL;
    size_t len = 0;
    sq_error *err = sq_model_load(argv[1], NULL, &model);
    const double t0 = sq_monotonic_seconds();
    int bos = -1;
    if (!err && gptq) err = sq_tokenizer_bos_for(sq_model_tokenizer(model), SQ_BOS_AUTO, &bos);
    if (!err && gptq) err = sq_eval_read_text(argv[6], &text, &len);
    if (!err && gptq)
        err = sq_calib_samples_from_text(sq_model_tokenizer(model), text, len, atoi(argv[7]), atoi(argv[8]),
                                         bos, strtoull(argv[9], NULL, 10), &s);
    if (!err && gptq) {
        const sq_calib_method m = {.stats = SQ_CALIB_XTX | SQ_CALIB_SUM_ABS,
                                   .apply_block = quantize_block,
                                   .changes_weights = 1,
                                   .user = &j};
        err = sq_calibrate(model, &s, &m, NULL);
    }
    sq_model_info info;
    if (model) sq_model_get_info(model, &info);
    for (int l = 0; !err && !gptq && l < info.n_layers; l++) err = quantize_block(&j, model, l, NULL);
    const double seconds = sq_monotonic_seconds() - t0;
    if (!err) err = sq_model_save(model, argv[2], SQ_FORMAT_GGUF);
    free(text);
    sq_calib_samples_free(&s);
    sq_model_free(model);
    if (err) {
        fprintf(stderr, "bench_grid_quantize: %s\n", sq_error_message(err));
        sq_error_free(err);
        return 1;
    }
    printf("%.2f\n", seconds);
    return 0;
}
