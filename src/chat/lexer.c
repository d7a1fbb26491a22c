#include "chat/lexer.h"

#include <errno.h>
#include <stdlib.h>

#include "chat/pystr.h"
#include "tokenizer/utf8.h"

enum { MAX_BRACKETS = 256 };

typedef struct lexer {
    ct_arena *a;
    ct_str src;
    ct_token *toks;
    size_t n, cap;
    size_t cur_pos; /* line/column cursor: positions are only ever asked for in increasing order */
    int cur_line, cur_col;
} lexer;

/* Points the arena's error location at byte pos. */
static void locate(lexer *lx, size_t pos) {
    for (; lx->cur_pos < pos && lx->cur_pos < lx->src.n; lx->cur_pos++) {
        unsigned char c = (unsigned char)lx->src.p[lx->cur_pos];
        if (c == '\n') {
            lx->cur_line++;
            lx->cur_col = 1;
        } else if ((c & 0xc0) != 0x80) {
            lx->cur_col++;
        }
    }
    lx->a->line = lx->cur_line;
    lx->a->col = lx->cur_col;
}

static ct_token *emit(lexer *lx, ct_tok_type type, size_t pos, ct_str text) {
    lx->toks = ct_grow(lx->a, lx->toks, lx->n, &lx->cap, sizeof *lx->toks);
    locate(lx, pos);
    ct_token *t = &lx->toks[lx->n++];
    *t = (ct_token){.type = type, .line = lx->cur_line, .col = lx->cur_col, .text = text};
    return t;
}

static uint32_t cp_at(const lexer *lx, size_t pos, size_t *next) {
    *next = pos;
    return py_next_cp(lx->src, next);
}

/* Position after the whitespace (Python's \s) starting at pos. */
static size_t skip_space(const lexer *lx, size_t pos) {
    while (pos < lx->src.n) {
        size_t next;
        if (!py_isspace(cp_at(lx, pos, &next))) break;
        pos = next;
    }
    return pos;
}

static int at(const lexer *lx, size_t pos, const char *s) {
    size_t n = strlen(s);
    return pos <= lx->src.n && lx->src.n - pos >= n && !memcmp(lx->src.p + pos, s, n);
}

/* The text before a tag, with whitespace control applied: "-" strips all whitespace before the tag;
 * lstrip_blocks strips the spaces and tabs from the start of the line up to a "{%" or "{#" (not "{{", and not
 * when the tag says "+") when only whitespace precedes the tag on its line. */
static ct_str strip_before_tag(ct_str text, char sign, int is_variable, int line_starting) {
    if (sign == '-') return py_strip(text, NULL, 0, 1);
    if (sign == '+' || is_variable) return text;
    size_t l_pos = text.n;
    while (l_pos > 0 && text.p[l_pos - 1] != '\n') l_pos--;
    if (l_pos == 0 && !line_starting) return text;
    ct_str rest = {text.p + l_pos, text.n - l_pos};
    if (rest.n && py_strip(rest, NULL, 1, 0).n == 0) text.n = l_pos;
    return text;
}

/* The end of a block or comment tag whose closing two characters start at pos (the sign, if any, just before
 * them at pos-1 counts only when sign_ok): after "-%}" all whitespace goes, after "%}" one newline goes
 * (trim_blocks), after "+%}" nothing. */
static size_t after_block_end(const lexer *lx, size_t pos, int sign_ok) {
    char sign = sign_ok ? lx->src.p[pos - 1] : 0;
    if (sign == '-') return skip_space(lx, pos + 2);
    if (sign == '+') return pos + 2;
    return pos + 2 + (pos + 2 < lx->src.n && lx->src.p[pos + 2] == '\n');
}

