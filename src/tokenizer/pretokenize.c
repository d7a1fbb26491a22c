#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"

struct sq_pretokenizer {
    pcre2_code **codes;
    int n;
};

const char sq_gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char *const gpt2_list[] = {sq_gpt2_regex};
static const char *const llama3_list[] = {llama3_regex};
static const char *const qwen2_list[] = {qwen2_regex};
static const char *const digits_then_gpt2_list[] = {"\\p{N}", sq_gpt2_regex};

/* The names llama.cpp's converter writes, grouped by the pre-tokenizer they share. */
static const struct {
    const char *names[8];
    sq_named_pretokenizer pre;
} table[] = {
    {{"gpt2", "default", "mpt", "olmo", "jais"}, {gpt2_list, 1, 0, 0}},
    {{"llama-bpe", "llama3", "llama-v3"}, {llama3_list, 1, 1, 0}},
    {{"dbrx", "smaug-bpe"}, {llama3_list, 1, 0, 0}},
    {{"qwen2"}, {qwen2_list, 1, 0, 1}},
    {{"stablelm2"}, {qwen2_list, 1, 0, 0}},
    {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone"}, {digits_then_gpt2_list, 2, 0, 0}},
};

const char *sq_pretokenizer_name_of(const char *const *regexes, int n, int ignore_merges, int normalize_nfc) {
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        const sq_named_pretokenizer *p = &table[i].pre;
        if (p->n_regexes != n || p->ignore_merges != !!ignore_merges || p->normalize_nfc != !!normalize_nfc)
            continue;
        int same = 1;
        for (int k = 0; k < n && same; k++) same = !strcmp(p->regexes[k], regexes[k]);
        if (same) return table[i].names[0];
    }
    return NULL;
}

int sq_pretokenizer_by_name(const char *name, sq_named_pretokenizer *out) {
    if (!name || !*name) name = "default";
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        for (int j = 0; j < 8 && table[i].names[j]; j++)
            if (!strcmp(name, table[i].names[j])) {
                *out = table[i].pre;
                return 0;
            }
    return -1;
}

void sq_pretokenizer_free(sq_pretokenizer *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->codes[i]);
    free(p->codes);
    free(p);
}

sq_error *sq_pretokenizer_create(const char *const *regexes, int n, sq_pretokenizer **out) {
    *out = NULL;
    sq_pretokenizer *p = calloc(1, sizeof *p);
    if (!p || !(p->codes = calloc(n > 0 ? (size_t)n : 1, sizeof *p->codes))) {
        free(p);
        return sq_errorf(SQ_ERR_NOMEM, "pre-tokenizer: out of memory");
    }
    for (int i = 0; i < n; i++) {
        int code;
        PCRE2_SIZE at;
        p->codes[i] = pcre2_compile((PCRE2_SPTR)regexes[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                    &code, &at, NULL);
        if (!p->codes[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            sq_pretokenizer_free(p);
            return sq_errorf(SQ_ERR_FORMAT, "pre-tokenizer regex %d \"%.200s\": %s at offset %zu", i,
                             regexes[i], (const char *)msg, (size_t)at);
        }
        p->n = i + 1;
        /* JIT is an optimisation: where it is unavailable the interpreter gives the same matches. */
        pcre2_jit_compile(p->codes[i], PCRE2_JIT_COMPLETE);
    }
    *out = p;
    return NULL;
}

sq_error *sq_span_buf_push(sq_span_buf *b, size_t start, size_t len) {
    if (SQ_ARRAY_RESERVE(b->spans, b->cap, b->n + 1))
        return sq_errorf(SQ_ERR_NOMEM, "pre-tokenizer: out of memory");
    b->spans[b->n++] = (sq_span){start, len};
    return NULL;
}

/* Appends the matches of code in buf[start, start+len) and the gaps between them. The piece is the whole
 * subject, as in Hugging Face, so lookarounds see nothing beyond it. */
static SQ_NODISCARD sq_error *split_isolated(const pcre2_code *code, pcre2_match_data *md,
                                             pcre2_match_context *mc, const char *buf, size_t start,
                                             size_t len, sq_span_buf *out) {
    const char *text = buf + start;
    size_t pos = 0, end = len, gap = 0;
    while (pos < end) {
        int rc = pcre2_match(code, (PCRE2_SPTR)text, end, pos, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return sq_errorf(SQ_ERR_INTERNAL, "pre-tokenizer: regex match failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: step over one character */
            pos = ms + 1;
            while (pos < end && ((unsigned char)text[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ms > gap) SQ_TRY(sq_span_buf_push(out, start + gap, ms - gap));
        SQ_TRY(sq_span_buf_push(out, start + ms, me - ms));
        gap = pos = me;
    }
    if (end > gap) SQ_TRY(sq_span_buf_push(out, start + gap, end - gap));
    return NULL;
}

sq_error *sq_pretokenize(const sq_pretokenizer *p, const char *buf, size_t start, size_t len,
                         sq_span_buf *out) {
    if (!len) return NULL;
    if (p->n == 0) return sq_span_buf_push(out, start, len);
    sq_error *err = NULL;
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_jit_stack *stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    sq_span_buf cur = {0}, next = {0};
    if (!md || !mc || !stack) {
        err = sq_errorf(SQ_ERR_NOMEM, "pre-tokenizer: out of memory");
        goto done;
    }
    pcre2_jit_stack_assign(mc, NULL, stack);
    if ((err = sq_span_buf_push(&cur, start, len))) goto done;
    for (int r = 0; r < p->n; r++) {
        sq_span_buf *dst = r == p->n - 1 ? out : &next;
        for (size_t i = 0; i < cur.n && !err; i++)
            err = split_isolated(p->codes[r], md, mc, buf, cur.spans[i].start, cur.spans[i].len, dst);
        if (err) goto done;
        sq_span_buf t = cur;
        cur = next;
        next = t;
        next.n = 0;
    }
done:
    free(cur.spans);
    free(next.spans);
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    return err;
}
