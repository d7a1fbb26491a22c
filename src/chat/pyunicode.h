/* The Unicode facts of Python's str methods, generated from Python by scripts/gen-pyunicode.py
 * (pyunicode_table.c): full case mappings and the character properties Python's algorithms consult. */
#ifndef SQ_CHAT_PYUNICODE_H
#define SQ_CHAT_PYUNICODE_H

#include <stddef.h>
#include <stdint.h>

typedef struct py_range {
    uint32_t first, last;
} py_range;

typedef struct py_ranges {
    const py_range *r; /* sorted, disjoint */
    size_t n;
} py_ranges;

typedef enum py_prop {
    PY_SPACE,          /* str.isspace() */
    PY_PRINTABLE,      /* str.isprintable() */
    PY_CASED,          /* Unicode's Cased: has an upper, lower or title case */
    PY_CASE_IGNORABLE, /* skipped when Python decides whether a capital sigma ends a word */
    PY_UPPERCASE,      /* str.isupper() of the character alone */
    PY_LOWERCASE,      /* str.islower() of the character alone */
    PY_TITLECASE,      /* a titlecase letter (Lt) */
    PY_N_PROPS
} py_prop;

extern const py_ranges py_props[PY_N_PROPS];

/* Characters whose upper, lower or title case differs from themselves; the mappings are up to three code
 * points, zero-padded. Sorted by cp. */
typedef struct py_case_entry {
    uint32_t cp;
    uint32_t upper[3], lower[3], title[3];
} py_case_entry;

extern const py_case_entry py_case_table[];
extern const size_t py_case_table_len;

int py_has_prop(uint32_t cp, py_prop prop);
/* The entry of cp, or NULL when all its cases are itself. */
const py_case_entry *py_case_lookup(uint32_t cp);

#endif
