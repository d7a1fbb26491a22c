/* Arena memory and error unwinding for the chat-template engine.
 *
 * A compiled template (its AST) and one rendering (every value it makes) each live in one arena that is freed
 * whole, so nothing inside is freed piecemeal. That makes errors cheap: ct_fail() records an sq_error and
 * longjmp()s back to the entry point (compile or render), which frees the arena; no partially built value can
 * leak. The arena enforces a byte budget: a hostile template that grows strings or lists without bound fails
 * with a clear error instead of exhausting memory. */
#ifndef SQ_CHAT_ARENA_H
#define SQ_CHAT_ARENA_H

#include <setjmp.h>
#include <stddef.h>

#include "core/error.h"

typedef struct ct_chunk ct_chunk;

typedef struct ct_arena {
    ct_chunk *head;
    size_t used;       /* bytes handed out (chunk overhead included) */
    size_t limit;      /* most bytes this arena may hand out */
    jmp_buf *on_error; /* set by ct_protect */
    sq_error *error;   /* what ct_fail reported */
    int line, col;     /* where in the template the work is (1-based; 0: nowhere), for error messages */
} ct_arena;

void ct_arena_init(ct_arena *a, size_t limit);
void ct_arena_free(ct_arena *a); /* and a->error, if still there */

/* Runs fn(a, arg); returns 0, or -1 when it failed (a->error then holds the error). Calls nest: an inner
 * ct_protect catches the failures of its own fn only. */
int ct_protect(ct_arena *a, void (*fn)(ct_arena *a, void *arg), void *arg);
/* Passes a caught failure (a->error) on to the enclosing ct_protect. */
_Noreturn void ct_rethrow(ct_arena *a);

/* n bytes aligned for any type; never returns NULL (fails through ct_fail past the budget). */
void *ct_alloc(ct_arena *a, size_t n);
/* A new array of n elements of size elem, overflow-checked, zeroed. */
void *ct_alloc_array(ct_arena *a, size_t n, size_t elem);
/* Room for one more element in an arena array holding n elements of size elem with capacity *cap: returns
 * the array, moved to twice the room when it was full (the old storage is abandoned to the arena). */
void *ct_grow(ct_arena *a, void *items, size_t n, size_t *cap, size_t elem);
/* Copies n bytes into the arena and appends a NUL (not counted in n). */
char *ct_strndup(ct_arena *a, const char *s, size_t n);

/* Stores an error "chat template, line L, column C: <message>" and jumps back to the entry point. */
_Noreturn void ct_fail(ct_arena *a, sq_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A growable byte buffer inside an arena (old storage is abandoned to the arena when it grows). */
typedef struct ct_buf {
    char *p;
    size_t n, cap;
} ct_buf;

void ct_buf_append(ct_arena *a, ct_buf *b, const char *s, size_t n);
void ct_buf_putc(ct_arena *a, ct_buf *b, char c);
void ct_buf_printf(ct_arena *a, ct_buf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
