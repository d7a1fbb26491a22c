/* stream_decode: streams continuations after contexts through the public detokenizer, for the reference test
 * of streaming against sentencepiece and Hugging Face decoding (tests/py/test_stream_decode.py).
 *
 *   stream_decode TOKENIZER < CASES
 *
 * Each input line is one case: the context's ids, a TAB, the continuation's ids (ids separated by spaces).
 * Each output line: sq_detokenize(context), TAB, what the pushes of the continuation and the final flush
 * returned after sq_detokenizer_reset(context), joined, TAB, sq_detokenize(context + continuation); each in
 * hex, two digits a byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "squeeze.h"

/* Bytes as hex: any byte string fits a field. */
static void print_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
}

static SQ_TAKES_ERROR(1) int fail(sq_error *err, int line) {
    fprintf(stderr, "stream_decode: line %d: %s\n", line, sq_error_message(err));
    sq_error_free(err);
    return 1;
}

/* Decodes ids and prints them in hex. */
static SQ_NODISCARD sq_error *print_decoded(const sq_tokenizer *tok, const int32_t *ids, int n) {
    char *text;
    size_t len;
    sq_error *err = sq_detokenize(tok, ids, n, &text, &len);
    if (err) return err;
    print_hex(text, len);
    free(text);
    return NULL;
}

/* One case; a malformed line (no TAB) is the caller's to report. */
static SQ_NODISCARD sq_error *run_case(const sq_tokenizer *tok, sq_detokenizer *d, const char *line,
                                       size_t len, const char *tab, int32_t *all) {
    int32_t *ids = NULL, *cont = NULL;
    int64_t n_ctx = 0, n_cont = 0;
    sq_error *err = sq_parse_int_list(line, (size_t)(tab - line), 0, INT32_MAX, &ids, &n_ctx);
    if (!err) err = sq_parse_int_list(tab + 1, len - (size_t)(tab + 1 - line), 0, INT32_MAX, &cont, &n_cont);
    if (!err) err = print_decoded(tok, ids, (int)n_ctx);
    if (!err) err = sq_detokenizer_reset(d, ids, (int)n_ctx);
    if (!err) {
        putchar('\t');
        for (int64_t i = 0; i <= n_cont; i++) {
            size_t l;
            const char *piece =
                i < n_cont ? sq_detokenizer_push(d, cont[i], &l) : sq_detokenizer_flush(d, &l);
            print_hex(piece, l);
        }
        putchar('\t');
        if (n_ctx) memcpy(all, ids, (size_t)n_ctx * sizeof *all);
        if (n_cont) memcpy(all + n_ctx, cont, (size_t)n_cont * sizeof *all);
        err = print_decoded(tok, all, (int)(n_ctx + n_cont));
        putchar('\n');
    }
    free(ids);
    free(cont);
    return err;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: stream_decode TOKENIZER < CASES\n");
        return 2;
    }
    sq_tokenizer *tok;
    sq_error *err = sq_tokenizer_load(argv[1], &tok);
    if (err) return fail(err, 0);
    char *input;
    size_t size;
    err = sq_read_file("/dev/stdin", (size_t)1 << 30, &input, &size);
    if (err) {
        sq_tokenizer_free(tok);
        return fail(err, 0);
    }
    sq_detokenizer *d = sq_detokenizer_create(tok);
    int32_t *all = malloc((size + 1) * sizeof *all); /* a line of n bytes holds fewer than n ids */
    int rc = d && all ? 0 : 1, line = 1;
    for (size_t start = 0; !rc && start < size; line++) {
        const char *nl = memchr(input + start, '\n', size - start);
        size_t end = nl ? (size_t)(nl - input) : size;
        const char *tab = memchr(input + start, '\t', end - start);
        if (!tab) {
            fprintf(stderr, "stream_decode: line %d: no TAB between context and continuation\n", line);
            rc = 1;
        } else if ((err = run_case(tok, d, input + start, end - start, tab, all))) {
            rc = fail(err, line);
        }
        start = end + 1;
    }
    free(all);
    sq_detokenizer_free(d);
    free(input);
    sq_tokenizer_free(tok);
    return rc;
}
