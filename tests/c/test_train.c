/* Training (squeeze.h "training") on stories260K (a real llama2.c checkpoint: GQA, 5 blocks, vocab 512):
 *  - the trainer's forward equals the inference engine's: its cross-entropy equals the one computed in double
 *    from sq_forward's logits (relative 1e-5), and distilling against the engine's own logits gives KL ~ 0;
 *  - a run stopped after 2 steps and resumed from its checkpoint ends bit for bit where an uninterrupted
 *    4-step run ends; a truncated or mismatched checkpoint is refused and changes nothing;
 *  - adapters written as PEFT files and folded in at load (sq_model_apply_lora) give the model the trainer
 *    trained (its loss within 1e-5), and the same weights as sq_trainer_merge, bit for bit; merging into a
 *    base stored in f16 keeps f16;
 *  - Taylor+ depth pruning never removes the protected blocks and refuses a request they leave no room for;
 *  - bad requests (options, tokens, adapter files) fail with messages naming the problem.
 * Gradients themselves are checked against float64 finite differences in tests/py/test_train.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

enum { N_SEQS = 3, SEQ = 24, V = 512 };

static sq_model *load260k(void) {
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    return m;
}

static void random_tokens(int32_t *ids, int n, uint64_t seed) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(sq_test_rand_u64(&seed) % V);
}

typedef struct engine_teacher {
    sq_context *ctx;
} engine_teacher;

static SQ_NODISCARD sq_error *teacher(void *user, int seq, const int32_t *tokens, int seq_len,
                                      float *logits) {
    (void)seq;
    engine_teacher *t = user;
    sq_error *err = sq_seq_truncate(t->ctx, 0, 0);
    if (err) return err;
    sq_seq_batch b = {
        .seq_id = 0, .tokens = tokens, .n_tokens = seq_len, .logits_mode = SQ_LOGITS_ALL, .logits = logits};
    return sq_forward(t->ctx, &b, 1);
}

/* Mean next-token cross-entropy of the sequences from the engine's logits, in double. */
static double engine_ce(const sq_model *m, const int32_t *ids) {
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_ctx = SEQ, .n_threads = 2}, &ctx));
    float *logits = malloc((size_t)SEQ * V * sizeof *logits);
    double ce = 0;
    for (int s = 0; s < N_SEQS; s++) {
        sq_test_ok(sq_seq_truncate(ctx, 0, 0));
        sq_seq_batch b = {.seq_id = 0,
                          .tokens = ids + s * SEQ,
                          .n_tokens = SEQ,
                          .logits_mode = SQ_LOGITS_ALL,
                          .logits = logits};
        sq_test_ok(sq_forward(ctx, &b, 1));
        for (int t = 0; t < SEQ - 1; t++) {
            const float *z = logits + (size_t)t * V;
            double mx = -INFINITY, sum = 0;
            for (int i = 0; i < V; i++) mx = fmax(mx, z[i]);
            for (int i = 0; i < V; i++) sum += exp(z[i] - mx);
            ce += mx + log(sum) - z[ids[s * SEQ + t + 1]];
        }
    }
    free(logits);
    sq_context_free(ctx);
    return ce / (N_SEQS * (SEQ - 1));
}

static sq_trainer *make_trainer(const sq_model *m, int rank) {
    sq_trainer *t;
    sq_trainer_options o = {.n_threads = 2,
                            .max_tokens = N_SEQS * SEQ,
                            .lora_rank = rank,
                            .lora_alpha = 8,
                            .lora_targets = SQ_LORA_ALL,
                            .seed = 5};
    sq_test_ok(sq_trainer_create(m, &o, &t));
    return t;
}

