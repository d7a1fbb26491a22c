/* Lookups in the table of weight formats (dtype.h). */
#include "core/dtype.h"

#include <string.h>

const sq_dtype_traits *sq_dtype_info(sq_dtype dtype) {
    return (unsigned)dtype < SQ_DTYPE_COUNT ? &sq_dtype_table[dtype] : NULL;
}

int sq_dtype_from_name(const char *name) {
    for (int i = 0; i < SQ_DTYPE_COUNT; i++)
        if (strcmp(sq_dtype_table[i].name, name) == 0) return i;
    return -1;
}
