/* squeeze report: combines ppl / eval / bench JSON reports into a Markdown table and an SVG Pareto plot. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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

static const cli_verb verb = {
    .name = "report",
    .usage = "REPORT.json [REPORT.json ...] [-o OUT.md|OUT.svg]... [--title TITLE]",
    .about =
        "Merges the JSON reports of 'squeeze ppl', 'squeeze eval' and 'squeeze bench' (one row per model\n"
        "variant: its \"label\", else its model path) into a table of size, perplexity, KL divergence,\n"
        "zero-shot accuracy, decode speed and time to first token, or into an SVG plot of quality "
        "against\n"
        "size and against decode speed with each panel's Pareto frontier.\n",
    .operands = "REPORT.json",
};

int sq_cmd_report(int argc, char **argv) {
    cli_texts outputs;
    const char *title;
    const cli_flag flags[] = {
        CLI_TEXTS_FLAG(
            "-o, --output", "PATH", &outputs, 2,
            "write the Markdown table (PATH ends in .md) or the SVG plot\n(.svg); may be given twice",
            .def_shown = "the Markdown table on stdout"),
        CLI_TEXT_FLAG("--title", "TITLE", &title, "heading of the table and the plot",
                      .def_shown = "\"squeeze report\""),
    };
    int n_inputs;
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, &n_inputs);
    if (rc != CLI_CONTINUE) return rc;
    const char *const *inputs = (const char *const *)argv + 1;
    if (n_inputs == 0) return cli_usage_error("report", "no report files given");
    for (int k = 0; k < outputs.n; k++)
        if (!ends_with(outputs.v[k], ".md") && !ends_with(outputs.v[k], ".svg"))
            return cli_usage_error("report", "-o %s: the output must end in .md (table) or .svg (plot)",
                                   outputs.v[k]);
    if (outputs.n == 2 && ends_with(outputs.v[0], ".md") == ends_with(outputs.v[1], ".md"))
        return cli_usage_error("report", "-o %s and -o %s are the same kind of output", outputs.v[0],
                               outputs.v[1]);
    rc = 0;
    for (int k = 0; !rc && k < (outputs.n ? outputs.n : 1); k++) {
        sq_report_format format =
            outputs.n && ends_with(outputs.v[k], ".svg") ? SQ_REPORT_SVG : SQ_REPORT_MARKDOWN;
        char *text = NULL;
        sq_error *err = sq_report_render(inputs, n_inputs, title, format, &text);
        if (err)
            rc = cli_fail(err);
        else if (outputs.n)
            rc = write_text(outputs.v[k], text);
        else
            fputs(text, stdout);
        free(text);
    }
    return rc;
}
