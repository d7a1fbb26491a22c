/* sq_model -> GGUF v3 that llama.cpp reads: general.architecture, the {arch}.* hyperparameters, the
 * vocabulary as tokenizer.ggml.*, and the tensors in their current dtype, aligned to 32 bytes.
 *
 * Mistral is written as architecture "llama" with attention.sliding_window, as llama.cpp's converter does (it
 * has no separate mistral architecture); squeeze reads such a file back as mistral. Llama-3 RoPE scaling is
 * written as llama.cpp expects it, a rope_freqs.weight tensor of per-pair divisors, plus
 * rope.scaling.original_context_length. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "model/arch.h"
#include "core/error.h"
#include "formats/formats.h"
#include "formats/fused_tensors.h"
#include "formats/gguf.h"
#include "formats/out_file.h"
#include "formats/rope_scaling.h"
#include "formats/tensor_io.h"
#include "tokenizer/tokenizer.h"

/* The metadata section is built in memory first: its entry count comes before it in the file. */
typedef struct kv_buf {
    unsigned char *data;
    size_t len, cap;
    uint64_t count;
    int oom;
} kv_buf;

static void put(kv_buf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (SQ_ARRAY_RESERVE(b->data, b->cap, b->len + n)) {
        b->oom = 1;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void put_u32(kv_buf *b, uint32_t v) { put(b, &v, 4); }
static void put_str(kv_buf *b, const char *s) {
    uint64_t n = strlen(s);
    put(b, &n, 8);
    put(b, s, (size_t)n);
}
static void key(kv_buf *b, const char *k, uint32_t type) {
    put_str(b, k);
    put_u32(b, type);
    b->count++;
}
static void kv_u32(kv_buf *b, const char *k, uint32_t v) { key(b, k, SQ_GGUF_UINT32), put_u32(b, v); }
static void kv_f32(kv_buf *b, const char *k, float v) { key(b, k, SQ_GGUF_FLOAT32), put(b, &v, 4); }
static void kv_bool(kv_buf *b, const char *k, int v) {
    unsigned char c = v != 0;
    key(b, k, SQ_GGUF_BOOL), put(b, &c, 1);
}
static void kv_str(kv_buf *b, const char *k, const char *v) { key(b, k, SQ_GGUF_STRING), put_str(b, v); }
static void kv_array(kv_buf *b, const char *k, uint32_t elem_type, uint64_t n) {
    key(b, k, SQ_GGUF_ARRAY);
    put_u32(b, elem_type);
    put(b, &n, 8);
}
static void kv_strs(kv_buf *b, const char *k, const char *const *v, int n) {
    kv_array(b, k, SQ_GGUF_STRING, (uint64_t)n);
    for (int i = 0; i < n; i++) put_str(b, v[i]);
}

static void arch_u32(kv_buf *b, const char *arch, const char *suffix, uint32_t v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    kv_u32(b, k, v);
}
static void arch_f32(kv_buf *b, const char *arch, const char *suffix, float v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    kv_f32(b, k, v);
}

typedef enum width { WIDTH_HEADS, WIDTH_KV_HEADS, WIDTH_FFN } width;

static uint32_t layer_width(const sq_layer *L, width w) {
    return (uint32_t)(w == WIDTH_HEADS ? L->n_heads : w == WIDTH_KV_HEADS ? L->n_kv_heads : L->ffn_dim);
}

/* A per-layer width: one value when the layers agree, else an array of one uint32 per layer, which
 * llama.cpp's loader reads for these keys (get_key_or_arr). */
static void arch_widths(kv_buf *b, const char *arch, const char *suffix, const sq_model *m, width w,
                        int uniform) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    const int n = uniform ? 1 : m->cfg.n_layers;
    if (uniform)
        key(b, k, SQ_GGUF_UINT32);
    else
        kv_array(b, k, SQ_GGUF_UINT32, (uint64_t)n);
    for (int l = 0; l < n; l++) put_u32(b, layer_width(&m->layers[l], w));
}

/* llama.cpp's general.file_type for the dtype most of the 2-D weights use (-1: it has none). */
static int file_type(const sq_model *m) {
    size_t bytes[SQ_DTYPE_COUNT] = {0};
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i]->ndim >= 2) bytes[m->tensors[i]->dtype] += m->tensors[i]->nbytes;
    int best = SQ_DTYPE_F32;
    for (int d = 0; d < SQ_DTYPE_COUNT; d++)
        if (bytes[d] > bytes[best]) best = d;
    return sq_dtype_info((sq_dtype)best)->gguf_file_type;
}

