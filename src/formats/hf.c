/* PLACEHOLDER: replaced by the formats module. */
#include "core/error.h"
#include "formats/formats.h"
sq_error *sq_hf_load(const char *dir, sq_model *m) {
    (void)m;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: Hugging Face reader not built yet", dir);
}
sq_error *sq_hf_save(const sq_model *m, const char *dir) {
    (void)m;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: Hugging Face writer not built yet", dir);
}