static void test_forward_matches_engine(void **state) {
    (void)state;
    sq_model *m = load260k();
    int32_t ids[N_SEQS * SEQ];
    random_tokens(ids, N_SEQS * SEQ, 11);
    sq_trainer *t = make_trainer(m, 0);
    sq_loss_value v;
    sq_test_ok(sq_trainer_run(t, ids, N_SEQS, SEQ, &(sq_loss_options){.ce_weight = 1}, 0, &v));
    double ref = engine_ce(m, ids);
    assert_true(fabs(v.ce - ref) <= 1e-5 * ref);
    assert_true(v.loss == v.ce);
    /* distilling from the same model's engine logits: KL zero up to fp32 rounding */
    engine_teacher et;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_ctx = SEQ, .n_threads = 2}, &et.ctx));
    sq_loss_options kd = {.kd_weight = 1, .kd_temp = 2, .teacher = teacher, .teacher_user = &et};
    sq_test_ok(sq_trainer_run(t, ids, N_SEQS, SEQ, &kd, 1, &v));
    assert_true(v.kd >= -1e-6 && v.kd < 1e-6);
    sq_context_free(et.ctx);
    sq_trainer_free(t);
    sq_model_free(m);
}

static void train_steps(sq_trainer *t, int from, int to) {
    sq_adamw_options ao = {0, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f};
    for (int s = from; s < to; s++) {
        int32_t ids[N_SEQS * SEQ];
        random_tokens(ids, N_SEQS * SEQ, 100 + (uint64_t)s);
        sq_loss_value v;
        double norm;
        sq_trainer_zero_grad(t);
        sq_test_ok(sq_trainer_run(t, ids, N_SEQS, SEQ, &(sq_loss_options){.ce_weight = 1}, 1, &v));
        ao.lr = sq_lr_schedule(3e-3f, s, 1, 4, 0.1f);
        sq_test_ok(sq_trainer_adamw_step(t, &ao, &norm));
        assert_true(norm > 0);
    }
}

static void test_resume_bit_exact(void **state) {
    (void)state;
    sq_model *m = load260k();
    char a_path[512], c_path[512], half[512];
    snprintf(a_path, sizeof a_path, "%s", sq_test_work("train_a.state"));
    snprintf(c_path, sizeof c_path, "%s", sq_test_work("train_c.state"));
    snprintf(half, sizeof half, "%s", sq_test_work("train_half.state"));
    sq_trainer *a = make_trainer(m, 4);
    train_steps(a, 0, 4);
    sq_test_ok(sq_trainer_save_state(a, a_path));
    sq_trainer *b = make_trainer(m, 4);
    train_steps(b, 0, 2);
    sq_test_ok(sq_trainer_save_state(b, half));
    sq_trainer_free(b);
    sq_trainer *c = make_trainer(m, 4);
    sq_test_ok(sq_trainer_load_state(c, half));
    assert_int_equal(sq_trainer_steps(c), 2);
    train_steps(c, 2, 4);
    sq_test_ok(sq_trainer_save_state(c, c_path));
    size_t na, nc;
    char *da = sq_test_read_file(a_path, &na), *dc = sq_test_read_file(c_path, &nc);
    assert_int_equal(na, nc);
    assert_memory_equal(da, dc, na);
    /* the adapters moved: the state is not the initial one */
    sq_trainer *fresh = make_trainer(m, 4);
    sq_test_ok(sq_trainer_save_state(fresh, half));
    size_t nf;
    char *df = sq_test_read_file(half, &nf);
    assert_int_equal(nf, na);
    assert_true(memcmp(df, da, na) != 0);
    /* a truncated checkpoint, and one of another rank, are refused and change nothing */
    sq_test_write_file(half, da, na - 5);
    sq_test_fails_with(sq_trainer_load_state(fresh, half), "truncated");
    sq_test_ok(sq_trainer_save_state(fresh, half));
    char *again = sq_test_read_file(half, &nf);
    assert_memory_equal(again, df, nf);
    sq_trainer *r8 = make_trainer(m, 8);
    sq_test_fails_with(sq_trainer_load_state(r8, a_path), "rank 4");
    sq_test_write_file(half, "SQTRAIN0", 8);
    sq_test_fails_with(sq_trainer_load_state(fresh, half), "not a squeeze training checkpoint");
    free(da), free(dc), free(df), free(again);
    sq_trainer_free(a), sq_trainer_free(c), sq_trainer_free(fresh), sq_trainer_free(r8);
    sq_model_free(m);
}

