/* Format round trips on tiny random models (GQA, biases, tied and untied outputs,
 * f32/f16/bf16/q8_0/q4_0/q4_1/w8a8, sliding window, explicit head_dim, Llama-3 RoPE scaling): every writer's
 * output must load back as the same config and bit-identical tensors, once the RoPE row order is undone. Also
 * checks that the RoPE row permutation really turns halves-RoPE weights into interleaved-RoPE weights. */
#include <math.h>
#include <sys/stat.h>

#include "formats/rope_permute.h"
#include "formats/rope_scaling.h"
#include "test_formats_util.h"

/* Applies RoPE at position pos to the first rd elements of one head vector in the given convention (plain
 * reference). */
static void rope_ref(float *v, int rd, int pos, sq_rope_style style) {
    for (int i = 0; i < rd / 2; i++) {
        double a = pos * pow(10000.0, -2.0 * i / rd), c = cos(a), s = sin(a);
        int i0 = style == SQ_ROPE_INTERLEAVED ? 2 * i : i,
            i1 = style == SQ_ROPE_INTERLEAVED ? 2 * i + 1 : i + rd / 2;
        double x0 = v[i0], x1 = v[i1];
        v[i0] = (float)(x0 * c - x1 * s);
        v[i1] = (float)(x0 * s + x1 * c);
    }
}

static void test_rope_permutation_semantics(void **state) {
    (void)state;
    enum { HEADS = 3, HD = 8, DIM = 5, ROWS = HEADS * HD };
    uint64_t seed = 7;
    float w[ROWS * DIM], wp[ROWS * DIM], back[ROWS * DIM], x[DIM];
    for (int i = 0; i < ROWS * DIM; i++) w[i] = sq_test_rand_uniform(&seed, -1, 1);
    for (int i = 0; i < DIM; i++) x[i] = sq_test_rand_uniform(&seed, -1, 1);
    for (int RD = HD; RD >= 4; RD -= 4) { /* whole heads, and partial rotary (the rest stays in place) */
        sq_rope_permute_rows(w, wp, ROWS, DIM * sizeof(float), HD, RD, SQ_ROPE_HALVES, SQ_ROPE_INTERLEAVED);
        sq_rope_permute_rows(wp, back, ROWS, DIM * sizeof(float), HD, RD, SQ_ROPE_INTERLEAVED,
                             SQ_ROPE_HALVES);
        assert_memory_equal(w, back, sizeof w);
        for (int pos = 0; pos < 5; pos++) {
            float qh[ROWS], qi[ROWS];
            for (int r = 0; r < ROWS; r++) {
                qh[r] = qi[r] = 0;
                for (int k = 0; k < DIM; k++) qh[r] += w[r * DIM + k] * x[k], qi[r] += wp[r * DIM + k] * x[k];
            }
            for (int h = 0; h < HEADS; h++) {
                rope_ref(qh + h * HD, RD, pos, SQ_ROPE_HALVES);
                rope_ref(qi + h * HD, RD, pos, SQ_ROPE_INTERLEAVED);
                /* the same rotated query, its elements in the other order: pair i member j */
                for (int i = 0; i < RD / 2; i++)
                    for (int j = 0; j < 2; j++)
                        assert_float_equal(qi[h * HD + 2 * i + j], qh[h * HD + j * RD / 2 + i], 1e-6);
                for (int i = RD; i < HD; i++) assert_float_equal(qi[h * HD + i], qh[h * HD + i], 1e-6);
            }
        }
    }
    assert_true(sq_rope_rotates_rows("blk.3.attn_k.bias"));
    assert_false(sq_rope_rotates_rows("blk.3.attn_v.weight"));
    assert_false(sq_rope_rotates_rows("token_embd.weight"));
}

static void test_llama3_factor_fit(void **state) {
    (void)state;
    const sq_rope_scaling cases[] = {{SQ_ROPE_SCALING_LLAMA3, 8, 1, 4, 8192},
                                     {SQ_ROPE_SCALING_LLAMA3, 32, 1, 4, 8192},
                                     {SQ_ROPE_SCALING_LLAMA3, 16, 2, 8, 4096}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        sq_model_config c = {
            .head_dim = 128, .rope_dims = 128, .rope_theta = 500000.0f, .rope_scaling = cases[k]};
        float f[64];
        sq_llama3_rope_factors(&c, f);
        sq_model_config fit = {.head_dim = 128, .rope_dims = 128, .rope_theta = 500000.0f};
        sq_test_ok(sq_llama3_from_factors("x", f, cases[k].original_max_pos, &fit));
        assert_int_equal(fit.rope_scaling.type, SQ_ROPE_SCALING_LLAMA3);
        assert_float_equal(fit.rope_scaling.factor, cases[k].factor, 1e-4);
        assert_float_equal(fit.rope_scaling.low_freq_factor, cases[k].low_freq_factor, 1e-3);
        assert_float_equal(fit.rope_scaling.high_freq_factor, cases[k].high_freq_factor, 1e-3);
    }
    float bogus[64];
    for (int i = 0; i < 64; i++) bogus[i] = i % 2 ? 1.0f : 3.0f;
    sq_model_config c = {.head_dim = 128, .rope_dims = 128, .rope_theta = 500000.0f};
    sq_test_fails_with(sq_llama3_from_factors("x.gguf", bogus, 0, &c), "does not follow Llama-3");
}

