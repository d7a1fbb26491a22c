/* Planted declaration mistakes for scripts/check-errors.sh --self-test: each line marked "undeclared" must
 * be reported, and no other. Never compiled into the build. */
#include "squeeze.h"

sq_error *no_attribute(int x); /* undeclared */
SQ_NODISCARD sq_error *with_attribute(int x);
static sq_error *static_no_attribute(void) { return NULL; } /* undeclared */
SQ_NODISCARD sq_error *takes_unmarked(sq_error *err);       /* undeclared */
SQ_NODISCARD SQ_TAKES_ERROR(1) sq_error *takes_marked(sq_error *err);
void frees_unmarked(sq_error *err); /* undeclared */
const char *reads_only(const sq_error *err);

typedef struct table {
    sq_error *(*unmarked)(void *impl, int n); /* undeclared */
    SQ_NODISCARD sq_error *(*marked)(void *impl, int n);
} table;
typedef sq_error *(*unmarked_fn)(void *user); /* undeclared */
typedef SQ_NODISCARD sq_error *(*marked_fn)(void *user);

sq_error *use(void) { return static_no_attribute(); } /* undeclared */
