/* Shared pieces of the squeeze command-line tool: each verb lives in cmd_<verb>.c and is a thin client of
 * include/squeeze.h. Library errors are printed here and turned into exit codes; nothing below exits. */
#ifndef SQ_CLI_H
#define SQ_CLI_H

#include <stddef.h>

#include "squeeze.h"

int sq_cmd_run(int argc, char **argv);
int sq_cmd_info(int argc, char **argv);
int sq_cmd_convert(int argc, char **argv);
int sq_cmd_tokenize(int argc, char **argv);
int sq_cmd_logits(int argc, char **argv);
int sq_cmd_ppl(int argc, char **argv);
int sq_cmd_eval(int argc, char **argv);
int sq_cmd_bench(int argc, char **argv);
int sq_cmd_report(int argc, char **argv);
int sq_cmd_chat_template(int argc, char **argv);

/* Prints "squeeze: <message>" to stderr, frees err, returns exit code 1. */
SQ_TAKES_ERROR(1) int cli_fail(sq_error *err);
/* Prints "squeeze <verb>: <printf message>" to stderr and returns exit code 2 (usage error). */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing for flag values: the whole string must be a number within [lo, hi]. 0 on success. */
int cli_parse_int(const char *text, long lo, long hi, long *out);
int cli_parse_float(const char *text, double lo, double hi, double *out);

/* sq_model_load / sq_tokenizer_load that print what loading worked around, one "squeeze: warning: ..." line
 * per load warning on stderr. Every verb loads through these. */
SQ_NODISCARD sq_error *cli_load_model(const char *path, const sq_load_options *opts, sq_model **out);
SQ_NODISCARD sq_error *cli_load_tokenizer(const char *path, sq_tokenizer **out);

/* The value following flag argv[*i] (advancing *i), or NULL after printing a usage error. */
const char *cli_flag_value(const char *verb, int argc, char **argv, int *i);

#endif
