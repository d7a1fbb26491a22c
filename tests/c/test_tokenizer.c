/* Tokenizer behaviour checked in C: the BPE merge loop against a naive quadratic reference on fresh random
 * vocabularies (merge-rank and score order), streaming decoding against whole decoding with multi-byte
 * characters split over byte tokens, and the vocabulary spec round trip. The Python tests compare with
 * sentencepiece and Hugging Face on real vocabularies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testlib.h"
#include "tokenizer/tokenizer.h"

/* ------------------------------------------------------------ naive BPE reference */

typedef struct naive_vocab {
    int n;
    char tok[128][32];
    float score[128];
    int rank_left[128], rank_right[128]; /* merge r joins tokens rank_left[r] + rank_right[r] */
    int n_merges;
} naive_vocab;

static int find(const naive_vocab *v, const char *s, size_t len) {
    for (int i = 0; i < v->n; i++)
        if (strlen(v->tok[i]) == len && !memcmp(v->tok[i], s, len)) return i;
    return -1;
}

/* Repeatedly applies the best merge (lowest rank, or highest score), leftmost first. */
static int naive_encode(const naive_vocab *v, const char *text, int by_rank, int *out) {
    int ids[256], n = 0;
    for (const char *p = text; *p; p++) ids[n++] = find(v, p, 1);
    for (;;) {
        int best = -1, best_merged = -1;
        double best_key = 0;
        for (int i = 0; i + 1 < n; i++) {
            char joined[64];
            snprintf(joined, sizeof joined, "%s%s", v->tok[ids[i]], v->tok[ids[i + 1]]);
            int merged = find(v, joined, strlen(joined));
            double key;
            if (by_rank) {
                int r = -1;
                for (int k = 0; k < v->n_merges && r < 0; k++)
                    if (v->rank_left[k] == ids[i] && v->rank_right[k] == ids[i + 1]) r = k;
                if (r < 0) continue;
                key = r;
            } else {
                if (merged < 0) continue;
                key = -v->score[merged];
            }
            if (best < 0 || key < best_key) best = i, best_key = key, best_merged = merged;
        }
        if (best < 0) break;
        ids[best] = best_merged;
        memmove(ids + best + 1, ids + best + 2, (size_t)(n - best - 2) * sizeof *ids);
        n--;
    }
    memcpy(out, ids, (size_t)n * sizeof *ids);
    return n;
}

/* Letters a-d, then tokens made by joining two random existing tokens, with random (distinct) scores. */
static void random_vocab(naive_vocab *v, uint64_t *seed) {
    memset(v, 0, sizeof *v);
    for (int c = 0; c < 4; c++) v->tok[v->n][0] = (char)('a' + c), v->score[v->n++] = -1000 - (float)c;
    for (int tries = 0; v->n < 60 && tries < 1000; tries++) {
        int l = (int)(sq_test_rand_u64(seed) % (uint64_t)v->n),
            r = (int)(sq_test_rand_u64(seed) % (uint64_t)v->n);
        if (strlen(v->tok[l]) + strlen(v->tok[r]) >= 12) continue;
        char joined[64];
        snprintf(joined, sizeof joined, "%s%s", v->tok[l], v->tok[r]);
        if (find(v, joined, strlen(joined)) >= 0) continue;
        strcpy(v->tok[v->n], joined);
        v->score[v->n] = -(float)v->n_merges - sq_test_rand_uniform(seed, 0, 0.5f);
        v->rank_left[v->n_merges] = l, v->rank_right[v->n_merges] = r, v->n_merges++;
        v->n++;
    }
}