static int64_t parse_int_literal(lexer *lx, size_t start, size_t end) {
    char digits[80];
    size_t k = 0;
    int base = 10;
    size_t i = start;
    if (end - start > 2 && lx->src.p[i] == '0' && strchr("bBoOxX", lx->src.p[i + 1])) {
        char c = (char)(lx->src.p[i + 1] | 0x20);
        base = c == 'b' ? 2 : c == 'o' ? 8 : 16;
        i += 2;
    }
    for (; i < end; i++)
        if (lx->src.p[i] != '_') {
            if (k + 1 >= sizeof digits) ct_fail(lx->a, SQ_ERR_FORMAT, "integer literal too long");
            digits[k++] = lx->src.p[i];
        }
    digits[k] = 0;
    errno = 0;
    char *e;
    unsigned long long v = strtoull(digits, &e, base);
    if (errno || *e || v > INT64_MAX)
        ct_fail(lx->a, SQ_ERR_UNSUPPORTED, "integer literal does not fit 64 bits");
    return (int64_t)v;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* (\d+_)*\d+ from pos: returns the end, or pos when there is none */
static size_t digit_run(const lexer *lx, size_t pos) {
    size_t i = pos;
    if (i >= lx->src.n || !is_digit(lx->src.p[i])) return pos;
    for (;;) {
        while (i < lx->src.n && is_digit(lx->src.p[i])) i++;
        if (i + 1 < lx->src.n && lx->src.p[i] == '_' && is_digit(lx->src.p[i + 1]))
            i++;
        else
            return i;
    }
}

/* A number token at pos (a digit): jinja2's float_re, else its integer_re. Returns the end. */
static size_t lex_number(lexer *lx, size_t pos) {
    const char *s = lx->src.p;
    size_t n = lx->src.n;
    if (pos == 0 || s[pos - 1] != '.') {
        size_t i = digit_run(lx, pos), frac_end = i;
        int has_frac = 0, has_exp = 0;
        if (i < n && s[i] == '.' && digit_run(lx, i + 1) > i + 1) {
            frac_end = digit_run(lx, i + 1);
            has_frac = 1;
        }
        size_t e = frac_end, exp_end = frac_end;
        if (e < n && (s[e] == 'e' || s[e] == 'E')) {
            e++;
            if (e < n && (s[e] == '+' || s[e] == '-')) e++;
            if (digit_run(lx, e) > e) {
                exp_end = digit_run(lx, e);
                has_exp = 1;
            }
        }
        if (has_frac || has_exp) {
            size_t end = has_exp ? exp_end : frac_end;
            char buf[128];
            size_t k = 0;
            for (size_t j = pos; j < end; j++)
                if (s[j] != '_') {
                    if (k + 1 >= sizeof buf) ct_fail(lx->a, SQ_ERR_FORMAT, "float literal too long");
                    buf[k++] = s[j];
                }
            buf[k] = 0;
            ct_token *t = emit(lx, T_FLOAT, pos, (ct_str){s + pos, end - pos});
            t->f = strtod(buf, NULL);
            return end;
        }
    }
    size_t end = pos;
    char p = end + 1 < n ? (char)(s[end + 1] | 0x20) : 0;
    if (s[pos] == '0' && (p == 'b' || p == 'o' || p == 'x')) {
        size_t i = pos + 2;
        for (;;) {
            size_t j = i + (i < n && s[i] == '_');
            char c = j < n ? (char)(s[j] | 0x20) : 0;
            int ok = p == 'b'   ? (c == '0' || c == '1')
                     : p == 'o' ? (c >= '0' && c <= '7')
                                : (is_digit(c) || (c >= 'a' && c <= 'f'));
            if (!ok) break;
            i = j + 1;
        }
        if (i > pos + 2) end = i;
    }
    if (end == pos) {
        if (s[pos] == '0') { /* 0(_?0)* */
            end = pos + 1;
            while (end < n && (s[end] == '0' || (s[end] == '_' && end + 1 < n && s[end + 1] == '0')))
                end += s[end] == '_' ? 2 : 1;
        } else { /* [1-9](_?\d)* */
            end = pos + 1;
            while (end < n && (is_digit(s[end]) || (s[end] == '_' && end + 1 < n && is_digit(s[end + 1]))))
                end += s[end] == '_' ? 2 : 1;
        }
    }
    ct_token *t = emit(lx, T_INT, pos, (ct_str){s + pos, end - pos});
    t->i = parse_int_literal(lx, pos, end);
    return end;
}

static int hex_val(char c) {
    if (is_digit(c)) return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A string literal at pos (a quote), decoded as Python's unicode-escape codec decodes it after jinja2 has
 * escaped non-ASCII characters with backslashreplace. Returns the end. */
static size_t lex_string(lexer *lx, size_t pos) {
    const char *s = lx->src.p;
    char quote = s[pos];
    size_t i = pos + 1;
    ct_buf b = {0};
    for (;;) {
        if (i >= lx->src.n) {
            locate(lx, pos);
            ct_fail(lx->a, SQ_ERR_FORMAT, "unterminated string literal");
        }
        char c = s[i];
        if (c == quote) break;
        if (c != '\\') {
            ct_buf_putc(lx->a, &b, c);
            i++;
            continue;
        }
        if (i + 1 >= lx->src.n) {
            i++; /* a backslash at the very end: unterminated, reported above */
            continue;
        }
        char e = s[i + 1];
        i += 2;
        const char *simple = strchr("\\'\"abfnrtv\n", e);
        if (e && simple) {
            static const char out[] = "\\'\"\a\b\f\n\r\t\v";
            if (e != '\n') ct_buf_putc(lx->a, &b, out[simple - "\\'\"abfnrtv\n"]); /* \<newline> continues */
        } else if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int k = 0; k < 2 && i < lx->src.n && s[i] >= '0' && s[i] <= '7'; k++)
                v = v * 8 + (s[i++] - '0');
            char u[4];
            ct_buf_append(lx->a, &b, u, (size_t)sq_utf8_encode((uint32_t)v, u));
        } else if (e == 'x' || e == 'u' || e == 'U') {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (int k = 0; k < digits; k++) {
                int h = i < lx->src.n ? hex_val(s[i]) : -1;
                if (h < 0) {
                    locate(lx, i);
                    ct_fail(lx->a, SQ_ERR_FORMAT, "truncated \\%c escape in a string literal", e);
                }
                v = v * 16 + (uint32_t)h;
                i++;
            }
            if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
                locate(lx, i);
                ct_fail(lx->a, SQ_ERR_UNSUPPORTED, "string literal escape \\%c%0*x is no Unicode character",
                        e, digits, v);
            }
            char u[4];
            ct_buf_append(lx->a, &b, u, (size_t)sq_utf8_encode(v, u));
        } else if (e == 'N') {
            locate(lx, i);
            ct_fail(lx->a, SQ_ERR_UNSUPPORTED, "\\N{...} escapes in string literals are not supported");
        } else if ((unsigned char)e >= 0x80) {
            /* backslashreplace turned the character into \xNN / \uNNNN / \UNNNNNNNN, whose backslash the
             * decoder then paired with this one: the result is a backslash and that escape's text */
            size_t j = i - 1;
            uint32_t cp = py_next_cp(lx->src, &j);
            i = j;
            ct_buf_putc(lx->a, &b, '\\');
            ct_buf_printf(lx->a, &b, cp < 0x100 ? "x%02x" : cp < 0x10000 ? "u%04x" : "U%08x", cp);
        } else {
            ct_buf_putc(lx->a, &b, '\\'); /* unknown escapes stay as they are */
            ct_buf_putc(lx->a, &b, e);
        }
    }
    emit(lx, T_STRING, pos, (ct_str){b.p ? b.p : "", b.n});
    return i + 1;
}

