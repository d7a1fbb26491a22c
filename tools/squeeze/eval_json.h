/* Helpers shared by 'squeeze ppl' and 'squeeze eval': the model description and file writing of their JSON
 * reports (layout in docs/report-format.md). */
#ifndef SQ_EVAL_JSON_H
#define SQ_EVAL_JSON_H

#include <cjson/cJSON.h>

#include "squeeze.h"

/* {"path", "bytes" (on disk), "weight_bytes", "n_params", "arch", "file_format", "vocab_size", "max_seq_len"}
 */
cJSON *eval_json_model(const char *path, const sq_model *model);
/* On disk: a file's size, or the sum of a directory's regular files. 0 when unknown. */
long long eval_path_bytes(const char *path);
/* Writes the report (pretty-printed). Returns 0, or prints why it failed and returns 1. */
int eval_json_write(const char *path, const cJSON *report);
/* A number, or JSON null when it is not finite. */
cJSON *eval_json_number(double v);

#endif
