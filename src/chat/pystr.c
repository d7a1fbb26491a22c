#include "chat/pystr.h"
#include "chat/pyunicode.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/utf8.h"

int py_isspace(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20);
    return py_has_prop(cp, PY_SPACE);
}

int py_has_prop(uint32_t cp, py_prop prop) {
    const py_ranges *rs = &py_props[prop];
    size_t lo = 0, hi = rs->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < rs->r[mid].first)
            hi = mid;
        else if (cp > rs->r[mid].last)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

const py_case_entry *py_case_lookup(uint32_t cp) {
    size_t lo = 0, hi = py_case_table_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < py_case_table[mid].cp)
            hi = mid;
        else if (cp > py_case_table[mid].cp)
            lo = mid + 1;
        else
            return &py_case_table[mid];
    }
    return NULL;
}

uint32_t py_next_cp(ct_str s, size_t *i) {
    const unsigned char *p = (const unsigned char *)s.p + *i;
    unsigned char c = p[0];
    size_t left = s.n - *i;
    if (c < 0x80 || left < 2) {
        *i += 1;
        return c;
    }
    if (c < 0xe0 || left < 3) {
        *i += 2;
        return (uint32_t)(c & 0x1f) << 6 | (p[1] & 0x3f);
    }
    if (c < 0xf0 || left < 4) {
        *i += 3;
        return (uint32_t)(c & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
    }
    *i += 4;
    return (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 | (uint32_t)(p[2] & 0x3f) << 6 |
           (p[3] & 0x3f);
}

size_t py_len(ct_str s) {
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++) n += ((unsigned char)s.p[i] & 0xc0) != 0x80;
    return n;
}

size_t py_offset(ct_str s, size_t k) {
    size_t i = 0;
    while (k > 0 && i < s.n) {
        py_next_cp(s, &i);
        k--;
    }
    return i;
}

size_t py_index_of_offset(ct_str s, size_t off) { return py_len((ct_str){s.p, off}); }

static int in_chars(uint32_t cp, const ct_str *chars) {
    if (!chars) return py_isspace(cp);
    for (size_t i = 0; i < chars->n;)
        if (py_next_cp(*chars, &i) == cp) return 1;
    return 0;
}

ct_str py_strip(ct_str s, const ct_str *chars, int left, int right) {
    size_t start = 0, end = s.n;
    if (left) {
        while (start < end) {
            size_t j = start;
            if (!in_chars(py_next_cp(s, &j), chars)) break;
            start = j;
        }
    }
    if (right) {
        while (end > start) {
            size_t j = end - 1;
            while (j > start && ((unsigned char)s.p[j] & 0xc0) == 0x80) j--;
            size_t k = j;
            if (!in_chars(py_next_cp(s, &k), chars)) break;
            end = j;
        }
    }
    return (ct_str){s.p + start, end - start};
}

int64_t py_find(ct_str s, ct_str sub, size_t from) {
    if (from > s.n) return -1;
    if (sub.n == 0) return (int64_t)from;
    for (size_t i = from; i + sub.n <= s.n; i++) {
        const char *hit = memchr(s.p + i, sub.p[0], s.n - sub.n + 1 - i);
        if (!hit) return -1;
        i = (size_t)(hit - s.p);
        if (!memcmp(hit, sub.p, sub.n)) return (int64_t)i;
    }
    return -1;
}

int py_startswith(ct_str s, ct_str prefix) { return prefix.n <= s.n && !memcmp(s.p, prefix.p, prefix.n); }

int py_endswith(ct_str s, ct_str suffix) {
    return suffix.n <= s.n && !memcmp(s.p + s.n - suffix.n, suffix.p, suffix.n);
}

ct_str py_replace(ct_arena *a, ct_str s, ct_str old, ct_str repl, int64_t count) {
    ct_buf b = {0};
    if (old.n == 0) {
        /* Python: "ab".replace("", "-") == "-a-b-" (count limits the insertions) */
        size_t i = 0;
        for (;;) {
            if (count != 0) {
                ct_buf_append(a, &b, repl.p, repl.n);
                if (count > 0) count--;
            }
            if (i >= s.n) break;
            size_t j = i;
            py_next_cp(s, &j);
            ct_buf_append(a, &b, s.p + i, j - i);
            i = j;
        }
    } else {
        size_t i = 0;
        while (count != 0) {
            int64_t hit = py_find(s, old, i);
            if (hit < 0) break;
            ct_buf_append(a, &b, s.p + i, (size_t)hit - i);
            ct_buf_append(a, &b, repl.p, repl.n);
            i = (size_t)hit + old.n;
            if (count > 0) count--;
        }
        ct_buf_append(a, &b, s.p + i, s.n - i);
    }
    return (ct_str){b.p ? b.p : "", b.n};
}

/* Splits into a temporary array of pieces, then makes the list. */
typedef struct pieces {
    ct_str *p;
    size_t n, cap;
} pieces;

static void push_piece(ct_arena *a, pieces *ps, ct_str s) {
    ps->p = ct_grow(a, ps->p, ps->n, &ps->cap, sizeof *ps->p);
    ps->p[ps->n++] = s;
}

static ct_value pieces_list(ct_arena *a, const pieces *ps) {
    ct_value v = ct_list_new(a, ps->n, 0);
    for (size_t k = 0; k < ps->n; k++) v.list->items[k] = ct_string(ps->p[k]);
    return v;
}

/* the byte offset of the code point before offset i */
static size_t prev_cp(ct_str s, size_t i) {
    do i--;
    while (i > 0 && ((unsigned char)s.p[i] & 0xc0) == 0x80);
    return i;
}

static int space_at(ct_str s, size_t i) { return py_isspace(py_next_cp(s, &i)); }

static void split_whitespace(ct_arena *a, pieces *ps, ct_str s, int64_t maxsplit) {
    size_t i = 0;
    for (;;) {
        while (i < s.n && space_at(s, i)) py_next_cp(s, &i);
        if (i >= s.n) return;
        if (maxsplit == 0) {
            push_piece(a, ps, (ct_str){s.p + i, s.n - i});
            return;
        }
        size_t start = i;
        while (i < s.n && !space_at(s, i)) py_next_cp(s, &i);
        push_piece(a, ps, (ct_str){s.p + start, i - start});
        if (maxsplit > 0) maxsplit--;
    }
}

static void rsplit_whitespace(ct_arena *a, pieces *ps, ct_str s, int64_t maxsplit) {
    size_t i = s.n; /* pieces are found right to left, then reversed */
    for (;;) {
        while (i > 0 && space_at(s, prev_cp(s, i))) i = prev_cp(s, i);
        if (i == 0) break;
        if (maxsplit == 0) {
            push_piece(a, ps, (ct_str){s.p, i});
            break;
        }
        size_t end = i;
        while (i > 0 && !space_at(s, prev_cp(s, i))) i = prev_cp(s, i);
        push_piece(a, ps, (ct_str){s.p + i, end - i});
        if (maxsplit > 0) maxsplit--;
    }
    for (size_t k = 0; k < ps->n / 2; k++) {
        ct_str t = ps->p[k];
        ps->p[k] = ps->p[ps->n - 1 - k];
        ps->p[ps->n - 1 - k] = t;
    }
}

static void split_sep(ct_arena *a, pieces *ps, ct_str s, ct_str sep, int64_t maxsplit, int from_right) {
    if (!from_right) {
        size_t i = 0;
        while (maxsplit != 0) {
            int64_t hit = py_find(s, sep, i);
            if (hit < 0) break;
            push_piece(a, ps, (ct_str){s.p + i, (size_t)hit - i});
            i = (size_t)hit + sep.n;
            if (maxsplit > 0) maxsplit--;
        }
        push_piece(a, ps, (ct_str){s.p + i, s.n - i});
        return;
    }
    size_t end = s.n;
    while (maxsplit != 0 && end >= sep.n) {
        size_t k = end - sep.n;
        for (;; k--) {
            if (!memcmp(s.p + k, sep.p, sep.n)) break;
            if (k == 0) goto done;
        }
        push_piece(a, ps, (ct_str){s.p + k + sep.n, end - k - sep.n});
        end = k;
        if (maxsplit > 0) maxsplit--;
    }
done:
    push_piece(a, ps, (ct_str){s.p, end});
    for (size_t k = 0; k < ps->n / 2; k++) {
        ct_str t = ps->p[k];
        ps->p[k] = ps->p[ps->n - 1 - k];
        ps->p[ps->n - 1 - k] = t;
    }
}

ct_value py_split(ct_arena *a, ct_str s, const ct_str *sep, int64_t maxsplit, int from_right) {
    pieces ps = {0};
    if (sep && sep->n == 0) ct_fail(a, SQ_ERR_INVALID_ARG, "split: empty separator");
    if (!sep)
        (from_right ? rsplit_whitespace : split_whitespace)(a, &ps, s, maxsplit);
    else
        split_sep(a, &ps, s, *sep, maxsplit, from_right);
    return pieces_list(a, &ps);
}

/* str.splitlines(): breaks at \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029 */
ct_value py_splitlines(ct_arena *a, ct_str s, int keepends) {
    pieces ps = {0};
    size_t start = 0;
    for (size_t i = 0; i < s.n;) {
        size_t at = i;
        uint32_t cp = py_next_cp(s, &i);
        int brk = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || (cp >= 0x1c && cp <= 0x1e) ||
                  cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!brk) continue;
        if (cp == '\r' && i < s.n && s.p[i] == '\n') i++;
        push_piece(a, &ps, (ct_str){s.p + start, (keepends ? i : at) - start});
        start = i;
    }
    if (start < s.n) push_piece(a, &ps, (ct_str){s.p + start, s.n - start});
    return pieces_list(a, &ps);
}

