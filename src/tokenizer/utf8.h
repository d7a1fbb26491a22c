/* UTF-8 facts the tokenizers need: strict decoding and how long a sequence announces itself to be. */
#ifndef SQ_TOKENIZER_UTF8_H
#define SQ_TOKENIZER_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the well-formed UTF-8 character at s (n bytes available), or 0 when the bytes there are not
 * one: stray continuation bytes, overlong forms, surrogates, code points past U+10FFFF, truncation. */
int sq_utf8_valid_len(const unsigned char *s, size_t n);
/* The number of bytes a sequence starting with lead byte b claims (1 for ASCII and stray bytes). */
int sq_utf8_claimed_len(unsigned char b);
/* Writes code point cp as UTF-8 to out (room for 4); returns the byte count. */
int sq_utf8_encode(uint32_t cp, char *out);

#endif