static void test_bpe_matches_naive_reference(void **state) {
    (void)state;
    uint64_t seed = (uint64_t)time(NULL) | 1;
    print_message("seed %llu\n", (unsigned long long)seed);
    for (int rep = 0; rep < 20; rep++) {
        naive_vocab v;
        random_vocab(&v, &seed);
        const char *tokens[128];
        char merges[128][64];
        const char *merge_ptrs[128];
        for (int i = 0; i < v.n; i++) tokens[i] = v.tok[i];
        for (int k = 0; k < v.n_merges; k++) {
            snprintf(merges[k], sizeof merges[k], "%s %s", v.tok[v.rank_left[k]], v.tok[v.rank_right[k]]);
            merge_ptrs[k] = merges[k];
        }
        const char *regex[] = {"[a-d]+"};
        sq_vocab_spec byte_spec = {.type = SQ_TOKENIZER_BYTE_BPE,
                                   .n_tokens = v.n,
                                   .tokens = tokens,
                                   .n_merges = v.n_merges,
                                   .merges = merge_ptrs,
                                   .n_pre_regex = 1,
                                   .pre_regex = regex,
                                   .bos_id = -1,
                                   .eos_id = -1,
                                   .unk_id = -1,
                                   .pad_id = -1};
        sq_vocab_spec spm_spec = {.type = SQ_TOKENIZER_SPM_BPE,
                                  .n_tokens = v.n,
                                  .tokens = tokens,
                                  .scores = v.score,
                                  .bos_id = -1,
                                  .eos_id = -1,
                                  .unk_id = -1,
                                  .pad_id = -1};
        sq_tokenizer *by_rank, *by_score;
        sq_test_ok(sq_tokenizer_from_spec(&byte_spec, &by_rank));
        sq_test_ok(sq_tokenizer_from_spec(&spm_spec, &by_score));
        for (int t = 0; t < 30; t++) {
            char text[200];
            int len = 1 + (int)(sq_test_rand_u64(&seed) % 100);
            for (int i = 0; i < len; i++) text[i] = (char)('a' + sq_test_rand_u64(&seed) % 4);
            text[len] = 0;
            for (int mode = 0; mode < 2; mode++) {
                int want[256], n_want = naive_encode(&v, text, mode == 0, want);
                int32_t *ids;
                int n_ids;
                sq_test_ok(
                    sq_tokenize(mode == 0 ? by_rank : by_score, text, (size_t)len, 0, 0, &ids, &n_ids));
                int same = n_ids == n_want;
                for (int i = 0; same && i < n_ids; i++) same = ids[i] == want[i];
                if (!same)
                    fail_msg("rep %d, %s order, text %s: %d tokens, reference %d", rep,
                             mode ? "score" : "rank", text, n_ids, n_want);
                free(ids);
            }
        }
        sq_tokenizer_free(by_rank);
        sq_tokenizer_free(by_score);
    }
}

/* ------------------------------------------------------------ streaming decoding */