static void put_cp(ct_arena *a, ct_buf *b, uint32_t cp) {
    char u[4];
    ct_buf_append(a, b, u, (size_t)sq_utf8_encode(cp, u));
}

typedef enum { MAP_UPPER, MAP_LOWER, MAP_TITLE } map_kind;

/* Python's full case mapping of one character (SpecialCasing included: "ß".upper() == "SS"). */
static void put_mapped(ct_arena *a, ct_buf *b, uint32_t cp, map_kind kind) {
    const py_case_entry *e = py_case_lookup(cp);
    if (!e) {
        put_cp(a, b, cp);
        return;
    }
    const uint32_t *m = kind == MAP_UPPER ? e->upper : kind == MAP_LOWER ? e->lower : e->title;
    for (int k = 0; k < 3 && m[k]; k++) put_cp(a, b, m[k]);
}

/* Python's rule for a capital sigma (U+03A3) at byte offset i: final (ς) after a cased letter and not before
 * one, case-ignorable characters skipped on both sides. */
static int final_sigma(ct_str s, size_t i) {
    uint32_t c = 0;
    size_t j = i;
    int found = 0;
    while (j > 0) {
        j = prev_cp(s, j);
        size_t k = j;
        c = py_next_cp(s, &k);
        if (!py_has_prop(c, PY_CASE_IGNORABLE)) {
            found = 1;
            break;
        }
    }
    if (!found || !py_has_prop(c, PY_CASED)) return 0;
    j = i;
    py_next_cp(s, &j);
    while (j < s.n) {
        c = py_next_cp(s, &j);
        if (!py_has_prop(c, PY_CASE_IGNORABLE)) return !py_has_prop(c, PY_CASED);
    }
    return 1;
}

