/* PLACEHOLDER: replaced by the formats module. */
#include "core/error.h"
#include "formats/formats.h"
sq_error *sq_gguf_load(const char *path, sq_model *m) {
    (void)m;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: GGUF reader not built yet", path);
}
sq_error *sq_gguf_save(const sq_model *m, const char *path) {
    (void)m;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: GGUF writer not built yet", path);
}
