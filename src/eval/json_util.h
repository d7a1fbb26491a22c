/* Reading JSON reports with cJSON: whole-file parsing and typed field access whose errors name the file and
 * the field. */
#ifndef SQ_EVAL_JSON_UTIL_H
#define SQ_EVAL_JSON_UTIL_H

#include <cJSON.h>

#include "squeeze.h"

/* Parses the JSON file at path; *out is the root (caller frees with cJSON_Delete). */
SQ_NODISCARD sq_error *sq_json_load_file(const char *path, cJSON **out);

/* How a field may appear. Writers put JSON null where a result is not finite (a perplexity of infinity). */
enum {
    SQ_JSON_REQUIRED = 1, /* absence is an error */
    SQ_JSON_NULLABLE = 2  /* null is allowed and reads as absent (otherwise null is an error) */
};

/* Field `name` of object obj, by `flags` above. When the field is absent (or an allowed null) *out is left
 * untouched and *found, when given, is 0; a field of the wrong type is always an error. `where` names the
 * object in messages ("report.json: variants[1]"). */
SQ_NODISCARD sq_error *sq_json_get_number(const cJSON *obj, const char *name, int flags, const char *where,
                                          double *out, int *found);
/* Strings must be valid UTF-8. */
SQ_NODISCARD sq_error *sq_json_get_string(const cJSON *obj, const char *name, int flags, const char *where,
                                          const char **out);
/* An object or array field; *out = NULL when absent. */
SQ_NODISCARD sq_error *sq_json_get_object(const cJSON *obj, const char *name, int flags, const char *where,
                                          const cJSON **out);
SQ_NODISCARD sq_error *sq_json_get_array(const cJSON *obj, const char *name, int flags, const char *where,
                                         const cJSON **out);

#endif