/* lower() of the character at byte offset i of s */
static void put_lower(ct_arena *a, ct_buf *b, ct_str s, size_t i, uint32_t cp) {
    if (cp == 0x3a3)
        put_cp(a, b, final_sigma(s, i) ? 0x3c2 : 0x3c3);
    else
        put_mapped(a, b, cp, MAP_LOWER);
}

ct_str py_case_map(ct_arena *a, ct_str s, py_case mode) {
    ct_buf b = {0};
    int prev_cased = 0;
    for (size_t i = 0; i < s.n;) {
        size_t at = i;
        uint32_t cp = py_next_cp(s, &i);
        switch (mode) {
        case PY_UPPER:
            put_mapped(a, &b, cp, MAP_UPPER);
            break;
        case PY_LOWER:
            put_lower(a, &b, s, at, cp);
            break;
        case PY_CAPITALIZE:
            if (at == 0)
                put_mapped(a, &b, cp, MAP_TITLE);
            else
                put_lower(a, &b, s, at, cp);
            break;
        case PY_TITLE:
            if (prev_cased)
                put_lower(a, &b, s, at, cp);
            else
                put_mapped(a, &b, cp, MAP_TITLE);
            prev_cased = py_has_prop(cp, PY_CASED);
            break;
        case PY_SWAPCASE:
            if (py_has_prop(cp, PY_UPPERCASE))
                put_lower(a, &b, s, at, cp);
            else if (py_has_prop(cp, PY_LOWERCASE))
                put_mapped(a, &b, cp, MAP_UPPER);
            else
                put_cp(a, &b, cp);
            break;
        }
    }
    return (ct_str){b.p ? b.p : "", b.n};
}

