/* Fuzz targets for what the quantization verbs read: imatrix files (quantize --imatrix). */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The bytes as an imatrix file: parsed from memory and loaded from a file alike; a file that parses keeps its
 * promises (named, finite non-negative entries) and survives a save and load unchanged. */
void fuzz_imatrix(const uint8_t *data, size_t size) {
    sq_imatrix *im = NULL, *again = NULL;
    const int parsed = !fuzz_failed(sq_imatrix_parse(data, size, "fuzz", &im));
    fuzz_write("in.imatrix", data, size);
    const int loaded = !fuzz_failed(sq_imatrix_load(fuzz_path("in.imatrix"), &again));
    fuzz_require(parsed == loaded, "parsing bytes and loading the file agree");
    sq_imatrix_free(again);
    again = NULL;
    if (!parsed) return;
    const int n = sq_imatrix_n_entries(im);
    for (int i = 0; i < n; i++) {
        sq_imatrix_entry e, f;
        sq_imatrix_entry_at(im, i, &e);
        fuzz_require(e.name && e.name[0] && e.n_values > 0 && e.n_tokens >= 0, "an entry is named and sized");
        for (int j = 0; j < e.n_values; j++)
            fuzz_require(isfinite(e.values[j]) && e.values[j] >= 0, "values");
        fuzz_require(sq_imatrix_find(im, e.name, &f) && f.values == e.values,
                     "an entry is found by its name");
    }
    if (!fuzz_failed(sq_imatrix_save(im, fuzz_path("out.imatrix")))) {
        fuzz_require(!fuzz_failed(sq_imatrix_load(fuzz_path("out.imatrix"), &again)), "a saved file loads");
        fuzz_require(sq_imatrix_n_entries(again) == n, "the same entries after a round trip");
        for (int i = 0; i < n; i++) {
            sq_imatrix_entry e, f;
            sq_imatrix_entry_at(im, i, &e);
            sq_imatrix_entry_at(again, i, &f);
            fuzz_require(!strcmp(e.name, f.name) && e.n_tokens == f.n_tokens && e.n_values == f.n_values &&
                             !memcmp(e.values, f.values, (size_t)e.n_values * sizeof *e.values),
                         "an entry survives a round trip bit for bit");
        }
        sq_imatrix_free(again);
    }
    sq_imatrix_free(im);
}