static const char *const two_char_ops[] = {"//", "**", "==", "!=", ">=", "<="};

/* The tokens inside a "{{ ... }}" or "{% ... %}" tag starting at pos; returns the position after its end. */
static size_t lex_tag(lexer *lx, size_t pos, int is_block, size_t tag_start, int *line_starting) {
    char stack[MAX_BRACKETS];
    int depth = 0;
    const char *s = lx->src.p;
    for (;;) {
        if (pos >= lx->src.n) {
            locate(lx, tag_start);
            ct_fail(lx->a, SQ_ERR_FORMAT, "'%s' is never closed", is_block ? "{%" : "{{");
        }
        if (!depth) {
            size_t end = 0;
            if (is_block) {
                if ((s[pos] == '-' || s[pos] == '+') && at(lx, pos + 1, "%}"))
                    end = after_block_end(lx, pos + 1, 1);
                else if (at(lx, pos, "%}"))
                    end = after_block_end(lx, pos, 0);
            } else {
                if (s[pos] == '-' && at(lx, pos + 1, "}}"))
                    end = skip_space(lx, pos + 3);
                else if (at(lx, pos, "}}"))
                    end = pos + 2;
            }
            if (end) {
                emit(lx, is_block ? T_BLOCK_END : T_VAR_END, pos, (ct_str){s + pos, 2});
                *line_starting = s[end - 1] == '\n';
                return end;
            }
        }
        size_t next;
        uint32_t cp = cp_at(lx, pos, &next);
        if (py_isspace(cp)) {
            pos = skip_space(lx, pos);
        } else if (is_digit(s[pos])) {
            pos = lex_number(lx, pos);
        } else if (s[pos] == '_' || ((s[pos] | 0x20) >= 'a' && (s[pos] | 0x20) <= 'z')) {
            size_t end = pos + 1;
            while (end < lx->src.n &&
                   (s[end] == '_' || is_digit(s[end]) || ((s[end] | 0x20) >= 'a' && (s[end] | 0x20) <= 'z')))
                end++;
            emit(lx, T_NAME, pos, (ct_str){s + pos, end - pos});
            pos = end;
        } else if (s[pos] == '\'' || s[pos] == '"') {
            pos = lex_string(lx, pos);
        } else {
            size_t len = 0;
            for (size_t k = 0; k < sizeof two_char_ops / sizeof *two_char_ops && !len; k++)
                if (at(lx, pos, two_char_ops[k])) len = 2;
            if (!len && strchr("+-/*%~[](){}=.:|,;<>", s[pos]) && s[pos]) len = 1;
            if (!len) {
                locate(lx, pos);
                ct_fail(lx->a, SQ_ERR_FORMAT, "unexpected character '%.*s'", (int)(next - pos), s + pos);
            }
            char c = s[pos];
            if (len == 1 && (c == '(' || c == '[' || c == '{')) {
                if (depth == MAX_BRACKETS) {
                    locate(lx, pos);
                    ct_fail(lx->a, SQ_ERR_FORMAT, "brackets nested more than %d deep", MAX_BRACKETS);
                }
                stack[depth++] = c == '(' ? ')' : c == '[' ? ']' : '}';
            } else if (len == 1 && (c == ')' || c == ']' || c == '}')) {
                locate(lx, pos);
                if (!depth) ct_fail(lx->a, SQ_ERR_FORMAT, "unexpected '%c'", c);
                if (stack[depth - 1] != c)
                    ct_fail(lx->a, SQ_ERR_FORMAT, "unexpected '%c', expected '%c'", c, stack[depth - 1]);
                depth--;
            }
            emit(lx, T_OP, pos, (ct_str){s + pos, len});
            pos += len;
        }
    }
}

