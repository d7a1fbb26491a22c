/* Splits a Jinja template into tokens exactly as jinja2's lexer does with Hugging Face's settings
 * (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False): text between tags, "{{ }}" and "{% %}"
 * tags with their tokens, comments dropped, "{% raw %}" kept verbatim, and the whitespace control of "-" and
 * "+" applied to the text around tags. Line breaks (\r\n, \r) become \n first, as jinja2 normalises them. */
#ifndef SQ_CHAT_LEXER_H
#define SQ_CHAT_LEXER_H

#include "chat/value.h"

typedef enum ct_tok_type {
    T_DATA,        /* text to output as it is */
    T_VAR_BEGIN,   /* {{ */
    T_VAR_END,     /* }} */
    T_BLOCK_BEGIN, /* {% */
    T_BLOCK_END,   /* %} */
    T_NAME,
    T_STRING, /* text: the decoded literal */
    T_INT,
    T_FLOAT,
    T_OP, /* text: the operator, "+", "//", "(" ... */
    T_EOF
} ct_tok_type;

typedef struct ct_token {
    ct_tok_type type;
    int line, col; /* 1-based; columns count characters */
    ct_str text;
    int64_t i;
    double f;
} ct_token;

/* Tokens of the template source (n bytes, UTF-8) into *toks (arena), ending with T_EOF. Fails (through the
 * arena) on invalid UTF-8, unclosed tags, comments or strings, unbalanced brackets and unknown characters. */
void ct_lex(ct_arena *a, const char *src, size_t n, ct_token **toks, size_t *n_toks);

#endif