typedef struct rt_case {
    const char *label;
    tiny_spec spec;
    int gguf, hf, llama2c; /* 1: must round-trip, 0: must be refused */
    const char *refusal;   /* expected words of the refusals */
} rt_case;

static const rt_case cases[] = {
    {"llama-gqa-f32-untied",
     {"llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_F32, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED},
     1,
     1,
     1,
     NULL},
    {"llama-f16-tied",
     {"llama", 64, 2, 4, 4, 16, 96, 50, SQ_DTYPE_F16, 1, 0, 0, 0, SQ_ROPE_HALVES},
     1,
     1,
     1,
     NULL},
    {"qwen2-bias-f16-tied",
     {"qwen2", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_F16, 1, 1, 0, 0, SQ_ROPE_HALVES},
     1,
     1,
     0,
     "only llama-architecture"},
    {"mistral-bf16-window-headdim",
     {"mistral", 64, 2, 4, 2, 24, 96, 70, SQ_DTYPE_BF16, 0, 0, 16, 0, SQ_ROPE_HALVES},
     1,
     1,
     0,
     "sliding-window"},
    {"llama-q8_0",
     {"llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_Q8_0, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED},
     1,
     0,
     0,
     "q8_0"},
    {"llama-q4_0-halves",
     {"llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_Q4_0, 1, 0, 0, 0, SQ_ROPE_HALVES},
     1,
     0,
     0,
     "q4_0"},
    {"llama-q4_1",
     {"llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_Q4_1, 0, 1, 0, 0, SQ_ROPE_INTERLEAVED},
     1,
     0,
     0,
     "q4_1"},
    {"llama-w8a8-halves", /* squeeze's own GGUF type */
     {"llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_W8A8, 1, 0, 0, 0, SQ_ROPE_HALVES},
     1,
     0,
     0,
     "w8a8"},
    {"llama3-scaling-bf16",
     {"llama", 256, 1, 2, 1, 128, 64, 40, SQ_DTYPE_BF16, 0, 0, 0, 1, SQ_ROPE_HALVES},
     1,
     1,
     0,
     "RoPE scaling"},
};

static void check_case(const rt_case *rc, uint64_t seed) {
    sq_model *m = tiny_model(&rc->spec, seed);
    char path[4096];
    const struct {
        sq_file_format format;
        const char *ext;
        int expect;
    } targets[] = {{SQ_FORMAT_GGUF, ".gguf", rc->gguf},
                   {SQ_FORMAT_SAFETENSORS, "-hf", rc->hf},
                   {SQ_FORMAT_LLAMA2C, ".bin", rc->llama2c}};
    for (size_t t = 0; t < 3; t++) {
        snprintf(path, sizeof path, "%s", sq_test_work("formats-rt-"));
        snprintf(path + strlen(path), sizeof path - strlen(path), "%s%s", rc->label, targets[t].ext);
        sq_error *err = sq_model_save(m, path, targets[t].format);
        if (!targets[t].expect) {
            /* refusals name the problem and leave no file behind */
            sq_test_fails_with(err, targets[t].format == SQ_FORMAT_SAFETENSORS ? "safetensors cannot hold"
                                                                               : rc->refusal);
            struct stat st;
            if (targets[t].format != SQ_FORMAT_SAFETENSORS) assert_int_not_equal(stat(path, &st), 0);
            continue;
        }
        if (err) fail_msg("%s -> %s: %s", rc->label, targets[t].ext, sq_error_message(err));
        sq_model *back;
        err = load_plain(path, &back);
        if (err) fail_msg("%s -> %s: reading back: %s", rc->label, targets[t].ext, sq_error_message(err));
        assert_same_model(m, back, targets[t].format == SQ_FORMAT_LLAMA2C ? SQ_DTYPE_F32 : -1);
        const sq_rope_style want = targets[t].format == SQ_FORMAT_SAFETENSORS ? SQ_ROPE_HALVES
                                   : !strcmp(rc->spec.arch, "qwen2")          ? SQ_ROPE_HALVES
                                                                              : SQ_ROPE_INTERLEAVED;
        assert_int_equal(back->cfg.rope_style, want);
        sq_model_free(back);
    }
    sq_model_free(m);
}

static void test_round_trips(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i], 1000 + i);
}

/* A chain through every format: llama2.c -> HF -> GGUF -> llama2.c gives back the same bytes. */
static void test_chain_through_formats(void **state) {
    (void)state;
    tiny_spec s = {"llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_F32, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED};
    sq_model *m = tiny_model(&s, 99);
    char bin[4096], hf[4096], gguf[4096], bin2[4096];
    snprintf(bin, sizeof bin, "%s", sq_test_work("formats-chain.bin"));
    snprintf(hf, sizeof hf, "%s", sq_test_work("formats-chain-hf"));
    snprintf(gguf, sizeof gguf, "%s", sq_test_work("formats-chain.gguf"));
    snprintf(bin2, sizeof bin2, "%s", sq_test_work("formats-chain2.bin"));
    sq_test_ok(sq_model_save(m, bin, SQ_FORMAT_LLAMA2C));
    const char *steps[][2] = {{bin, hf}, {hf, gguf}, {gguf, bin2}};
    const sq_file_format formats[] = {SQ_FORMAT_SAFETENSORS, SQ_FORMAT_GGUF, SQ_FORMAT_LLAMA2C};
    for (int i = 0; i < 3; i++) {
        sq_model *a;
        sq_test_ok(load_plain(steps[i][0], &a));
        sq_test_ok(sq_model_save(a, steps[i][1], formats[i]));
        sq_model_free(a);
    }
    char *x, *y;
    size_t nx, ny;
    sq_test_ok(sq_read_file(bin, 1 << 24, &x, &nx));
    sq_test_ok(sq_read_file(bin2, 1 << 24, &y, &ny));
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx);
    free(x);
    free(y);
    sq_model_free(m);
}

/* Keeps the first `keep` FFN units of block l (rows of ffn_gate/ffn_up, columns of ffn_down) through the
 * public edit call. */
static void narrow_ffn(sq_model *m, int l, int keep) {
    const int dim = m->cfg.dim, ffn = m->layers[l].ffn_dim;
    float *gate = malloc((size_t)ffn * dim * sizeof *gate), *up = malloc((size_t)ffn * dim * sizeof *up),
          *down = malloc((size_t)dim * ffn * sizeof *down),
          *down_kept = malloc((size_t)dim * keep * sizeof *down);
    char names[3][SQ_TENSOR_NAME_MAX];
    const char *suffix[3] = {SQ_NAME_FFN_GATE, SQ_NAME_FFN_UP, SQ_NAME_FFN_DOWN};
    for (int k = 0; k < 3; k++) snprintf(names[k], sizeof names[k], "blk.%d.%s", l, suffix[k]);
    sq_test_ok(sq_model_read_tensor(m, names[0], gate, (int64_t)ffn * dim));
    sq_test_ok(sq_model_read_tensor(m, names[1], up, (int64_t)ffn * dim));
    sq_test_ok(sq_model_read_tensor(m, names[2], down, (int64_t)dim * ffn));
    for (int r = 0; r < dim; r++)
        memcpy(down_kept + (size_t)r * keep, down + (size_t)r * ffn, keep * sizeof *down);
    const sq_tensor_edit edits[3] = {
        {.name = names[0], .ndim = 2, .shape = {keep, dim}, .values = gate},
        {.name = names[1], .ndim = 2, .shape = {keep, dim}, .values = up},
        {.name = names[2], .ndim = 2, .shape = {dim, keep}, .values = down_kept},
    };
    sq_test_ok(sq_model_edit_tensors(m, edits, 3));
    free(gate), free(up), free(down), free(down_kept);
}

/* A pruned model (layers of different FFN width): GGUF stores per-layer widths (arrays, as llama.cpp reads
 * them) and reads them back; the formats that store one width refuse, naming the layer and the field. (Until
 * GGUF learnt per-layer arrays this test required its refusal too.) */
static void test_nonuniform_layers(void **state) {
    (void)state;
    tiny_spec s = {"llama", 64, 2, 4, 2, 16, 96, 70, SQ_DTYPE_F32, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED};
    sq_model *m = tiny_model(&s, 5);
    narrow_ffn(m, 1, 64);
    assert_int_equal(m->layers[1].ffn_dim, 64);
    assert_int_equal(m->layers[0].ffn_dim, 96);
    assert_int_equal(m->cfg.ffn_dim, 96); /* the largest */
    const char *gguf = sq_test_work("formats-pruned.gguf");
    sq_test_ok(sq_model_save(m, gguf, SQ_FORMAT_GGUF));
    sq_model *back;
    sq_test_ok(load_plain(gguf, &back));
    assert_same_model(m, back, -1);
    sq_model_free(back);
    sq_test_fails_with(
        sq_model_save(m, sq_test_work("formats-pruned-hf"), SQ_FORMAT_SAFETENSORS),
        "layer 1 has intermediate_size 64 but layer 0 has 96; a Hugging Face config.json holds "
        "one value for all layers");
    sq_test_fails_with(
        sq_model_save(m, sq_test_work("formats-pruned.bin"), SQ_FORMAT_LLAMA2C),
        "layer 1 has hidden_dim 64 but layer 0 has 96; a llama2.c checkpoint holds one value for "
        "all layers");
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_permutation_semantics),
        cmocka_unit_test(test_llama3_factor_fit),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_chain_through_formats),
        cmocka_unit_test(test_nonuniform_layers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