/* "{% raw %}" (with optional signs) at the "{%" at pos: the position after it, or 0 when it is not one. */
static size_t raw_tag(const lexer *lx, size_t pos, const char *word) {
    size_t i = pos + 2;
    if (i < lx->src.n && (lx->src.p[i] == '-' || lx->src.p[i] == '+')) i++;
    i = skip_space(lx, i);
    if (!at(lx, i, word)) return 0;
    i = skip_space(lx, i + strlen(word));
    if (at(lx, i, "-%}")) return skip_space(lx, i + 3);
    if (!strcmp(word, "endraw") && at(lx, i, "+%}")) return i + 3;
    if (at(lx, i, "%}")) return !strcmp(word, "endraw") ? after_block_end(lx, i, 0) : i + 2;
    return 0;
}

/* Normalises line breaks to \n and drops one trailing newline (keep_trailing_newline=False). */
static ct_str normalize(ct_arena *a, const char *src, size_t n) {
    char *out = ct_alloc(a, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            out[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            out[k++] = src[i];
        }
    }
    if (k && out[k - 1] == '\n') k--;
    out[k] = 0;
    return (ct_str){out, k};
}

void ct_lex(ct_arena *a, const char *src, size_t n, ct_token **toks, size_t *n_toks) {
    lexer lx = {.a = a, .cur_line = 1, .cur_col = 1};
    for (size_t i = 0; i < n;) {
        int len = sq_utf8_valid_len((const unsigned char *)src + i, n - i);
        if (!len) {
            lx.src = (ct_str){src, n};
            locate(&lx, i);
            ct_fail(a, SQ_ERR_FORMAT, "the template is not valid UTF-8");
        }
        i += (size_t)len;
    }
    lx.src = normalize(a, src, n);
    const char *s = lx.src.p;
    size_t pos = 0;
    int line_starting = 1;
    while (pos < lx.src.n) {
        /* the next "{{", "{%" or "{#" */
        size_t q = pos;
        for (;;) {
            const char *hit = memchr(s + q, '{', lx.src.n - q);
            q = hit ? (size_t)(hit - s) : lx.src.n;
            if (!hit || (q + 1 < lx.src.n && strchr("{%#", s[q + 1]) && s[q + 1])) break;
            q++;
        }
        if (q >= lx.src.n) {
            emit(&lx, T_DATA, pos, (ct_str){s + pos, lx.src.n - pos});
            break;
        }
        char kind = s[q + 1];
        char sign = q + 2 < lx.src.n && (s[q + 2] == '-' || s[q + 2] == '+') ? s[q + 2] : 0;
        size_t after = q + 2 + (sign != 0);
        ct_str text = strip_before_tag((ct_str){s + pos, q - pos}, sign, kind == '{', line_starting);
        if (text.n) emit(&lx, T_DATA, pos, text);
        size_t raw_end = kind == '%' ? raw_tag(&lx, q, "raw") : 0;
        if (kind == '#') {
            size_t e = after;
            while (e + 1 < lx.src.n && !(s[e] == '#' && s[e + 1] == '}')) e++;
            if (e + 1 >= lx.src.n) {
                locate(&lx, q);
                ct_fail(a, SQ_ERR_FORMAT, "comment is never closed");
            }
            pos = after_block_end(&lx, e, e > after && (s[e - 1] == '-' || s[e - 1] == '+'));
            line_starting = s[pos - 1] == '\n';
        } else if (raw_end) {
            line_starting = s[raw_end - 1] == '\n';
            size_t e = raw_end, end = 0;
            for (; e + 1 < lx.src.n; e++)
                if (s[e] == '{' && s[e + 1] == '%' && (end = raw_tag(&lx, e, "endraw"))) break;
            if (!end) {
                locate(&lx, q);
                ct_fail(a, SQ_ERR_FORMAT, "'{%% raw %%}' is never closed by '{%% endraw %%}'");
            }
            char raw_sign = s[e + 2] == '-' || s[e + 2] == '+' ? s[e + 2] : 0;
            ct_str body = strip_before_tag((ct_str){s + raw_end, e - raw_end}, raw_sign, 0, line_starting);
            if (body.n) emit(&lx, T_DATA, raw_end, body);
            pos = end;
            line_starting = s[pos - 1] == '\n';
        } else {
            emit(&lx, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, q, (ct_str){s + q, 2});
            pos = lex_tag(&lx, after, kind == '%', q, &line_starting);
        }
    }
    emit(&lx, T_EOF, lx.src.n, (ct_str){s + lx.src.n, 0});
    a->line = 0;
    *toks = lx.toks;
    *n_toks = lx.n;
}