static int title_separator(uint32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || py_isspace(cp);
}

ct_str py_jinja_title(ct_arena *a, ct_str s) {
    /* jinja2: item[0].upper() + item[1:].lower() for every item of re.split(r"([-\s({\[<]+)", s) */
    ct_buf b = {0};
    for (size_t i = 0; i < s.n;) {
        size_t start = i;
        uint32_t cp = py_next_cp(s, &i);
        int sep = title_separator(cp);
        while (i < s.n) {
            size_t j = i;
            if (title_separator(py_next_cp(s, &j)) != sep) break;
            i = j;
        }
        /* the item is s[start, i): its first character upper-cased, the rest lower-cased as a string of its
         * own */
        put_mapped(a, &b, cp, MAP_UPPER);
        size_t rest = start;
        py_next_cp(s, &rest);
        ct_str tail = py_case_map(a, (ct_str){s.p + rest, i - rest}, PY_LOWER);
        ct_buf_append(a, &b, tail.p, tail.n);
    }
    return (ct_str){b.p ? b.p : "", b.n};
}

void py_float_repr(double x, char *out) {
    if (isnan(x)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(x)) {
        strcpy(out, x < 0 ? "-inf" : "inf");
        return;
    }
    if (x == 0) {
        strcpy(out, signbit(x) ? "-0.0" : "0.0");
        return;
    }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, x);
        if (strtod(e, NULL) == x) break;
    }
    /* e is "-d.ddde+XX": collect the digits and the decimal exponent */
    char digits[20];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int decpt = atoi(q + 1) + 1; /* digits d1 d2 ... mean 0.d1d2... * 10^decpt */
    char *o = out;
    if (neg) *o++ = '-';
    if (decpt <= -4 || decpt > 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
        return;
    }
    if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int k = 0; k < -decpt; k++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else if (decpt >= nd) {
        memcpy(o, digits, (size_t)nd);
        o += nd;
        for (int k = nd; k < decpt; k++) *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(nd - decpt));
        o += nd - decpt;
    }
    *o = 0;
}

static int py_isprintable(uint32_t cp) {
    if (cp < 0x80) return cp >= 0x20 && cp < 0x7f;
    return py_has_prop(cp, PY_PRINTABLE);
}

