/* The table of weight formats (core/dtype.h): every row's invariants, names and GGUF numbers unique and
 * consistent, and each format's reference round trip from_f32 -> to_f32 within the error its row states, on
 * random groups of awkward kinds. The numbers themselves are checked against the gguf package (ggml's own
 * definitions) by tests/py/test_dtypes.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "formats/gguf.h"
#include "testlib.h"

static int is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

static void test_rows_are_consistent(void **state) {
    (void)state;
    for (int d = 0; d < SQ_DTYPE_COUNT; d++) {
        const sq_dtype_traits *f = sq_dtype_info((sq_dtype)d);
        assert_non_null(f);
        assert_non_null(f->name);
        assert_true(f->name[0] != 0);
        for (const char *c = f->name; *c; c++)
            if (!is_name_char(*c)) fail_msg("format %d: name \"%s\" is not lower-case [a-z0-9_]", d, f->name);
        if (sq_dtype_from_name(f->name) != d) fail_msg("%s: its name does not parse back to it", f->name);

        /* layout */
        if (f->block_elems < 1 || f->bits < 1 || f->bits > 32 || (f->block_elems * f->bits) % 8)
            fail_msg("%s: %d elements of %d bits are not whole bytes", f->name, f->block_elems, f->bits);
        /* N:M formats store nm_n of every nm_m values, in blocks of whole groups */
        if ((f->nm_m != 0) != (f->columns == SQ_COLUMNS_NM) ||
            (f->nm_m && (f->nm_n < 1 || f->nm_n >= f->nm_m || f->block_elems % f->nm_m)))
            fail_msg("%s: N:M %d:%d does not fit its blocks of %d", f->name, f->nm_n, f->nm_m,
                     f->block_elems);
        const size_t stored =
            f->nm_m ? (size_t)f->block_elems * (size_t)f->nm_n / (size_t)f->nm_m : (size_t)f->block_elems;
        if (f->block_bytes != stored * (size_t)f->bits / 8 + f->meta_bytes)
            fail_msg("%s: %zu bytes per block, but %zu values of %d bits and %zu bytes of scales make %zu",
                     f->name, f->block_bytes, stored, f->bits, f->meta_bytes,
                     stored * (size_t)f->bits / 8 + f->meta_bytes);
        if (f->group_elems == SQ_GROUP_ROW) { /* one scale (and zero point) per row, stored in every block */
            if ((f->zero != SQ_ZERO_NONE && f->zero != SQ_ZERO_POINT) || f->block_elems % f->sub_block_elems)
                fail_msg("%s: a scale per row needs a symmetric or zero-point grid in whole sub-blocks",
                         f->name);
        } else if (f->group_elems < 1 || f->block_elems % f->group_elems)
            fail_msg("%s: groups of %d do not divide blocks of %d", f->name, f->group_elems, f->block_elems);
        if (f->sub_block_elems < 1 || f->group_elems % f->sub_block_elems)
            fail_msg("%s: sub-blocks of %d do not divide groups of %d", f->name, f->sub_block_elems,
                     f->group_elems);
        /* activations for integer dot products: an 8-bit format of blocks no longer than the weights' */
        const sq_dtype_traits *dot = sq_dtype_info(f->dot_dtype);
        if (!dot || (f->dot_dtype != SQ_DTYPE_F32 &&
                     (dot->bits != 8 || dot->zero != SQ_ZERO_NONE || f->block_elems % dot->block_elems)))
            fail_msg("%s: activations in %s cannot meet its blocks in a dot product", f->name,
                     dot ? dot->name : "(none)");
        if (f->alignment < 1 || (f->alignment & (f->alignment - 1)) || f->block_bytes % f->alignment)
            fail_msg("%s: alignment %zu does not keep every block of %zu bytes aligned", f->name,
                     f->alignment, f->block_bytes);
        /* plain floats (what the kernels call dense) are exactly the formats with one-element blocks */
        const int plain = f->block_elems == 1;
        if (plain != (f->meta_bytes == 0) || (plain && (f->group_elems != 1 || f->zero != SQ_ZERO_NONE)))
            fail_msg("%s: a one-element block must be a plain float, without scales or zero point", f->name);
        /* quantization parameters */
        if ((f->zero == SQ_ZERO_FIXED) != (f->zero_value != 0) || f->zero_value < 0 ||
            f->zero_value >= (int64_t)1 << f->bits)
            fail_msg("%s: zero value %d does not match its zero point kind", f->name, f->zero_value);
        if (f->columns == SQ_COLUMNS_NIBBLE_HALVES && (f->bits != 4 || f->group_elems % 32))
            fail_msg("%s: ggml's nibble order needs 4-bit values in runs of 32", f->name);
        if (f->columns == SQ_COLUMNS_NIBBLE_HALVES_HIGH_BIT && (f->bits != 5 || f->block_elems != 32))
            fail_msg("%s: ggml's 5-bit packing needs 5-bit values in blocks of 32", f->name);
        if ((f->columns == SQ_COLUMNS_PAIR_PLANES && f->bits != 2) ||
            (f->columns == SQ_COLUMNS_PAIR_PLANES_HIGH_BIT && f->bits != 3) ||
            ((f->columns == SQ_COLUMNS_PAIR_PLANES || f->columns == SQ_COLUMNS_PAIR_PLANES_HIGH_BIT) &&
             f->block_elems % 32))
            fail_msg("%s: pair planes need 2- or 3-bit values (as the order says) in runs of 32", f->name);
        if (f->columns == SQ_COLUMNS_K_QUANT && (f->block_elems != SQ_QK_K || f->sub_block_elems % 16))
            fail_msg("%s: ggml's K-quant packing needs super-blocks of %d, sub-blocks of 16 or 32", f->name,
                     SQ_QK_K);
        /* names in other files */
        if (!f->safetensors != !f->torch_dtype)
            fail_msg("%s: a safetensors dtype and a torch_dtype come together", f->name);
        if (f->gguf_file_type >= 0 && f->ggml_type < 0)
            fail_msg("%s: a GGUF file type without a ggml tensor type", f->name);
        if (f->ggml_type >= 0) { /* ggml's name for the number is the upper-case name */
            const char *ggml = sq_gguf_ggml_type_name((uint32_t)f->ggml_type);
            char upper[32];
            size_t n = strlen(f->name);
            assert_true(n < sizeof upper);
            for (size_t i = 0; i <= n; i++)
                upper[i] = (char)(f->name[i] >= 'a' && f->name[i] <= 'z' ? f->name[i] - 32 : f->name[i]);
            if (strcmp(ggml, upper) != 0)
                fail_msg("%s: ggml type %d is ggml's %s", f->name, f->ggml_type, ggml);
        }
        if (!f->to_f32 || !f->from_f32) fail_msg("%s: no reference conversions", f->name);
        if (!(f->max_error >= 0 && f->max_error < 1)) fail_msg("%s: stated error %g", f->name, f->max_error);

        for (int e = 0; e < d; e++) { /* every number and name identifies one format */
            const sq_dtype_traits *g = sq_dtype_info((sq_dtype)e);
            if (!strcmp(f->name, g->name)) fail_msg("%s: name used twice", f->name);
            if (f->ggml_type >= 0 && f->ggml_type == g->ggml_type)
                fail_msg("%s and %s: the same ggml type %d", g->name, f->name, f->ggml_type);
            if (f->gguf_file_type >= 0 && f->gguf_file_type == g->gguf_file_type)
                fail_msg("%s and %s: the same GGUF file type %d", g->name, f->name, f->gguf_file_type);
            if (f->safetensors && g->safetensors &&
                (!strcmp(f->safetensors, g->safetensors) || !strcmp(f->torch_dtype, g->torch_dtype)))
                fail_msg("%s and %s: the same safetensors or torch dtype", g->name, f->name);
        }
    }
    assert_null(sq_dtype_info(SQ_DTYPE_COUNT));
    assert_int_equal(sq_dtype_from_name("q9"), -1);
    assert_int_equal(sq_dtype_from_name("Q8_0"), -1); /* names are lower case */
}