static void test_adapter_files(void **state) {
    (void)state;
    sq_model *m = load260k();
    sq_trainer *t = make_trainer(m, 4);
    train_steps(t, 0, 3);
    int32_t ids[N_SEQS * SEQ];
    random_tokens(ids, N_SEQS * SEQ, 999);
    sq_loss_value trained;
    sq_test_ok(sq_trainer_run(t, ids, N_SEQS, SEQ, &(sq_loss_options){.ce_weight = 1}, 0, &trained));
    char dir[512];
    snprintf(dir, sizeof dir, "%s", sq_test_work("train_adapter"));
    sq_test_ok(sq_trainer_save_adapter(t, dir));

    sq_model *applied = load260k(), *merged = load260k();
    sq_test_ok(sq_model_apply_lora(applied, dir));
    sq_test_ok(sq_trainer_merge(t, merged));
    for (int i = 0; i < sq_model_n_tensors(merged); i++) {
        sq_tensor_info ti;
        sq_model_tensor_info(merged, i, &ti);
        int64_t n = 1;
        for (int d = 0; d < ti.ndim; d++) n *= ti.shape[d];
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        sq_test_ok(sq_model_read_tensor(merged, ti.name, x, n));
        sq_test_ok(sq_model_read_tensor(applied, ti.name, y, n));
        assert_memory_equal(x, y, (size_t)n * sizeof *x);
        free(x), free(y);
    }
    /* the engine on the folded model computes the trained model */
    double ce = engine_ce(applied, ids);
    assert_true(fabs(ce - trained.ce) <= 1e-5 * ce);
    assert_true(fabs(ce - engine_ce(m, ids)) > 1e-3); /* and training changed it */

    /* a base in another format keeps it: the merged weights are re-encoded (here f16) */
    sq_model *half = load260k();
    sq_tensor_edit e[5];
    char names[5][64];
    for (int l = 0; l < 5; l++) {
        snprintf(names[l], sizeof names[l], "blk.%d.ffn_up.weight", l);
        e[l] = (sq_tensor_edit){.name = names[l], .dtype = "f16"};
    }
    sq_test_ok(sq_model_edit_tensors(half, e, 5));
    sq_test_ok(sq_trainer_merge(t, half));
    for (int l = 0; l < 5; l++) {
        sq_tensor_info ti;
        sq_model_tensor_info(half, sq_model_tensor_index(half, names[l]), &ti);
        assert_string_equal(ti.dtype, "f16");
        int64_t n = ti.shape[0] * ti.shape[1];
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        sq_test_ok(sq_model_read_tensor(half, names[l], x, n));
        sq_test_ok(sq_model_read_tensor(merged, names[l], y, n)); /* f32 W + s B A */
        assert_true(sq_test_rel_err(x, y, (size_t)n) < 2e-3);     /* f16 of f16(W) + s B A */
        free(x), free(y);
    }
    sq_model_free(half);

    /* the adapter files checked against the model */
    char path[600];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    size_t n;
    char *cfg = sq_test_read_file(path, &n);
    assert_non_null(strstr(cfg, "\"peft_type\":\t\"LORA\""));
    char *r = strstr(cfg, "\"r\":\t4");
    assert_non_null(r);
    r[5] = '6'; /* r = 6: A and B shapes no longer fit */
    sq_test_write_file(path, cfg, n);
    sq_test_fails_with(sq_model_apply_lora(applied, dir), "should be [6,");
    r[5] = '4';
    char *dora = strstr(cfg, "\"use_dora\":\tfalse");
    assert_non_null(dora);
    memcpy(dora + 12, "true, ", 6);
    sq_test_write_file(path, cfg, n);
    sq_test_fails_with(sq_model_apply_lora(applied, dir), "DoRA");
    sq_test_write_file(path, "{\"peft_type\": \"LORA\", \"r\": 4", 27);
    sq_test_fails_with(sq_model_apply_lora(applied, dir), "not valid JSON");
    free(cfg);
    sq_test_fails_with(sq_model_apply_lora(applied, sq_test_work("no_such_adapter")), "no_such_adapter");
    sq_trainer_free(t);
    sq_model_free(applied), sq_model_free(merged), sq_model_free(m);
}

