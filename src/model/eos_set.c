/* The model's end-of-generation set: every id its files name as ending a generated text. */
#include "core/error.h"
#include "model/model.h"

sq_error *sq_model_add_eos(sq_model_config *c, int id, sq_warnings *w, const char *source) {
    if (id < 0 || id >= c->vocab_size) return NULL;
    for (int i = 0; i < c->n_eos_ids; i++)
        if (c->eos_ids[i] == id) return NULL;
    if (c->n_eos_ids == SQ_MAX_EOS_IDS)
        return sq_warn(w, "%s: more than %d end-of-generation ids; %d is not used", source, SQ_MAX_EOS_IDS,
                       id);
    c->eos_ids[c->n_eos_ids++] = id;
    return NULL;
}

const int32_t *sq_model_eos_ids(const sq_model *m, int *n_ids) {
    *n_ids = m->cfg.n_eos_ids;
    return m->cfg.eos_ids;
}

int sq_model_is_eos(const sq_model *m, int32_t id) {
    for (int i = 0; i < m->cfg.n_eos_ids; i++)
        if (m->cfg.eos_ids[i] == id) return 1;
    return 0;
}