static void put_config(kv_buf *b, const sq_model *m, const char *arch) {
    const sq_model_config *c = &m->cfg;
    kv_str(b, "general.architecture", arch);
    if (file_type(m) >= 0) kv_u32(b, "general.file_type", (uint32_t)file_type(m));
    for (int i = 0; i < m->n_tensors; i++)
        if (sq_dtype_info(m->tensors[i]->dtype)->block_elems > 1) {
            kv_u32(b, "general.quantization_version", 2);
            break;
        }
    arch_u32(b, arch, "vocab_size", (uint32_t)c->vocab_size);
    arch_u32(b, arch, "context_length", (uint32_t)c->max_seq_len);
    arch_u32(b, arch, "embedding_length", (uint32_t)c->dim);
    arch_u32(b, arch, "block_count", (uint32_t)c->n_layers);
    const int uniform = sq_layers_uniform(m);
    arch_widths(b, arch, "feed_forward_length", m, WIDTH_FFN, uniform);
    arch_widths(b, arch, "attention.head_count", m, WIDTH_HEADS, uniform);
    arch_widths(b, arch, "attention.head_count_kv", m, WIDTH_KV_HEADS, uniform);
    arch_f32(b, arch, "rope.freq_base", c->rope_theta);
    arch_f32(b, arch, "attention.layer_norm_rms_epsilon", c->norm_eps);
    arch_u32(b, arch, "rope.dimension_count", (uint32_t)c->rope_dims);
    /* llama.cpp's head dimension is embedding_length / head_count of layer 0 unless key_length says */
    if (!uniform || c->head_dim * m->layers[0].n_heads != c->dim) {
        arch_u32(b, arch, "attention.key_length", (uint32_t)c->head_dim);
        arch_u32(b, arch, "attention.value_length", (uint32_t)c->head_dim);
    }
    if (c->sliding_window > 0) arch_u32(b, arch, "attention.sliding_window", (uint32_t)c->sliding_window);
    if (c->rope_scaling.type != SQ_ROPE_SCALING_NONE)
        arch_u32(b, arch, "rope.scaling.original_context_length", (uint32_t)c->rope_scaling.original_max_pos);
    if (c->n_experts > 0) { /* mixture of experts, as llama.cpp's converter writes it */
        const sq_arch *a = sq_arch_find(c->arch);
        arch_u32(b, arch, "expert_count", (uint32_t)c->n_experts);
        arch_u32(b, arch, "expert_used_count", (uint32_t)c->n_experts_used);
        if (a && a->hf_moe_ffn_key) arch_u32(b, arch, "expert_feed_forward_length", (uint32_t)c->ffn_dim);
        if (m->layers[0].shexp_dim)
            arch_u32(b, arch, "expert_shared_feed_forward_length", (uint32_t)m->layers[0].shexp_dim);
        if (a && c->expert_norm_topk != a->moe_norm_topk) { /* llama.cpp assumes the family's own */
            char k[128];
            snprintf(k, sizeof k, "%s.expert_weights_norm", arch);
            kv_bool(b, k, c->expert_norm_topk);
        }
    }
    if (c->rope_scaling.type == SQ_ROPE_SCALING_LONGROPE)
        arch_f32(b, arch, "rope.scaling.attn_factor", c->longrope.attn_factor);
    if (c->attn_softcap > 0) arch_f32(b, arch, "attn_logit_softcapping", c->attn_softcap);
    if (c->final_softcap > 0) arch_f32(b, arch, "final_logit_softcapping", c->final_softcap);
}