/* Fills one group of n values, whose largest magnitude is a (unless zero), in one of six shapes. */
enum { GROUP_KINDS = 6 };
static void fill_group(float *x, int n, int kind, float a, uint64_t *seed) {
    for (int i = 0; i < n; i++) {
        switch (kind) {
        case 0: /* uniform */
            x[i] = sq_test_rand_uniform(seed, -a, a);
            break;
        case 1: /* constant */
            x[i] = a;
            break;
        case 2: /* zeros */
            x[i] = 0;
            break;
        case 3: /* small values and one outlier */
            x[i] = sq_test_rand_uniform(seed, -a / 100, a / 100);
            break;
        case 4: /* one sign */
            x[i] = sq_test_rand_uniform(seed, a / 2, a);
            break;
        default: /* both extremes only */
            x[i] = i % 2 ? a : -a;
        }
    }
    if (kind != 2) x[sq_test_rand_u64(seed) % (uint64_t)n] = sq_test_rand_u64(seed) % 2 ? a : -a;
}

static void test_round_trip_within_stated_error(void **state) {
    (void)state;
    uint64_t seed = 2024;
    for (int d = 0; d < SQ_DTYPE_COUNT; d++) {
        const sq_dtype_traits *f = sq_dtype_info((sq_dtype)d);
        const int64_t n = (int64_t)f->block_elems * 37 * GROUP_KINDS;
        /* a format with one scale per row (SQ_GROUP_ROW) quantizes rows of 37 blocks, one call each */
        const int64_t group = f->group_elems == SQ_GROUP_ROW ? (int64_t)f->block_elems * 37 : f->group_elems;
        const int64_t call = f->group_elems == SQ_GROUP_ROW ? group : n;
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        void *q = malloc((size_t)(n / f->block_elems) * f->block_bytes);
        assert_true(x && y && q);
        for (int64_t g = 0; g < n / group; g++) {
            /* group magnitudes spread over the stated range [2^-6, 2^15] */
            const float a = ldexpf(1, -6 + (int)(sq_test_rand_u64(&seed) % 21)) *
                            sq_test_rand_uniform(&seed, 1, 2 - 1.0f / 1024);
            fill_group(x + g * group, (int)group, (int)(g % GROUP_KINDS), a, &seed);
        }
        /* an N:M format holds N:M weights: each run of nm_m keeps its largest magnitude (so each group keeps
         * its own, within the stated range) and random others, nm_n in all */
        for (int64_t r = 0; f->nm_m && r < n / f->nm_m; r++) {
            int keep[64] = {0}, top = 0;
            for (int j = 1; j < f->nm_m; j++)
                if (fabsf(x[r * f->nm_m + j]) > fabsf(x[r * f->nm_m + top])) top = j;
            keep[top] = 1;
            for (int k = 1; k < f->nm_n;) {
                const int j = (int)(sq_test_rand_u64(&seed) % (uint64_t)f->nm_m);
                if (!keep[j]) keep[j] = 1, k++;
            }
            for (int j = 0; j < f->nm_m; j++)
                if (!keep[j]) x[r * f->nm_m + j] = 0;
        }
        for (int64_t c = 0; c < n; c += call) {
            f->from_f32(x + c, (uint8_t *)q + c / f->block_elems * f->block_bytes, call);
            f->to_f32((uint8_t *)q + c / f->block_elems * f->block_bytes, y + c, call);
        }
        double worst = 0; /* the largest error relative to its group's largest magnitude */
        for (int64_t g = 0; g < n / group; g++) {
            const float *xg = x + g * group, *yg = y + g * group;
            double amax = 0, err = 0;
            for (int64_t i = 0; i < group; i++) {
                amax = fmax(amax, fabs(xg[i]));
                err = fmax(err, fabs((double)yg[i] - xg[i]));
            }
            if (amax == 0 ? err != 0 : !(err <= f->max_error * amax))
                fail_msg("%s: group %lld (kind %d, largest magnitude %g): error %g exceeds the stated %g",
                         f->name, (long long)g, (int)(g % GROUP_KINDS), amax, err, f->max_error * amax);
            if (amax > 0) worst = fmax(worst, err / amax);
        }
        printf("%-5s worst error %.3g of the group's largest magnitude (stated %.3g)\n", f->name, worst,
               f->max_error);
        /* the statement is tight: random data comes within a factor of two of it */
        if (worst < f->max_error / 2)
            fail_msg("%s: worst relative error %g, far below the stated %g", f->name, worst, f->max_error);
        free(x);
        free(y);
        free(q);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_are_consistent),
        cmocka_unit_test(test_round_trip_within_stated_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
