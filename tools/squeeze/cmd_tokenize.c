/* squeeze tokenize: prints the token ids of a text, like llama.cpp's llama-tokenize.
 *
 * --lines treats every input line as its own text, written with escapes (\\ \n \r \t \xHH) so that any byte
 * string fits on a line, and prints one line of ids per text: the batch mode the reference tests use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A text file larger than this is a mistake. */
#define MAX_TEXT_BYTES ((size_t)1 << 30)

typedef struct options {
    const char *tokenizer, *model, *prompt, *file, *save_hf;
    int no_bos, special, ids, lines, show_decoded, info;
} options;

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Undoes the --lines escapes in place; returns the new length, or -1 for a malformed escape. */
static long unescape(char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        if (++i == n) return -1;
        switch (s[i]) {
        case '\\':
            s[o++] = '\\';
            break;
        case 'n':
            s[o++] = '\n';
            break;
        case 'r':
            s[o++] = '\r';
            break;
        case 't':
            s[o++] = '\t';
            break;
        case 'x': {
            int hi = i + 1 < n ? hex_value(s[i + 1]) : -1, lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            s[o++] = (char)(hi * 16 + lo);
            i += 2;
            break;
        }
        default:
            return -1;
        }
    }
    return (long)o;
}

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            fputs("\\\\", stdout);
        else if (c >= 0x20 && c < 0x7F)
            putchar(c);
        else
            printf("\\x%02X", c);
    }
}

