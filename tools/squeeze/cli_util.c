#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_fail(sq_error *err) {
    fprintf(stderr, "squeeze: %s\n", sq_error_message(err));
    sq_error_free(err);
    return 1;
}

int cli_usage_error(const char *verb, const char *fmt, ...) {
    fprintf(stderr, "squeeze %s: ", verb);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'squeeze %s --help')\n", verb);
    return 2;
}

sq_error *cli_load_model(const char *path, const sq_load_options *opts, sq_model **out) {
    sq_error *err = sq_model_load(path, opts, out);
    if (err) return err;
    for (int i = 0; i < sq_model_n_warnings(*out); i++)
        fprintf(stderr, "squeeze: warning: %s\n", sq_model_warning(*out, i));
    return NULL;
}

sq_error *cli_load_tokenizer(const char *path, sq_tokenizer **out) {
    sq_error *err = sq_tokenizer_load(path, out);
    if (err) return err;
    for (int i = 0; i < sq_tokenizer_n_warnings(*out); i++)
        fprintf(stderr, "squeeze: warning: %s\n", sq_tokenizer_warning(*out, i));
    return NULL;
}

int cli_parse_int(const char *text, long lo, long hi, long *out) {
    if (!text || !*text) return -1;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *text, double lo, double hi, double *out) {
    if (!text || !*text) return -1;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

const char *cli_flag_value(const char *verb, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(verb, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}