static void test_taylor_plus(void **state) {
    (void)state;
    int32_t ids[4 * 32];
    random_tokens(ids, 4 * 32, 3);
    sq_calib_samples calib;
    sq_test_ok(sq_calib_samples_from_ids(ids, 4, 32, &calib));
    sq_model *m = load260k();
    sq_prune_options o = {.method = SQ_PRUNE_DEPTH,
                          .n_remove = 2,
                          .criterion = SQ_DEPTH_TAYLOR,
                          .calib = &calib,
                          .n_threads = 2};
    /* 5 blocks: ceil(5/8) = 1 first and ceil(5/16) = 1 last kept */
    sq_prune_result r;
    sq_test_ok(sq_prune(m, &o, &r));
    assert_int_equal(r.n_removed, 2);
    for (int k = 0; k < 2; k++) assert_true(r.removed[k] >= 1 && r.removed[k] <= 3);
    /* the two lowest of the candidates 1..3 */
    for (int l = 1; l <= 3; l++) {
        int gone = r.removed[0] == l || r.removed[1] == l;
        for (int k = 1; k <= 3; k++)
            if (!gone && k != l && (r.removed[0] == k || r.removed[1] == k))
                assert_true(r.scores[k] <= r.scores[l]);
        assert_true(r.scores[l] > 0);
    }
    sq_prune_result_free(&r);
    sq_model_free(m);
    m = load260k();
    o.n_remove = 4;
    sq_test_fails_with(sq_prune_check(m, &o), "keeps the first 1 and last 1 of 5 blocks");
    o.taylor_keep_first = o.taylor_keep_last = -1; /* none protected: any 4 of 5 may go */
    sq_test_ok(sq_prune_check(m, &o));
    sq_model_free(m);
    sq_calib_samples_free(&calib);
}

static void test_bad_requests(void **state) {
    (void)state;
    sq_model *m = load260k();
    sq_trainer *t;
    sq_trainer_options o = {.max_tokens = 8, .lora_rank = -1};
    sq_test_fails_with(sq_trainer_create(m, &o, &t), "rank -1");
    o.lora_rank = 4;
    sq_test_fails_with(sq_trainer_create(m, &o, &t), "name no linear layer");
    unsigned targets;
    sq_test_fails_with(sq_lora_parse_targets("q,gate,mlp", &targets), "'mlp'");
    sq_test_ok(sq_lora_parse_targets("q_proj,mlp.down_proj,up", &targets));
    assert_int_equal(targets, SQ_LORA_Q | SQ_LORA_DOWN | SQ_LORA_UP);
    o.lora_targets = targets;
    o.lora_alpha = 8;
    sq_test_ok(sq_trainer_create(m, &o, &t));
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 512};
    sq_loss_value v;
    sq_test_fails_with(sq_trainer_run(t, ids, 1, 8, &(sq_loss_options){.ce_weight = 1}, 1, &v),
                       "token id 512 at 7");
    sq_test_fails_with(sq_trainer_run(t, ids, 2, 8, &(sq_loss_options){.ce_weight = 1}, 1, &v), "at most 8");
    sq_test_fails_with(sq_trainer_run(t, ids, 1, 7, &(sq_loss_options){.kd_weight = 1, .kd_temp = 1}, 1, &v),
                       "needs a teacher");
    sq_trainer_free(t);
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_engine), cmocka_unit_test(test_resume_bit_exact),
        cmocka_unit_test(test_adapter_files),          cmocka_unit_test(test_taylor_plus),
        cmocka_unit_test(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
