/* squeeze report: combines ppl / eval / bench JSON reports into a Markdown table and an SVG Pareto plot. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: squeeze report REPORT.json [REPORT.json ...] [-o OUT.md|OUT.svg]... [--title TITLE]\n"
        "\n"
        "Merges the JSON reports of 'squeeze ppl', 'squeeze eval' and 'squeeze bench' (one row per model\n"
        "variant: its \"label\", else its model path) into a table of size, perplexity, KL divergence,\n"
        "zero-shot accuracy, decode speed and time to first token, or into an SVG plot of quality against\n"
        "size and against decode speed with each panel's Pareto frontier.\n"
        "\n"
        "  -o PATH        write Markdown (PATH ends in .md) or the SVG plot (.svg); may be given twice;\n"
        "                 without -o the Markdown table goes to stdout\n"
        "  --title TITLE  heading of the table and the plot (default \"squeeze report\")\n");
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "squeeze report: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t len = strlen(text);
    int failed = fwrite(text, 1, len, f) != len;
    failed |= fclose(f) != 0;
    if (failed) fprintf(stderr, "squeeze report: writing %s failed\n", path);
    return failed;
}

int sq_cmd_report(int argc, char **argv) {
    const char *outputs[2];
    int n_outputs = 0, n_inputs = 0;
    const char *title = NULL;
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    if (!inputs) return fprintf(stderr, "squeeze report: out of memory\n"), 1;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(inputs);
            return 0;
        } else if (!strcmp(a, "-o")) {
            const char *path = cli_flag_value("report", argc, argv, &i);
            if (!path)
                rc = 2;
            else if (!ends_with(path, ".md") && !ends_with(path, ".svg"))
                rc = cli_usage_error("report", "-o %s: the output must end in .md (table) or .svg (plot)",
                                     path);
            else if (n_outputs == 2)
                rc = cli_usage_error("report", "-o given more than twice");
            else
                outputs[n_outputs++] = path;
        } else if (!strcmp(a, "--title")) {
            if (!(title = cli_flag_value("report", argc, argv, &i))) rc = 2;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("report", "unknown option %s", a);
        } else {
            inputs[n_inputs++] = a;
        }
    }
    if (!rc && n_inputs == 0) rc = cli_usage_error("report", "no report files given");
    if (!rc && n_outputs == 2 && ends_with(outputs[0], ".md") == ends_with(outputs[1], ".md"))
        rc = cli_usage_error("report", "-o %s and -o %s are the same kind of output", outputs[0], outputs[1]);
    for (int k = 0; !rc && k < (n_outputs ? n_outputs : 1); k++) {
        sq_report_format format =
            n_outputs && ends_with(outputs[k], ".svg") ? SQ_REPORT_SVG : SQ_REPORT_MARKDOWN;
        char *text = NULL;
        sq_error *err = sq_report_render(inputs, n_inputs, title, format, &text);
        if (err)
            rc = cli_fail(err);
        else if (n_outputs)
            rc = write_text(outputs[k], text);
        else
            fputs(text, stdout);
        free(text);
    }
    free(inputs);
    return rc;
}
