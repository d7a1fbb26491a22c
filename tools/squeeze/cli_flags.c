/* The one flag parser and help printer of the squeeze CLI: every verb's flags are a cli_flag table (cli.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Where --help starts a flag's description, and the width it keeps to. */
#define HELP_COLUMN 28
#define HELP_WIDTH  110

int cli_usage_error(const char *verb, const char *fmt, ...) {
    fprintf(stderr, "squeeze %s: ", verb);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'squeeze %s --help')\n", verb);
    return 2;
}

void cli_list_free(cli_list *list) {
    free(list->v);
    *list = (cli_list){0};
}

/* Whether the len bytes at word are one of the '|'- or ", "-separated words of `words`. */
static int is_one_of(const char *words, const char *word, size_t len) {
    for (const char *p = words; *p;) {
        size_t n = strcspn(p, ",|");
        if (n == len && !memcmp(p, word, len)) return 1;
        p += n;
        while (*p == ',' || *p == '|' || *p == ' ') p++;
    }
    return 0;
}

static const cli_flag *find_flag(const cli_flag *flags, int n_flags, const char *name, size_t len) {
    for (int i = 0; i < n_flags; i++)
        if (is_one_of(flags[i].names, name, len)) return &flags[i];
    return NULL;
}

static void set_default(const cli_flag *f) {
    switch (f->type) {
    case CLI_SWITCH:
        *(int *)f->dst = 0;
        break;
    case CLI_TEXT:
    case CLI_CHOICE:
        *(const char **)f->dst = f->def_str;
        break;
    case CLI_TEXTS:
        *(cli_texts *)f->dst = (cli_texts){0};
        break;
    case CLI_INT:
        *(long *)f->dst = (long)f->def_num;
        break;
    case CLI_NUMBER:
        *(double *)f->dst = f->def_num;
        break;
    case CLI_LIST:
        *(cli_list *)f->dst = (cli_list){0};
        break;
    }
}

/* The whole of s as a decimal integer in [lo, hi]; bounds are integers up to 2^53, exact in a double. */
static int parse_int(const char *s, double lo, double hi, long *out) {
    if (!(*s >= '0' && *s <= '9') && *s != '-' && *s != '+') return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < (long long)lo || v > (long long)hi) return -1;
    *out = (long)v;
    return 0;
}

static int parse_number(const char *s, const cli_flag *f, double *out) {
    if (!*s || *s == ' ') return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < f->lo || v > f->hi || (f->lo_open && v == f->lo)) return -1;
    *out = v;
    return 0;
}

/* Reads one flag's value (NULL for a switch); `name` is the spelling used, for messages. */
static int set_value(const cli_verb *v, const cli_flag *f, const char *name, const char *value) {
    switch (f->type) {
    case CLI_SWITCH:
        *(int *)f->dst = 1;
        return CLI_CONTINUE;
    case CLI_TEXT:
        *(const char **)f->dst = value;
        return CLI_CONTINUE;
    case CLI_TEXTS: {
        cli_texts *t = f->dst;
        if (t->n == (int)f->hi || t->n == CLI_MAX_TEXTS)
            return cli_usage_error(v->name, "%s may be given at most %d times", name, t->n);
        t->v[t->n++] = value;
        return CLI_CONTINUE;
    }
    case CLI_CHOICE: {
        if (is_one_of(f->choices, value, strlen(value))) {
            *(const char **)f->dst = value;
            return CLI_CONTINUE;
        }
        char words[256] = "";
        for (const char *p = f->choices; *p;) {
            size_t n = strcspn(p, "|");
            snprintf(words + strlen(words), sizeof words - strlen(words), "%s%.*s", words[0] ? ", " : "",
                     (int)n, p);
            p += n + (p[n] == '|');
        }
        return cli_usage_error(v->name, "%s '%s' must be one of %s", name, value, words);
    }
    case CLI_INT:
        if (parse_int(value, f->lo, f->hi, f->dst))
            return cli_usage_error(v->name, "%s '%s' must be an integer in [%.0f, %.0f]", name, value, f->lo,
                                   f->hi);
        return CLI_CONTINUE;
    case CLI_NUMBER:
        if (parse_number(value, f, f->dst))
            return cli_usage_error(v->name, "%s '%s' must be a number in %c%g, %g]", name, value,
                                   f->lo_open ? '(' : '[', f->lo, f->hi);
        return CLI_CONTINUE;
    case CLI_LIST: {
        cli_list *list = f->dst, parsed = {0};
        sq_error *err =
            sq_parse_int_list(value, strlen(value), (int64_t)f->lo, (int64_t)f->hi, &parsed.v, &parsed.n);
        if (err || !parsed.n) {
            int rc =
                cli_usage_error(v->name,
                                "%s '%s' must be integers in [%.0f, %.0f] separated by commas or "
                                "spaces: %s",
                                name, value, f->lo, f->hi, err ? sq_error_message(err) : "the list is empty");
            sq_error_free(err);
            return rc;
        }
        cli_list_free(list); /* a repeated flag replaces the earlier list */
        *list = parsed;
        return CLI_CONTINUE;
    }
    }
    return CLI_CONTINUE;
}

