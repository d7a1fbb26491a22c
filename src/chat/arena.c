#include "chat/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ct_chunk {
    ct_chunk *next;
    size_t size, used;
    max_align_t data[];
};

enum { CHUNK_MIN = 64 * 1024 };

void ct_arena_init(ct_arena *a, size_t limit) {
    memset(a, 0, sizeof *a);
    a->limit = limit;
}

int ct_protect(ct_arena *a, void (*fn)(ct_arena *a, void *arg), void *arg) {
    /* only locals unchanged after setjmp live here, as C requires of a function that calls setjmp */
    jmp_buf here, *outer = a->on_error;
    a->on_error = &here;
    if (setjmp(here)) {
        a->on_error = outer;
        return -1;
    }
    fn(a, arg);
    a->on_error = outer;
    return 0;
}

_Noreturn void ct_rethrow(ct_arena *a) { longjmp(*a->on_error, 1); }

void ct_arena_free(ct_arena *a) {
    for (ct_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
    a->used = 0;
    sq_error_free(a->error);
    a->error = NULL;
}

_Noreturn void ct_fail(ct_arena *a, sq_error_code code, const char *fmt, ...) {
    va_list ap;
    char msg[900];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sq_error_free(a->error);
    if (a->line > 0)
        a->error = sq_errorf(code, "chat template, line %d, column %d: %s", a->line, a->col, msg);
    else
        a->error = sq_errorf(code, "chat template: %s", msg);
    longjmp(*a->on_error, 1);
}

void *ct_alloc(ct_arena *a, size_t n) {
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0) n = align;
    ct_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > CHUNK_MIN ? n : CHUNK_MIN;
        if (size > a->limit || a->used > a->limit - size)
            ct_fail(a, SQ_ERR_NOMEM, "memory limit of %zu bytes reached", a->limit);
        c = malloc(sizeof *c + size);
        if (!c) ct_fail(a, SQ_ERR_NOMEM, "out of memory");
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->used += size + sizeof *c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

void *ct_alloc_array(ct_arena *a, size_t n, size_t elem) {
    if (elem && n > SIZE_MAX / 2 / elem)
        ct_fail(a, SQ_ERR_NOMEM, "memory limit of %zu bytes reached", a->limit);
    void *p = ct_alloc(a, n * elem);
    memset(p, 0, n * elem);
    return p;
}

void *ct_grow(ct_arena *a, void *items, size_t n, size_t *cap, size_t elem) {
    if (n < *cap) return items;
    size_t more = *cap ? *cap * 2 : 8;
    void *p = ct_alloc_array(a, more, elem);
    if (n) memcpy(p, items, n * elem);
    *cap = more;
    return p;
}

char *ct_strndup(ct_arena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) ct_fail(a, SQ_ERR_NOMEM, "string too long");
    char *p = ct_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void ct_buf_append(ct_arena *a, ct_buf *b, const char *s, size_t n) {
    if (n > b->cap - b->n) {
        if (n > SIZE_MAX / 4 - b->n) ct_fail(a, SQ_ERR_NOMEM, "string too long");
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = ct_alloc(a, cap);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

void ct_buf_putc(ct_arena *a, ct_buf *b, char c) { ct_buf_append(a, b, &c, 1); }

void ct_buf_printf(ct_arena *a, ct_buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) ct_fail(a, SQ_ERR_INTERNAL, "formatting overflow");
    ct_buf_append(a, b, tmp, (size_t)n);
}