static int print_tokens(const sq_tokenizer *tok, const int32_t *ids, int n, int ids_only) {
    if (ids_only) {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
        return 0;
    }
    /* each token's piece is what it adds to the decoded text (a character split over byte tokens shows up
     * with its last byte) */
    sq_detokenizer *d = sq_detokenizer_create(tok);
    if (!d) {
        fprintf(stderr, "squeeze tokenize: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *piece = sq_detokenizer_push(d, ids[i], &len);
        printf("%d\t", ids[i]);
        print_escaped(piece, len);
        putchar('\n');
    }
    sq_detokenizer_free(d);
    return 0;
}

static int tokenize_lines(const sq_tokenizer *tok, char *text, size_t len, const options *o) {
    int add_bos = !o->no_bos && sq_tokenizer_adds_bos(tok);
    size_t start = 0;
    for (int line_no = 1; start < len; line_no++) {
        char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len;
        long n = unescape(text + start, end - start);
        if (n < 0) {
            fprintf(stderr, "squeeze tokenize: line %d: malformed escape (use \\\\ \\n \\r \\t \\xHH)\n",
                    line_no);
            return 1;
        }
        int32_t *ids;
        int n_ids;
        sq_error *err = sq_tokenize(tok, text + start, (size_t)n, add_bos, o->special, &ids, &n_ids);
        if (err) return cli_fail(err);
        for (int i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
        if (o->show_decoded) {
            char *dec;
            size_t dlen;
            err = sq_detokenize(tok, ids, n_ids, &dec, &dlen);
            if (err) {
                free(ids);
                return cli_fail(err);
            }
            putchar('\t');
            print_escaped(dec, dlen);
            free(dec);
        }
        putchar('\n');
        free(ids);
        start = end + 1;
    }
    return 0;
}

static const cli_verb verb = {
    .name = "tokenize",
    .usage = "(--tokenizer FILE | -m MODEL) (-p TEXT | -f FILE) [options]",
    .about = "Prints the token ids of a text, like llama.cpp's llama-tokenize.\n",
};

static int parse_options(int argc, char **argv, options *o) {
    const cli_flag flags[] = {
        CLI_TEXT_FLAG("--tokenizer", "FILE", &o->tokenizer,
                      "tokenizer.model, tokenizer.bin, tokenizer.json (with tokenizer_config.json\n"
                      "beside it) or GPT-2's encoder.json (with vocab.bpe beside it)"),
        CLI_FLAG_MODEL(&o->model, 0),
        CLI_TEXT_FLAG("-p, --prompt", "TEXT", &o->prompt, "the text"),
        CLI_TEXT_FLAG("-f, --file", "FILE", &o->file, "read the text from FILE"),
        CLI_SWITCH_FLAG("--no-bos", &o->no_bos, "do not add BOS even where the tokenizer adds it"),
        CLI_SWITCH_FLAG("--special", &o->special,
                        "match special-token strings (e.g. <|endoftext|>) in the text"),
        CLI_SWITCH_FLAG("--ids", &o->ids,
                        "print the ids space-separated instead of one 'id<TAB>piece' a line"),
        CLI_SWITCH_FLAG("--lines", &o->lines,
                        "each line of the text is a separate text with escapes\n"
                        "(\\\\ \\n \\r \\t \\xHH); prints one line of ids per text"),
        CLI_SWITCH_FLAG("--show-decoded", &o->show_decoded,
                        "with --lines: append a TAB and the escaped decoding"),
        CLI_SWITCH_FLAG(
            "--info", &o->info,
            "first print the tokenizer's kind, vocabulary size,\nBOS/EOS ids and whether it adds BOS"),
        CLI_TEXT_FLAG(
            "--save-hf", "DIR", &o->save_hf,
            "also write the tokenizer as Hugging Face tokenizer.json +\ntokenizer_config.json into DIR"),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    if (!o->tokenizer == !o->model)
        return cli_usage_error("tokenize", "give exactly one of --tokenizer and -m");
    if (o->prompt && o->file) return cli_usage_error("tokenize", "give at most one of -p and -f");
    if (!o->prompt && !o->file && !o->info && !o->save_hf)
        return cli_usage_error("tokenize", "give the text with -p or -f");
    if (o->show_decoded && !o->lines) return cli_usage_error("tokenize", "--show-decoded needs --lines");
    return CLI_CONTINUE;
}

static int run(const sq_tokenizer *tok, const options *o) {
    if (o->info)
        printf("kind=%s vocab=%d bos=%d eos=%d adds_bos=%d\n", sq_tokenizer_kind(tok),
               sq_tokenizer_vocab_size(tok), sq_tokenizer_bos(tok), sq_tokenizer_eos(tok),
               sq_tokenizer_adds_bos(tok));
    if (o->save_hf) {
        sq_error *err = sq_tokenizer_save_hf(tok, o->save_hf);
        if (err) return cli_fail(err);
    }
    if (!o->prompt && !o->file) return 0;
    char *text = NULL;
    size_t len = 0;
    if (o->file) {
        sq_error *err = sq_read_file(o->file, MAX_TEXT_BYTES, &text, &len);
        if (err) return cli_fail(err);
    } else {
        len = strlen(o->prompt);
        if (!(text = malloc(len + 1))) return 1;
        memcpy(text, o->prompt, len + 1);
    }
    int rc;
    if (o->lines) {
        rc = tokenize_lines(tok, text, len, o);
    } else {
        int32_t *ids;
        int n;
        sq_error *err =
            sq_tokenize(tok, text, len, !o->no_bos && sq_tokenizer_adds_bos(tok), o->special, &ids, &n);
        rc = err ? cli_fail(err) : print_tokens(tok, ids, n, o->ids);
        if (!err) free(ids);
    }
    free(text);
    return rc;
}

int sq_cmd_tokenize(int argc, char **argv) {
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != CLI_CONTINUE) return rc;
    if (o.tokenizer) {
        sq_tokenizer *tok;
        sq_error *err = cli_load_tokenizer(o.tokenizer, &tok);
        if (err) return cli_fail(err);
        rc = run(tok, &o);
        sq_tokenizer_free(tok);
        return rc;
    }
    sq_model *model;
    sq_error *err = cli_load_model(o.model, NULL, &model);
    if (err) return cli_fail(err);
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    if (!tok) {
        fprintf(stderr, "squeeze tokenize: %s: the model has no tokenizer (give one with --tokenizer)\n",
                o.model);
        rc = 1;
    } else {
        rc = run(tok, &o);
    }
    sq_model_free(model);
    return rc;
}