static void put_vocab(kv_buf *b, const sq_tokenizer *tok) {
    sq_vocab_spec s;
    memset(&s, 0, sizeof s);
    sq_tokenizer_get_spec(tok, &s);
    const int spm = s.type == SQ_TOKENIZER_SPM_BPE;
    kv_str(b, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    if (s.pre) kv_str(b, "tokenizer.ggml.pre", s.pre);
    kv_strs(b, "tokenizer.ggml.tokens", s.tokens, s.n_tokens);
    if (s.scores) {
        kv_array(b, "tokenizer.ggml.scores", SQ_GGUF_FLOAT32, (uint64_t)s.n_tokens);
        put(b, s.scores, (size_t)s.n_tokens * sizeof *s.scores);
    }
    kv_array(b, "tokenizer.ggml.token_type", SQ_GGUF_INT32, (uint64_t)s.n_tokens);
    for (int i = 0; i < s.n_tokens; i++) put_u32(b, s.types ? (uint32_t)s.types[i] : SQ_TOKEN_NORMAL);
    if (s.n_merges > 0) kv_strs(b, "tokenizer.ggml.merges", s.merges, s.n_merges);
    if (s.bos_id >= 0) kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)s.bos_id);
    if (s.eos_id >= 0) kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)s.eos_id);
    if (s.unk_id >= 0) kv_u32(b, "tokenizer.ggml.unknown_token_id", (uint32_t)s.unk_id);
    if (s.pad_id >= 0) kv_u32(b, "tokenizer.ggml.padding_token_id", (uint32_t)s.pad_id);
    kv_bool(b, "tokenizer.ggml.add_bos_token", s.add_bos);
    kv_bool(b, "tokenizer.ggml.add_eos_token", s.add_eos);
    if (spm) kv_bool(b, "tokenizer.ggml.add_space_prefix", s.add_space_prefix);
    if (s.chat_template) kv_str(b, "tokenizer.chat_template", s.chat_template);
}

/* The config's special ids the vocabulary does not already carry (all of them without a vocabulary): BOS, the
 * primary EOS, and up to two more end-of-generation ids in the end-of-turn and end-of-message slots, which
 * llama.cpp also stops at (a third extra id has no place in GGUF and is not written). */
static void put_stop_ids(kv_buf *b, const sq_model *m) {
    const sq_model_config *c = &m->cfg;
    const int bos = m->tokenizer ? sq_tokenizer_bos(m->tokenizer) : -1;
    int eos = m->tokenizer ? sq_tokenizer_eos(m->tokenizer) : -1;
    if (bos < 0 && c->bos_id >= 0) kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id);
    if (eos < 0 && c->n_eos_ids > 0)
        kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)(eos = c->eos_ids[0]));
    static const char *const extra[] = {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    size_t k = 0;
    for (int i = 0; i < c->n_eos_ids && k < sizeof extra / sizeof *extra; i++)
        if (c->eos_ids[i] != eos) kv_u32(b, extra[k++], (uint32_t)c->eos_ids[i]);
}

static void put_tensor_info(sq_out_file *o, const char *name, int ndim, const int64_t *shape, uint32_t type,
                            uint64_t offset) {
    uint64_t n = strlen(name);
    sq_out_u64(o, n);
    sq_out_write(o, name, (size_t)n);
    sq_out_u32(o, (uint32_t)ndim);
    for (int d = ndim - 1; d >= 0; d--) sq_out_u64(o, (uint64_t)shape[d]);
    sq_out_u32(o, type);
    sq_out_u64(o, offset);
}

/* A RoPE scaling tensor written after the model's: f32 [rope_dims/2]. */
typedef struct rope_tensor {
    const char *name;
    const float *data;
} rope_tensor;

static uint64_t align_up(uint64_t x) {
    return (x + SQ_GGUF_DEFAULT_ALIGNMENT - 1) / SQ_GGUF_DEFAULT_ALIGNMENT * SQ_GGUF_DEFAULT_ALIGNMENT;
}

