/* Python's str semantics on UTF-8 strings: what chat templates do with text (whitespace, strip, case, find,
 * replace, split) must give exactly what Python gives, since Hugging Face renders templates with jinja2.
 * Strings here are valid UTF-8 (checked where they enter the engine). */
#ifndef SQ_CHAT_PYSTR_H
#define SQ_CHAT_PYSTR_H

#include <stdint.h>

#include "chat/value.h"

/* str.isspace() of one code point. */
int py_isspace(uint32_t cp);
/* Decodes the code point at s.p[*i] and advances *i past it. */
uint32_t py_next_cp(ct_str s, size_t *i);
size_t py_len(ct_str s); /* code points */
/* Byte offset of code point index k (0..len); k past the end gives s.n. */
size_t py_offset(ct_str s, size_t k);
/* Code point index of byte offset off (at a character boundary). */
size_t py_index_of_offset(ct_str s, size_t off);
/* strip / lstrip / rstrip: chars NULL strips whitespace, else any code point in *chars. No copy. */
ct_str py_strip(ct_str s, const ct_str *chars, int left, int right);
/* Byte offset of the first occurrence of sub at or after byte offset from, or -1. */
int64_t py_find(ct_str s, ct_str sub, size_t from);
int py_startswith(ct_str s, ct_str prefix);
int py_endswith(ct_str s, ct_str suffix);
/* str.replace(old, new, count): count < 0 replaces all; an empty old inserts new around every code point. */
ct_str py_replace(ct_arena *a, ct_str s, ct_str old, ct_str repl, int64_t count);
/* str.split / str.rsplit(sep, maxsplit): sep NULL splits on runs of whitespace, dropping empty pieces. Fails
 * for an empty sep, as Python does. Returns a list of strings. */
ct_value py_split(ct_arena *a, ct_str s, const ct_str *sep, int64_t maxsplit, int from_right);
/* str.splitlines(keepends): breaks at \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029. */
ct_value py_splitlines(ct_arena *a, ct_str s, int keepends);

typedef enum py_case { PY_UPPER, PY_LOWER, PY_CAPITALIZE, PY_TITLE, PY_SWAPCASE } py_case;
/* str.upper/lower/capitalize/title/swapcase with Python's full case mappings ("ß".upper() == "SS") and its
 * final-sigma rule ("ΣΑΣ".lower() == "σας"). */
ct_str py_case_map(ct_arena *a, ct_str s, py_case mode);
/* jinja2's title filter: the first character of every word (after "-", whitespace, or an opening bracket)
 * upper-cased, the rest lower-cased. */
ct_str py_jinja_title(ct_arena *a, ct_str s);

/* repr(float) / str(float): the shortest digits that round-trip, "1.0", "1e-05", "1e+16", "inf", "nan". out
 * needs 32 bytes. */
void py_float_repr(double x, char *out);
/* repr(str): quoted with ' (or " when the text has ' and no "), escapes as Python writes them. */
void py_str_repr(ct_arena *a, ct_buf *b, ct_str s);
/* Python's int(str) (optional sign, digits with single underscores between them, surrounding whitespace).
 * Returns 0 and sets *out, or -1 when the text is no integer in base 10 or does not fit 64 bits. */
int py_parse_int(ct_str s, int64_t *out);
/* Python's float(str), including "inf", "nan", "1e5", "1_000.5". Returns 0 and sets *out, or -1. */
int py_parse_float(ct_arena *a, ct_str s, double *out);

#endif