void py_str_repr(ct_arena *a, ct_buf *b, ct_str s) {
    char quote = memchr(s.p, '\'', s.n) && !memchr(s.p, '"', s.n) ? '"' : '\'';
    ct_buf_putc(a, b, quote);
    for (size_t i = 0; i < s.n;) {
        size_t start = i;
        uint32_t cp = py_next_cp(s, &i);
        if (cp == (uint32_t)quote || cp == '\\') {
            ct_buf_putc(a, b, '\\');
            ct_buf_putc(a, b, (char)cp);
        } else if (cp == '\t') {
            ct_buf_append(a, b, "\\t", 2);
        } else if (cp == '\n') {
            ct_buf_append(a, b, "\\n", 2);
        } else if (cp == '\r') {
            ct_buf_append(a, b, "\\r", 2);
        } else if (py_isprintable(cp)) {
            ct_buf_append(a, b, s.p + start, i - start);
        } else if (cp < 0x100) {
            ct_buf_printf(a, b, "\\x%02x", cp);
        } else if (cp < 0x10000) {
            ct_buf_printf(a, b, "\\u%04x", cp);
        } else {
            ct_buf_printf(a, b, "\\U%08x", cp);
        }
    }
    ct_buf_putc(a, b, quote);
}

/* Digits with single underscores between them, as Python's number syntax allows; copies the digits (without
 * underscores) into out (room for n+1). Returns the digit count, or -1. */
static int digits_with_underscores(const char *p, size_t n, char *out, size_t *len) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '_') {
            if (i == 0 || i + 1 == n || p[i - 1] == '_' || p[i + 1] < '0' || p[i + 1] > '9') return -1;
            continue;
        }
        if (p[i] < '0' || p[i] > '9') return -1;
        out[k++] = p[i];
    }
    out[k] = 0;
    *len = k;
    return k ? 0 : -1;
}

int py_parse_int(ct_str s, int64_t *out) {
    ct_str t = py_strip(s, NULL, 1, 1);
    char buf[64];
    size_t i = 0, len;
    int neg = 0;
    if (i < t.n && (t.p[i] == '+' || t.p[i] == '-')) neg = t.p[i++] == '-';
    if (t.n - i >= sizeof buf || digits_with_underscores(t.p + i, t.n - i, buf, &len)) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) {
        /* "-9223372036854775808" overflows as a positive number but fits negated */
        if (!(neg && !strcmp(buf, "9223372036854775808"))) return -1;
        *out = INT64_MIN;
        return 0;
    }
    *out = neg ? -v : v;
    return 0;
}

int py_parse_float(ct_arena *a, ct_str s, double *out) {
    ct_str t = py_strip(s, NULL, 1, 1);
    size_t i = 0;
    int neg = 0;
    if (i < t.n && (t.p[i] == '+' || t.p[i] == '-')) neg = t.p[i++] == '-';
    ct_str body = {t.p + i, t.n - i};
    const char *specials[] = {"inf", "infinity", "nan"};
    for (int k = 0; k < 3; k++)
        if (body.n == strlen(specials[k]) && !strncasecmp(body.p, specials[k], body.n)) {
            *out = k < 2 ? (neg ? -INFINITY : INFINITY) : NAN;
            return 0;
        }
    /* digits [. digits] [e [sign] digits], each digit run possibly with underscores */
    char *copy = ct_alloc(a, body.n + 2), *o = copy;
    size_t j = 0, len;
    int mantissa_digits = 0;
    for (int part = 0; part < 2; part++) {
        size_t start = j;
        while (j < body.n && ((body.p[j] >= '0' && body.p[j] <= '9') || body.p[j] == '_')) j++;
        if (j > start) {
            if (digits_with_underscores(body.p + start, j - start, o, &len)) return -1;
            o += len;
            mantissa_digits += (int)len;
        }
        if (part == 0 && j < body.n && body.p[j] == '.') {
            *o++ = '.';
            j++;
        } else {
            break;
        }
    }
    if (!mantissa_digits) return -1;
    if (j < body.n && (body.p[j] == 'e' || body.p[j] == 'E')) {
        *o++ = 'e';
        j++;
        if (j < body.n && (body.p[j] == '+' || body.p[j] == '-')) *o++ = body.p[j++];
        size_t start = j;
        while (j < body.n && ((body.p[j] >= '0' && body.p[j] <= '9') || body.p[j] == '_')) j++;
        if (j == start || digits_with_underscores(body.p + start, j - start, o, &len)) return -1;
        o += len;
    }
    if (j != body.n) return -1;
    *o = 0;
    double v = strtod(copy, NULL);
    *out = neg ? -v : v;
    return 0;
}