sq_error *sq_gguf_save(const sq_model *m, const char *path) {
    const sq_model_config *c = &m->cfg;
    const sq_arch *a = sq_arch_find(c->arch);
    if (!a) return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: cannot write architecture %s as GGUF", path, c->arch);
    for (int i = 0; i < m->n_tensors; i++)
        if (sq_dtype_info(m->tensors[i]->dtype)->ggml_type < 0)
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: GGUF has no type for %s tensor %s", path,
                             sq_dtype_info(m->tensors[i]->dtype)->name, m->tensors[i]->name);
    const char *arch = a->gguf;
    const sq_rope_style rope = a->gguf_rope;
    /* llama.cpp takes the layer pattern, the local RoPE base and the attention scale from the architecture */
    sq_model_config implied = *c;
    sq_model_set_layer_pattern(&implied, a->gguf_swa_pattern);
    if (memcmp(implied.global_layers, c->global_layers, sizeof c->global_layers) ||
        (a->gguf_swa_pattern &&
         c->rope_local_theta != (a->gguf_rope_local_theta > 0 ? a->gguf_rope_local_theta : c->rope_theta)) ||
        c->attn_scalar != 0)
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "%s: GGUF %s cannot hold this model's local/global layer pattern, local RoPE base or "
            "attention scale (llama.cpp assumes %s's)",
            path, arch, arch);

    /* RoPE scaling as llama.cpp reads it: f32 [rope_dims/2] tensors after the model's */
    const int n_pairs = c->rope_dims / 2;
    rope_tensor extra[2];
    int n_rope = 0;
    float *freqs = NULL;
    if (c->rope_scaling.type == SQ_ROPE_SCALING_LLAMA3) {
        if (!(freqs = malloc((size_t)n_pairs * sizeof *freqs)))
            return sq_errorf(SQ_ERR_NOMEM, "out of memory");
        sq_llama3_rope_factors(c, freqs);
        extra[n_rope++] = (rope_tensor){"rope_freqs.weight", freqs};
    } else if (c->rope_scaling.type == SQ_ROPE_SCALING_LONGROPE) {
        extra[n_rope++] = (rope_tensor){"rope_factors_long.weight", c->longrope.long_factor};
        extra[n_rope++] = (rope_tensor){"rope_factors_short.weight", c->longrope.short_factor};
    }
    sq_file_tensor *files;
    int n_files;
    sq_error *err = sq_file_tensors(m, a, path, &files, &n_files);
    if (err) {
        free(freqs);
        return err;
    }
    kv_buf kv = {0};
    put_config(&kv, m, arch);
    if (m->tokenizer) put_vocab(&kv, m->tokenizer);
    put_stop_ids(&kv, m);
    sq_out_file o;
    if (kv.oom) err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory building metadata", path);
    if (!err) err = sq_out_open(&o, path);
    if (err) {
        free(kv.data);
        free(freqs);
        free(files);
        return err;
    }
    sq_out_write(&o, "GGUF", 4);
    sq_out_u32(&o, 3);
    sq_out_u64(&o, (uint64_t)n_files + (uint64_t)n_rope);
    sq_out_u64(&o, kv.count);
    sq_out_write(&o, kv.data, kv.len);
    free(kv.data);
    uint64_t offset = 0;
    for (int i = 0; i < n_files; i++) {
        const sq_file_tensor *t = &files[i];
        char name[SQ_TENSOR_NAME_MAX];
        sq_fused_to_gguf(a, t->name, name, sizeof name);
        put_tensor_info(&o, name, t->ndim, t->shape, sq_gguf_ggml_type(t->dtype), offset);
        offset = align_up(offset + t->nbytes);
    }
    for (int i = 0; i < n_rope; i++) {
        put_tensor_info(&o, extra[i].name, 1, (int64_t[]){n_pairs}, sq_gguf_ggml_type(SQ_DTYPE_F32), offset);
        offset = align_up(offset + (uint64_t)n_pairs * sizeof(float));
    }
    sq_out_pad(&o, SQ_GGUF_DEFAULT_ALIGNMENT);
    for (int i = 0; i < n_files && !err; i++) {
        sq_export_buf buf;
        err = sq_export_file_tensor(m, &files[i], -1, rope, &buf);
        if (err) break;
        sq_out_write(&o, buf.data, buf.nbytes);
        sq_out_pad(&o, SQ_GGUF_DEFAULT_ALIGNMENT);
        sq_export_release(&buf);
    }
    for (int i = 0; i < n_rope; i++) {
        sq_out_write(&o, extra[i].data, (size_t)n_pairs * sizeof(float));
        if (i + 1 < n_rope) sq_out_pad(&o, SQ_GGUF_DEFAULT_ALIGNMENT);
    }
    free(freqs);
    free(files);
    return sq_out_close(&o, err ? sq_error_wrap(err, "%s", path) : NULL);
}