static const char *const stream_texts[] = {
    "Hello world! 🤖🚀 and 👨‍👩‍👧‍👦 family",
    "日本語のテキスト、中文，한국어",
    " leading space, trailing space ",
    "Cafe\xcc\x81 na\xc3\xafve \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "invalid \xff\xfe bytes \xe2\x82 cut \xf0\x9f\x98",
    "\n\ttabs\tand\nnewlines\n",
    "",
};

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (!len || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

static void check_streaming(const char *path) {
    sq_tokenizer *tok;
    sq_test_ok(sq_tokenizer_load(path, &tok));
    for (size_t t = 0; t < sizeof stream_texts / sizeof *stream_texts; t++) {
        const char *text = stream_texts[t];
        int32_t *ids;
        int n;
        sq_test_ok(sq_tokenize(tok, text, strlen(text), 1, 0, &ids, &n));
        char *whole;
        size_t whole_len;
        sq_test_ok(sq_detokenize(tok, ids, n, &whole, &whole_len));
        sq_detokenizer *d = sq_detokenizer_create(tok);
        assert_non_null(d);
        char *joined = malloc(whole_len + 1);
        size_t joined_len = 0;
        int valid_text = valid_utf8(text, strlen(text));
        for (int i = 0; i <= n; i++) {
            size_t len;
            const char *piece = i < n ? sq_detokenizer_push(d, ids[i], &len) : sq_detokenizer_flush(d, &len);
            assert_true(joined_len + len <= whole_len);
            memcpy(joined + joined_len, piece, len);
            joined_len += len;
            /* pieces of valid text are whole characters: split characters wait for their last byte */
            if (valid_text && !valid_utf8(piece, len))
                fail_msg("%s: text %zu token %d: piece is cut UTF-8", path, t, i);
        }
        assert_int_equal(joined_len, whole_len);
        assert_memory_equal(joined, whole, whole_len);
        if (valid_text) { /* decoding inverts encoding */
            assert_int_equal(whole_len, strlen(text));
            assert_memory_equal(whole, text, whole_len);
        }
        free(joined);
        free(whole);
        free(ids);
        sq_detokenizer_free(d);
    }
    sq_tokenizer_free(tok);
}

static void test_streaming_decoding(void **state) {
    (void)state;
    check_streaming(sq_test_shared("models/tokenizer.model"));
    check_streaming(sq_test_shared("tokenizers/llama3/tokenizer.json"));
}

/* Arbitrary bytes: byte-level BPE gives them back exactly (invalid UTF-8 included), with and without special
 * tokens parsed, and the streaming decoder agrees; nothing crashes (this also runs under ASan/UBSan). */
static void test_random_bytes_round_trip(void **state) {
    (void)state;
    sq_tokenizer *tok;
    sq_test_ok(sq_tokenizer_load(sq_test_shared("tokenizers/gpt2/encoder.json"), &tok));
    uint64_t seed = (uint64_t)time(NULL) * 2 + 1;
    print_message("seed %llu\n", (unsigned long long)seed);
    static const char *const pieces[] = {
        "<|endoftext|>", " the", "\xe6\x97\xa5", "\xf0\x9f\xa4\x96", "  ", "\n", "123"};
    for (int rep = 0; rep < 300; rep++) {
        char text[256];
        size_t len = 0, want = sq_test_rand_u64(&seed) % 200;
        while (len < want) {
            uint64_t r = sq_test_rand_u64(&seed);
            if (r % 4 == 0) { /* one of the pieces above */
                const char *p = pieces[(r >> 8) % (sizeof pieces / sizeof *pieces)];
                size_t n = strlen(p);
                if (len + n > sizeof text) break;
                memcpy(text + len, p, n), len += n;
            } else {
                text[len++] = (char)(r >> 16);
            }
        }
        for (int special = 0; special < 2; special++) {
            int32_t *ids;
            int n;
            sq_test_ok(sq_tokenize(tok, text, len, 0, special, &ids, &n));
            char *dec;
            size_t dec_len;
            sq_test_ok(sq_detokenize(tok, ids, n, &dec, &dec_len));
            /* with special tokens parsed, <|endoftext|> is a control token and decodes to nothing */
            if (!special) {
                assert_int_equal(dec_len, len);
                assert_memory_equal(dec, text, len);
            }
            sq_detokenizer *d = sq_detokenizer_create(tok);
            char *joined = malloc(dec_len + 1);
            size_t joined_len = 0, l;
            for (int i = 0; i <= n; i++) {
                const char *piece = i < n ? sq_detokenizer_push(d, ids[i], &l) : sq_detokenizer_flush(d, &l);
                assert_true(joined_len + l <= dec_len);
                memcpy(joined + joined_len, piece, l), joined_len += l;
            }
            assert_int_equal(joined_len, dec_len);
            assert_memory_equal(joined, dec, dec_len);
            sq_detokenizer_free(d);
            free(joined);
            free(dec);
            free(ids);
        }
    }
    sq_tokenizer_free(tok);
}

static void test_streaming_holds_back_split_character(void **state) {
    (void)state;
    sq_tokenizer *tok;
    sq_test_ok(sq_tokenizer_load(sq_test_shared("models/tokenizer.model"), &tok));
    /* "🤖" is not a Llama-2 piece: it becomes four byte tokens after "▁" */
    int32_t *ids;
    int n;
    sq_test_ok(sq_tokenize(tok, "🤖", strlen("🤖"), 0, 0, &ids, &n));
    assert_int_equal(n, 5);
    sq_detokenizer *d = sq_detokenizer_create(tok);
    size_t lens[5];
    const char *last = NULL;
    for (int i = 0; i < n; i++) last = sq_detokenizer_push(d, ids[i], &lens[i]);
    assert_int_equal(lens[0], 0); /* the dummy-prefix space is dropped at the start */
    assert_int_equal(lens[1], 0);
    assert_int_equal(lens[2], 0);
    assert_int_equal(lens[3], 0);
    assert_int_equal(lens[4], 4);
    assert_memory_equal(last, "🤖", 4);
    size_t len;
    sq_detokenizer_flush(d, &len);
    assert_int_equal(len, 0);
    /* a lone lead byte comes out at flush */
    int32_t lead = ids[1];
    sq_detokenizer_push(d, lead, &len);
    assert_int_equal(len, 0);
    const char *rest = sq_detokenizer_flush(d, &len);
    assert_int_equal(len, 1);
    assert_int_equal((unsigned char)rest[0], 0xF0);
    sq_detokenizer_free(d);
    free(ids);
    sq_tokenizer_free(tok);
}

/* sq_detokenizer_reset: a stream after a context returns what the pushes add to the context's decoding (the
 * oracle comparison on random cases is tests/py/test_stream_decode.py); reset drops held bytes; a bad context
 * id is refused and leaves the decoder as it was. */
static void test_streaming_after_context(void **state) {
    (void)state;
    sq_tokenizer *tok;
    sq_test_ok(sq_tokenizer_load(sq_test_shared("models/tokenizer.model"), &tok));
    int32_t *ctx, *cont;
    int n_ctx, n_cont;
    sq_test_ok(sq_tokenize(tok, "a little", 8, 1, 0, &ctx, &n_ctx));
    sq_test_ok(sq_tokenize(tok, "girl", 4, 0, 0, &cont, &n_cont)); /* "▁girl": a word start */
    sq_detokenizer *d = sq_detokenizer_create(tok);
    size_t len;
    const char *piece = sq_detokenizer_push(d, cont[0], &len); /* at the start of a text: no space */
    assert_int_equal(len, 4);
    assert_memory_equal(piece, "girl", 4);
    sq_test_ok(sq_detokenizer_reset(d, ctx, n_ctx));
    piece = sq_detokenizer_push(d, cont[0], &len);
    assert_int_equal(len, 5);
    assert_memory_equal(piece, " girl", 5);
    /* a context of control tokens only (BOS) is still the start of the text */
    sq_test_ok(sq_detokenizer_reset(d, ctx, 1));
    piece = sq_detokenizer_push(d, cont[0], &len);
    assert_int_equal(len, 4);
    /* held bytes of an unfinished character are dropped by a reset */
    int32_t lead = 0xF0 + 3; /* <0xF0>: byte tokens follow the 3 control tokens */
    sq_detokenizer_push(d, lead, &len);
    assert_int_equal(len, 0);
    sq_test_ok(sq_detokenizer_reset(d, NULL, 0));
    sq_detokenizer_flush(d, &len);
    assert_int_equal(len, 0);
    /* bad contexts are refused; the decoder keeps its state (here: after a text token) */
    sq_detokenizer_push(d, cont[0], &len);
    int32_t bad[] = {ctx[1], 32000};
    sq_test_fails_with(sq_detokenizer_reset(d, bad, 2), "32000");
    sq_test_fails_with(sq_detokenizer_reset(d, NULL, 3), "3 tokens");
    piece = sq_detokenizer_push(d, cont[0], &len);
    assert_int_equal(len, 5);
    sq_test_fails_with(sq_detokenizer_reset(NULL, ctx, 1), "detokenizer");
    sq_detokenizer_free(d);
    free(ctx);
    free(cont);
    sq_tokenizer_free(tok);
}

/* ------------------------------------------------------------ spec round trip */

static void test_spec_round_trip(void **state) {
    (void)state;
    const char *paths[] = {"models/tokenizer.model", "tokenizers/llama2/tokenizer.json",
                           "tokenizers/qwen3/tokenizer.json"};
    const char *text = "The quick brown fox <|im_start|> 1234567 日本語 🤖\n\tend";
    for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
        sq_tokenizer *a, *b;
        sq_test_ok(sq_tokenizer_load(sq_test_shared(paths[p]), &a));
        sq_vocab_spec spec;
        sq_tokenizer_get_spec(a, &spec);
        sq_test_ok(sq_tokenizer_from_spec(&spec, &b));
        assert_string_equal(sq_tokenizer_kind(a), sq_tokenizer_kind(b));
        assert_int_equal(sq_tokenizer_vocab_size(a), sq_tokenizer_vocab_size(b));
        assert_int_equal(sq_tokenizer_bos(a), sq_tokenizer_bos(b));
        assert_int_equal(sq_tokenizer_eos(a), sq_tokenizer_eos(b));
        assert_int_equal(sq_tokenizer_adds_bos(a), sq_tokenizer_adds_bos(b));
        for (int special = 0; special < 2; special++) {
            int32_t *x, *y;
            int nx, ny;
            sq_test_ok(sq_tokenize(a, text, strlen(text), 1, special, &x, &nx));
            sq_test_ok(sq_tokenize(b, text, strlen(text), 1, special, &y, &ny));
            assert_int_equal(nx, ny);
            assert_memory_equal(x, y, (size_t)nx * sizeof *x);
            free(x);
            free(y);
        }
        sq_tokenizer_free(a);
        sq_tokenizer_free(b);
    }
}

