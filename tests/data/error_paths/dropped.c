/* Planted dropped errors for scripts/check-errors.sh --self-test: the compiler must reject each line marked
 * "dropped", and no other. Never compiled into the build. */
#include "squeeze.h"

typedef struct lm {
    SQ_NODISCARD sq_error *(*forward)(void *impl, int n);
} lm;

void calls(lm *l, const char *path, sq_model **m) {
    sq_model_load(path, NULL, m);       /* dropped */
    (void)sq_model_load(path, NULL, m); /* dropped */
    l->forward(NULL, 1);                /* dropped */
    sq_error_free(sq_model_load(path, NULL, m));
    sq_error *err = l->forward(NULL, 2);
    sq_error_free(err);
}
