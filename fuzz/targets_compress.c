/* Fuzz target for what squeeze compress reads: a recipe (docs/recipes.md). */
#include <string.h>

#include "harness.h"

void fuzz_recipe(const uint8_t *data, size_t size) {
    sq_recipe *r = NULL;
    if (fuzz_failed(sq_recipe_parse((const char *)data, size, "recipe.json", &r))) {
        fuzz_require(r == NULL, "a refused recipe is not returned");
        return;
    }
    int n = sq_recipe_n_steps(r);
    fuzz_require(n >= 1 && n <= SQ_RECIPE_MAX_STEPS, "a recipe has 1..16 steps");
    for (int i = 0; i < n; i++) {
        const char *label = sq_recipe_step_label(r, i);
        fuzz_require(label && (!strncmp(label, "prune ", 6) || !strncmp(label, "quantize ", 9)),
                     "every step is labelled by its action");
    }
    fuzz_require(sq_recipe_step_label(r, n) == NULL, "no label past the last step");
    sq_recipe_free(r);
}
