/* Reading JSON reports with cJSON: whole-file parsing and typed field access whose errors name the file and
 * the field. */
#ifndef SQ_EVAL_JSON_UTIL_H
#define SQ_EVAL_JSON_UTIL_H

#include <cJSON.h>

#include "squeeze.h"

/* Parses the JSON file at path; *out is the root (caller frees with cJSON_Delete). */
sq_error *sq_json_load_file(const char *path, cJSON **out);

/* Field `name` of object obj. Absent fields are fine when `required` is 0 (*out is then left untouched and
 * *found, when given, set to 0); a field of the wrong type is always an error. `where` names the object in
 * messages ("report.json: variants[1]"). */
sq_error *sq_json_get_number(const cJSON *obj, const char *name, int required, const char *where, double *out,
                             int *found);
sq_error *sq_json_get_string(const cJSON *obj, const char *name, int required, const char *where,
                             const char **out);
/* An object or array field (absent: *out = NULL unless required). */
sq_error *sq_json_get_object(const cJSON *obj, const char *name, int required, const char *where,
                             const cJSON **out);
sq_error *sq_json_get_array(const cJSON *obj, const char *name, int required, const char *where,
                            const cJSON **out);

#endif
