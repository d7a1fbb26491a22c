/* squeeze report internals: the reports of several runs merged into one row per model variant, and the two
 * renderings of that table (Markdown in report.c, the SVG plot in report_svg.c). */
#ifndef SQ_EVAL_REPORT_H
#define SQ_EVAL_REPORT_H

#include <stdio.h>

#include "squeeze.h"

/* A measured number and whether any report gave it. */
typedef struct sq_report_value {
    int present;
    double value;
} sq_report_value;

typedef struct sq_report_variant {
    char *key;  /* identity: the "label" when a report gives one, else the model path */
    char *name; /* what the table and plot show: the label, or the model file's name */
    sq_report_value size_bytes;
    sq_report_value ppl, kl, zero_shot_avg; /* zero-shot average accuracy in [0, 1] */
    sq_report_value decode_tok_s, ttft_s;   /* at the smallest batch size the bench measured */
    int bench_batch;                        /* that batch size, 0 without a bench report */
} sq_report_variant;

typedef struct sq_report_table {
    sq_report_variant *variants; /* [n_variants], in order of first appearance */
    int n_variants;
    size_t cap_variants;
} sq_report_table;

/* Reads and merges the reports; a later report's value replaces an earlier one's for the same variant. */
SQ_NODISCARD sq_error *sq_report_table_load(const char *const *paths, int n_paths, sq_report_table *table);
void sq_report_table_free(sq_report_table *table);

SQ_NODISCARD sq_error *sq_report_write_markdown(const sq_report_table *table, const char *title, FILE *out);
SQ_NODISCARD sq_error *sq_report_write_svg(const sq_report_table *table, const char *title, FILE *out);

#endif