/* GGUF gives a byte-level vocabulary by pre-tokenizer name, without regexes: "llama-bpe" must behave as the
 * Llama-3 tokenizer.json does (same regex, ignore_merges). */
static void test_named_pre_tokenizer(void **state) {
    (void)state;
    sq_tokenizer *a, *b;
    sq_test_ok(sq_tokenizer_load(sq_test_shared("tokenizers/llama3/tokenizer.json"), &a));
    sq_vocab_spec spec;
    sq_tokenizer_get_spec(a, &spec);
    assert_string_equal(spec.pre, "llama-bpe");
    spec.n_pre_regex = 0;
    spec.pre_regex = NULL;
    spec.ignore_merges = 0;
    sq_test_ok(sq_tokenizer_from_spec(&spec, &b));
    const char *text = "Numbers 1234567 and   spaces\n\n don't DON'T 日本語 🤖";
    int32_t *x, *y;
    int nx, ny;
    sq_test_ok(sq_tokenize(a, text, strlen(text), 0, 0, &x, &nx));
    sq_test_ok(sq_tokenize(b, text, strlen(text), 0, 0, &y, &ny));
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, (size_t)nx * sizeof *x);
    free(x);
    free(y);
    sq_tokenizer_free(a);
    sq_tokenizer_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_matches_naive_reference),
        cmocka_unit_test(test_streaming_decoding),
        cmocka_unit_test(test_streaming_holds_back_split_character),
        cmocka_unit_test(test_streaming_after_context),
        cmocka_unit_test(test_random_bytes_round_trip),
        cmocka_unit_test(test_spec_round_trip),
        cmocka_unit_test(test_named_pre_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
