/* Evaluation internals: perplexity, KL divergence, zero-shot tasks.
 *
 * Scoring runs against a small language-model seam (sq_lm) instead of sq_context directly, so the tests can
 * check windowing, batching and scoring against a plain-C reference model whose logits they know exactly.
 * sq_lm_open wraps a real model's context. */
#ifndef SQ_EVAL_EVAL_H
#define SQ_EVAL_EVAL_H

#include <stdint.h>

#include "kernels/cpu/logprob.h" /* sq_logsumexp, sq_kl_row, sq_argmax, sq_exp_nonpos */
#include "squeeze.h"

typedef struct sq_lm {
    void *impl;
    int n_vocab, n_ctx, n_seq_max;
    /* appends each sequence's tokens after its cached ones and writes the requested logits (sq_forward) */
    SQ_NODISCARD sq_error *(*forward)(void *impl, const sq_seq_batch *seqs, int n_seqs);
    SQ_NODISCARD sq_error *(*truncate)(void *impl, int seq_id, int new_len);
    void (*close)(void *impl);
} sq_lm;

/* A context over `model` on device (NULL: the CPU) for n_seq sequences of n_ctx tokens, any of them in one
 * forward call, its KV cache in rows of kv_type; skip_layers (NULL, or [n_layers], copied) names blocks every
 * forward call skips (sq_forward_ex). */
SQ_NODISCARD sq_error *sq_lm_open(const sq_model *model, const char *device, int n_ctx, int n_seq,
                                  int n_threads, sq_kv_type kv_type, const unsigned char *skip_layers,
                                  sq_lm *out);
void sq_lm_close(sq_lm *lm);

/* ---- perplexity */

typedef struct sq_ppl_plan_window {
    int64_t start;
    int len, score_from; /* positions score_from..len-1 are scored (each from the logits one before) */
} sq_ppl_plan_window;

/* The windows a protocol evaluates over n_ids tokens; *windows is malloc'ed. */
SQ_NODISCARD sq_error *sq_ppl_plan(sq_ppl_protocol protocol, int64_t n_ids, int n_ctx, int stride,
                                   sq_ppl_plan_window **windows, int *n_windows);

/* sq_perplexity over explicit language models (ref may be NULL). n_threads parallelises the scoring. */
SQ_NODISCARD sq_error *sq_ppl_run(sq_lm *lm, sq_lm *ref, const int32_t *ids, int64_t n_ids,
                                  const sq_ppl_options *opts, sq_ppl_result *res);

/* ---- reference log-prob files (--save-logits / --ref-logits), format in docs/eval.md */

typedef struct sq_ref_file sq_ref_file;

typedef struct sq_ref_file_key {
    int n_vocab, n_ctx, protocol, stride, top_k;
    int64_t n_ids, n_records;
    uint64_t ids_hash;
} sq_ref_file_key;

uint64_t sq_ids_hash(const int32_t *ids, int64_t n);
SQ_NODISCARD sq_error *sq_ref_file_create(const char *path, const sq_ref_file_key *key, sq_ref_file **out);
SQ_NODISCARD sq_error *sq_ref_file_open(const char *path, const sq_ref_file_key *expect, sq_ref_file **out);
/* Stores record `index` from a full row of reference logits and the scored token. */
SQ_NODISCARD sq_error *sq_ref_file_write(sq_ref_file *f, int64_t index, const float *ref_logits,
                                         int32_t target);
/* The stored record: the target's log-prob, the tail mass, and top_k (id, log-prob) pairs, best first. */
void sq_ref_file_read(const sq_ref_file *f, int64_t index, float *target_logp, float *tail_mass,
                      const int32_t **ids, const float **logps);
/* Closes the file; `discard` also deletes a file being written (after a failed run). */
SQ_NODISCARD sq_error *sq_ref_file_close(sq_ref_file *f, int discard);
int sq_ref_file_top_k(const sq_ref_file *f);

/* ---- zero-shot tasks */

typedef struct sq_task_request {
    char *context, *continuation; /* continuation includes its delimiter (" choice") */
    int norm_bytes;               /* the choice's own length in bytes, for acc_norm */
} sq_task_request;

typedef struct sq_task_item {
    int n_choices, gold; /* gold: -1 for greedy tasks */
    sq_task_request *choices;
} sq_task_item;

typedef enum sq_task_scoring {
    SQ_SCORE_CHOICE,  /* argmax log-likelihood over choices (acc) and per byte (acc_norm) */
    SQ_SCORE_PARTIAL, /* winogrande: choices differ in context, share the continuation: acc only */
    SQ_SCORE_GREEDY   /* lambada: the continuation must be the exact greedy output; also its perplexity */
} sq_task_scoring;

typedef struct sq_task {
    char name[32];
    sq_task_scoring scoring;
    int has_acc_norm;
    int n_items;
    sq_task_item *items;
} sq_task;

/* Reads the named task's file from dir (at most limit items; 0: all). Errors name the file and line. */
SQ_NODISCARD sq_error *sq_task_load(const char *name, const char *dir, int limit, sq_task **out);
/* Parses task file content already in memory; `file` is only used in error messages. */
SQ_NODISCARD sq_error *sq_task_parse(const char *name, const char *file, const char *data, size_t len,
                                     int limit, sq_task **out);
void sq_task_free(sq_task *task);

/* Encodes text without BOS (the scorer adds it). */
typedef SQ_NODISCARD sq_error *(*sq_encode_fn)(void *user, const char *text, size_t len, int32_t **ids,
                                               int *n_ids);

typedef struct sq_zeroshot_options {
    int n_batch, bos_id; /* bos_id: what every request starts with; -1: nothing */
    sq_progress_fn progress;
    void *progress_user;
    int64_t progress_base, progress_total; /* items finished before this task, items in all tasks */
} sq_zeroshot_options;

/* Per-choice scores, as the tests inspect them. */
typedef struct sq_choice_score {
    double logp;  /* sum of log-probs of the continuation tokens */
    int n_tokens; /* continuation tokens */
    int greedy;   /* every continuation token was the argmax */
} sq_choice_score;

/* Scores every item of the task; scores (optional) gets [item][choice] flattened in item order. */
SQ_NODISCARD sq_error *sq_zeroshot_run(sq_lm *lm, sq_encode_fn encode, void *encode_user, const sq_task *task,
                                       const sq_zeroshot_options *opts, sq_task_result *res,
                                       sq_choice_score **scores);

#endif
