#include "formats/rope_permute.h"

#include <string.h>

int sq_rope_rotates_rows(const char *name) {
    const char *dot = strncmp(name, "blk.", 4) == 0 ? strchr(name + 4, '.') : NULL;
    if (!dot) return 0;
    dot++;
    return !strcmp(dot, SQ_NAME_ATTN_Q) || !strcmp(dot, SQ_NAME_ATTN_K) ||
           !strcmp(dot, SQ_NAME_ATTN_Q_BIAS) || !strcmp(dot, SQ_NAME_ATTN_K_BIAS) ||
           !strcmp(dot, SQ_NAME_ATTN_Q_NORM) || !strcmp(dot, SQ_NAME_ATTN_K_NORM);
}

void sq_rope_permute_rows(const void *src, void *dst, int64_t n_rows, size_t row_bytes, int head_dim,
                          int rope_dims, sq_rope_style from, sq_rope_style to) {
    const unsigned char *s = src;
    unsigned char *d = dst;
    memcpy(d, s, (size_t)n_rows * row_bytes); /* the unrotated rows stay where they are */
    if (from == to) return;
    const int64_t half = rope_dims / 2;
    for (int64_t head = 0; head < n_rows / head_dim; head++) {
        const int64_t base = head * head_dim;
        for (int64_t i = 0; i < half; i++) {
            for (int64_t j = 0; j < 2; j++) {
                /* rotation pair i, member j: row 2i+j when interleaved, row j*half+i in halves */
                int64_t inter = base + 2 * i + j, halves = base + j * half + i;
                int64_t out = to == SQ_ROPE_INTERLEAVED ? inter : halves;
                int64_t in = to == SQ_ROPE_INTERLEAVED ? halves : inter;
                memcpy(d + (size_t)out * row_bytes, s + (size_t)in * row_bytes, row_bytes);
            }
        }
    }
}