/* The first spelling of a flag ("-m" of "-m, --model"). */
static int first_name_len(const cli_flag *f) { return (int)strcspn(f->names, ","); }

static int parse_flags(const cli_verb *v, const cli_flag *flags, int n_flags, int argc, char **argv,
                       int *n_operands) {
    int n_ops = 0, only_operands = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_operands || arg[0] != '-' || !arg[1]) {
            if (!n_operands) return cli_usage_error(v->name, "unknown option '%s'", arg);
            argv[++n_ops] = argv[i];
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_operands = 1;
            continue;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            cli_print_help(v, flags, n_flags, stdout);
            return 0;
        }
        const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
        int name_len = eq ? (int)(eq - arg) : (int)strlen(arg);
        const cli_flag *f = find_flag(flags, n_flags, arg, (size_t)name_len);
        if (!f) return cli_usage_error(v->name, "unknown option '%.*s'", name_len, arg);
        char name[64];
        snprintf(name, sizeof name, "%.*s", name_len, arg);
        const char *value = NULL;
        if (f->type == CLI_SWITCH && eq) return cli_usage_error(v->name, "%s takes no value", name);
        if (f->type != CLI_SWITCH && !(value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL))
            return cli_usage_error(v->name, "%s needs a value", name);
        int rc = set_value(v, f, name, value);
        if (rc != CLI_CONTINUE) return rc;
    }
    for (int k = 0; k < n_flags; k++) {
        const cli_flag *f = &flags[k];
        if (f->required && f->type == CLI_TEXT && !*(const char **)f->dst)
            return cli_usage_error(v->name, "%.*s %s is required", first_name_len(f), f->names, f->value);
    }
    if (n_operands) *n_operands = n_ops;
    return CLI_CONTINUE;
}

int cli_parse(const cli_verb *v, const cli_flag *flags, int n_flags, int argc, char **argv, int *n_operands) {
    for (int k = 0; k < n_flags; k++) set_default(&flags[k]);
    int rc = parse_flags(v, flags, n_flags, argc, argv, n_operands);
    if (rc != CLI_CONTINUE)
        for (int k = 0; k < n_flags; k++)
            if (flags[k].type == CLI_LIST) cli_list_free(flags[k].dst);
    return rc;
}

/* ------------------------------------------------------------------ --help */

/* " (default ...)" or " (required)" after a flag's description, or "". */
static void describe_default(const cli_flag *f, char *buf, size_t n) {
    buf[0] = 0;
    if (f->required)
        snprintf(buf, n, " (required)");
    else if (f->def_shown && *f->def_shown)
        snprintf(buf, n, " (default: %s)", f->def_shown);
    else if (f->def_shown)
        return;
    else if (f->type == CLI_INT)
        snprintf(buf, n, " (default %.0f)", f->def_num);
    else if (f->type == CLI_NUMBER) /* %g: a float default such as 0.95f shows as 0.95 */
        snprintf(buf, n, " (default %g)", f->def_num);
    else if ((f->type == CLI_TEXT || f->type == CLI_CHOICE) && f->def_str)
        snprintf(buf, n, " (default %s)", f->def_str);
}

/* "  names VALUE   help": each line of the help under the first, at HELP_COLUMN */
static void print_row(FILE *out, const char *left, const char *help) {
    int width = fprintf(out, "  %s", left);
    if (width >= HELP_COLUMN) fputc('\n', out), width = 0;
    for (const char *line = help;;) {
        const char *nl = strchr(line, '\n');
        fprintf(out, "%*s%.*s\n", HELP_COLUMN - width, "", nl ? (int)(nl - line) : (int)strlen(line), line);
        width = 0;
        if (!nl) break;
        line = nl + 1;
    }
}

void cli_print_help(const cli_verb *v, const cli_flag *flags, int n_flags, FILE *out) {
    fprintf(out, "usage: squeeze %s %s\n", v->name, v->usage);
    if (v->about) fprintf(out, "\n%s", v->about);
    fprintf(out, "\noptions:\n");
    for (int k = 0; k < n_flags; k++) {
        const cli_flag *f = &flags[k];
        char left[128], suffix[256], help[1024];
        if (f->type == CLI_SWITCH)
            snprintf(left, sizeof left, "%s", f->names);
        else
            snprintf(left, sizeof left, "%s %s", f->names, f->value);
        describe_default(f, suffix, sizeof suffix);
        /* the default goes on a line of its own when it would make the last one too long */
        const char *last = strrchr(f->help, '\n');
        size_t last_len = strlen(last ? last + 1 : f->help);
        int own_line = suffix[0] && HELP_COLUMN + last_len + strlen(suffix) > HELP_WIDTH;
        snprintf(help, sizeof help, "%s%s%s", f->help, own_line ? "\n" : "", suffix + own_line);
        print_row(out, left, help);
    }
    print_row(out, "-h, --help", "print this help");
}
