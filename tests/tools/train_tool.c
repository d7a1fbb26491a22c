/* train_tool: one forward + backward of the trainer (src/train) on given tokens and adapters, for the
 * reference test against the float64 forward pass (tests/py/test_train.py).
 *
 *   train_tool MODEL TOKENS.i32 N_SEQS SEQ_LEN RANK ALPHA TARGETS CE_W KD_W KD_T TEACHER.f32|- ADAPTERS.f32|-
 * OUT
 *
 * TOKENS int32 [N_SEQS][SEQ_LEN]; TEACHER float32 [N_SEQS][SEQ_LEN][vocab] (KD_W > 0); ADAPTERS the float32
 * values of every adapter array in the trainer's order (layer, then q k v o gate up down among TARGETS, A
 * [rank][in] then B [out][rank]; "-": as created). Writes OUT.loss (the loss, text), OUT.lora (the adapters'
 * gradients, same order), OUT.weights (every block's gradients: attn_norm, ffn_norm, then the seven linear
 * weights [out][in] in that order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/trainer.h"

static void *read_exact(const char *path, size_t bytes) {
    FILE *fp = fopen(path, "rb");
    void *buf = malloc(bytes ? bytes : 1);
    if (!fp || !buf || fread(buf, 1, bytes, fp) != bytes) {
        fprintf(stderr, "train_tool: cannot read %zu bytes from %s\n", bytes, path);
        exit(1);
    }
    fclose(fp);
    return buf;
}

static SQ_TAKES_ERROR(1) void check(sq_error *err) {
    if (!err) return;
    fprintf(stderr, "train_tool: %s\n", sq_error_message(err));
    sq_error_free(err);
    exit(1);
}

static void write_all(FILE *fp, const float *v, int64_t n) {
    if (fwrite(v, sizeof(float), (size_t)n, fp) != (size_t)n) {
        fprintf(stderr, "train_tool: write failed\n");
        exit(1);
    }
}

typedef struct teacher_file {
    const float *logits; /* [n_seqs][seq_len][vocab] */
    int vocab;
} teacher_file;

static SQ_NODISCARD sq_error *teacher(void *user, int seq, const int32_t *tokens, int seq_len,
                                      float *logits) {
    (void)tokens;
    const teacher_file *tf = user;
    memcpy(logits, tf->logits + (size_t)seq * seq_len * tf->vocab,
           (size_t)seq_len * tf->vocab * sizeof(float));
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 14) {
        fprintf(stderr, "usage: train_tool MODEL TOKENS N_SEQS SEQ_LEN RANK ALPHA TARGETS CE_W KD_W KD_T "
                        "TEACHER|- ADAPTERS|- OUT\n");
        return 2;
    }
    sq_model *model;
    check(sq_model_load(argv[1], NULL, &model));
    const int n_seqs = atoi(argv[3]), seq_len = atoi(argv[4]);
    int32_t *tokens = read_exact(argv[2], (size_t)n_seqs * seq_len * sizeof(int32_t));
    unsigned targets = 0;
    if (atoi(argv[5]) > 0) check(sq_lora_parse_targets(argv[7], &targets));
    sq_trainer_options o = {.n_threads = 2,
                            .max_tokens = n_seqs * seq_len,
                            .lora_rank = atoi(argv[5]),
                            .lora_alpha = (float)atof(argv[6]),
                            .lora_targets = targets,
                            .seed = 1,
                            .weight_grads = 1};
    sq_trainer *t;
    check(sq_trainer_create(model, &o, &t));
    if (strcmp(argv[12], "-")) {
        int64_t total = 0;
        for (int i = 0; i < t->n_params; i++) total += t->params[i].n;
        float *v = read_exact(argv[12], (size_t)total * sizeof(float));
        const float *p = v;
        for (int i = 0; i < t->n_params; p += t->params[i].n, i++)
            memcpy(t->params[i].p, p, (size_t)t->params[i].n * sizeof(float));
        free(v);
    }
    teacher_file tf = {NULL, model->cfg.vocab_size};
    sq_loss_options lo = {(float)atof(argv[8]), (float)atof(argv[9]), (float)atof(argv[10]), teacher, &tf};
    if (lo.kd_weight > 0)
        tf.logits = read_exact(argv[11], (size_t)n_seqs * seq_len * tf.vocab * sizeof(float));
    sq_loss_value value;
    sq_trainer_zero_grad(t);
    check(sq_trainer_run(t, tokens, n_seqs, seq_len, &lo, 1, &value));

    char path[4096];
    snprintf(path, sizeof path, "%s.loss", argv[13]);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "%.17g %.17g %.17g\n", value.loss, value.ce, value.kd);
    fclose(fp);
    snprintf(path, sizeof path, "%s.lora", argv[13]);
    fp = fopen(path, "wb");
    for (int i = 0; i < t->n_params; i++) write_all(fp, t->params[i].g, t->params[i].n);
    fclose(fp);
    snprintf(path, sizeof path, "%s.weights", argv[13]);
    fp = fopen(path, "wb");
    for (int l = 0; l < t->n_layers; l++) {
        const tr_layer *L = &t->layers[l];
        write_all(fp, L->g_attn_norm, t->dim);
        write_all(fp, L->g_ffn_norm, t->dim);
        for (int i = 0; i < TR_N_LINEAR; i++)
            write_all(fp, L->lin[i].gw, (int64_t)L->lin[i].out * L->lin[i].in);
    }
    fclose(fp);
    sq_trainer_free(t);
    free((void *)tf.logits);
    free(tokens);
    sq_model_free(model);
    return 0;
}
