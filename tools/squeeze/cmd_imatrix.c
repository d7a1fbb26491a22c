/* squeeze imatrix: the importance matrix of a model on calibration text, for quantize --imatrix. */
#include <stdio.h>

#include "cli.h"

static const cli_verb verb = {
    .name = "imatrix",
    .usage = "-m MODEL -f TEXT -o IMATRIX [options]",
    .about = "Runs calibration windows of TEXT through MODEL block by block and writes, for every weight\n"
             "matrix of the blocks, the mean square of each of its input channels over the windows' tokens\n"
             "(llama.cpp's importance matrix, in squeeze's own file format: docs/formats.md). squeeze\n"
             "quantize --imatrix IMATRIX weighs each value's rounding error by it.\n"
             "The file appears only when complete.\n",
};

int sq_cmd_imatrix(int argc, char **argv) {
    const char *in, *text, *out, *tokenizer;
    long threads, samples_n, len, seed;
    int no_progress;
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&in, 1),
        CLI_TEXT_FLAG("-f, --file", "TEXT", &text, "calibration text file: windows drawn at random",
                      .required = 1),
        CLI_TEXT_FLAG("-o, --output", "IMATRIX", &out, "the imatrix file to write", .required = 1),
        CLI_INT_FLAG("--calib-samples", "N", &samples_n, 1, 1 << 20, 128, "calibration windows"),
        CLI_INT_FLAG("--calib-len", "N", &len, 2, CLI_MAX_CTX, 512,
                     "tokens per calibration window (at most the model's context)"),
        CLI_FLAG_SEED(&seed, 0, "seed of the calibration windows' positions"),
        CLI_FLAG_THREADS(&threads),
        CLI_FLAG_TOKENIZER(&tokenizer),
        CLI_FLAG_NO_PROGRESS(&no_progress),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    sq_model *model;
    sq_error *err = cli_load_model(in, &(sq_load_options){.tokenizer_path = tokenizer}, &model);
    if (err) return cli_fail(err);
    sq_calib_samples samples = {0};
    if ((rc = cli_calib_samples("imatrix", model, text, (int)samples_n, (int)len, seed, &samples)) !=
        CLI_CONTINUE) {
        sq_model_free(model);
        return rc;
    }
    cli_progress *bar = no_progress ? NULL : cli_progress_create("imatrix");
    sq_imatrix *im = NULL;
    const double t0 = sq_monotonic_seconds();
    err = sq_imatrix_compute(model, &samples,
                             &(sq_calib_options){.n_threads = (int)threads,
                                                 .progress = bar ? cli_progress_update : NULL,
                                                 .progress_user = bar},
                             &im);
    cli_progress_free(bar);
    if (!err) err = sq_imatrix_save(im, out);
    if (!err)
        fprintf(stderr, "squeeze imatrix: %d entries from %d windows of %d tokens in %.1f s; wrote %s\n",
                sq_imatrix_n_entries(im), samples.n_samples, samples.seq_len, sq_monotonic_seconds() - t0,
                out);
    sq_imatrix_free(im);
    sq_calib_samples_free(&samples);
    sq_model_free(model);
    return err ? cli_fail(err) : 0;
}
