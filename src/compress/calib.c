/* The block-by-block calibration loop (squeeze.h, "calibration"): GPTQ's `llama_sequential`, SparseGPT's and
 * Wanda's `prepare_calibration_input` + per-layer loop, on squeeze's layer steps.
 *
 *   hidden[s] = embed(sample s)                         for every sample      [n_samples][seq_len][dim]
 *   for block l:
 *       run block l on hidden, tap on   -> statistics of its four inputs (and on_input with the activations);
 *                                          in a mixture-of-experts block also two per expert, each over the
 *                                          tokens routed to that expert only
 *       method.apply_block(l, stats)       (edits block l's weights)
 *       run block l on hidden again     -> hidden (the next block's inputs, from the changed weights)
 *
 * Samples go through the context several at a time (one sequence each, batch_tokens per step); each step is
 * begin / set_hidden / layer / get_hidden / end, and the sequences are cleared after it, so a block's keys
 * and values never outlive the step that wrote them. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

#define N_POINTS (SQ_TAP_FFN_DOWN + 1) /* the block's four linear-layer inputs */

typedef struct calib_run {
    sq_model *model;
    const sq_calib_samples *samples;
    const sq_calib_method *method;
    sq_context_options ctx_opts;
    int batch;             /* samples per forward step */
    sq_context *ctx;       /* n_seq_max = batch, n_ctx = seq_len */
    sq_seq_batch *seqs;    /* [batch] one step's sequences */
    float *hidden;         /* [n_samples][seq_len][dim] the current block's input */
    int layer;             /* block being gathered, -1: tap ignored */
    sq_calib_stats *stats; /* [n_stats]: the four points, then expert e's two at N_POINTS + 2e (+1) */
    int n_stats;
    double *xd; /* [batch * seq_len][max width] one tap chunk in double, for dsyrk */
    size_t xd_elems;
    sq_error *err; /* first failure inside the tap (out of memory) */
} calib_run;

static void free_stats(calib_run *r) {
    for (int i = 0; i < r->n_stats; i++) {
        sq_calib_stats *s = &r->stats[i];
        free(s->xtx);
        free(s->sum_sq);
        free(s->sum_abs);
        free(s->max_abs);
    }
    free(r->stats);
    r->stats = NULL;
    r->n_stats = 0;
}

/* Fresh zeroed statistics for block l's inputs, widths from its weights: the four points, and in a
 * mixture-of-experts block each expert's two (its FFN_DOWN point is the shared expert's down input, width 0
 * without one). */
static SQ_NODISCARD sq_error *alloc_stats(calib_run *r, int l) {
    free_stats(r);
    const sq_layer *L = &r->model->layers[l];
    const sq_linear first[N_POINTS] = {[SQ_TAP_ATTN_IN] = SQ_LINEAR_Q,
                                       [SQ_TAP_ATTN_OUT] = SQ_LINEAR_O,
                                       [SQ_TAP_FFN_IN] = SQ_LINEAR_GATE,
                                       [SQ_TAP_FFN_DOWN] = SQ_LINEAR_DOWN}; /* a weight each input feeds */
    const int n = N_POINTS + 2 * L->n_experts;
    if (!(r->stats = calloc((size_t)n, sizeof *r->stats)))
        return sq_errorf(SQ_ERR_NOMEM, "calibration: out of memory for block %d's statistics", l);
    r->n_stats = n;
    const unsigned want = r->method->stats;
    for (int i = 0; i < n; i++) {
        sq_calib_stats *s = &r->stats[i];
        const int expert = i < N_POINTS ? -1 : (i - N_POINTS) / 2;
        const sq_tap_point p = i < N_POINTS         ? (sq_tap_point)i
                               : (i - N_POINTS) % 2 ? SQ_TAP_EXPERT_DOWN
                                                    : SQ_TAP_EXPERT_IN;
        int64_t rows, cols;
        sq_layer_linear_shape(L,
                              i < N_POINTS            ? first[i]
                              : p == SQ_TAP_EXPERT_IN ? SQ_LINEAR_GATE
                                                      : SQ_LINEAR_DOWN,
                              &rows, &cols);
        if (L->n_experts && p == SQ_TAP_FFN_DOWN) cols = L->shexp_dim;
        const size_t w = (size_t)cols;
        *s = (sq_calib_stats){.layer = l, .point = p, .expert = expert, .width = (int)cols};
        if (!w) continue;
        if (((want & SQ_CALIB_XTX) && !(s->xtx = calloc(w * w, sizeof *s->xtx))) ||
            ((want & SQ_CALIB_SUM_SQ) && !(s->sum_sq = calloc(w, sizeof *s->sum_sq))) ||
            ((want & SQ_CALIB_SUM_ABS) && !(s->sum_abs = calloc(w, sizeof *s->sum_abs))) ||
            ((want & SQ_CALIB_MAX_ABS) && !(s->max_abs = calloc(w, sizeof *s->max_abs))))
            return sq_errorf(SQ_ERR_NOMEM, "calibration: out of memory for block %d's statistics (width %zu)",
                             l, w);
    }
    return NULL;
}

static void tap(void *user, int layer, sq_tap_point point, int expert, const float *x, int n, int width) {
    calib_run *r = user;
    const int i = point < N_POINTS ? (int)point
                  : point == SQ_TAP_EXPERT_IN || point == SQ_TAP_EXPERT_DOWN
                      ? N_POINTS + 2 * expert + (point == SQ_TAP_EXPERT_DOWN)
                      : -1;
    if (layer != r->layer || i < 0 || i >= r->n_stats || r->err) return;
    sq_calib_stats *s = &r->stats[i];
    if (point < N_POINTS && r->method->on_input)
        r->method->on_input(r->method->user, layer, point, x, n, width);
    s->n_tokens += n;
    for (int t = 0; t < n; t++) {
        const float *row = x + (size_t)t * width; /* [width] */
        for (int j = 0; j < width; j++) {
            const double v = row[j], a = fabs(v);
            if (s->sum_sq) s->sum_sq[j] += v * v;
            if (s->sum_abs) s->sum_abs[j] += a;
            if (s->max_abs && a > s->max_abs[j]) s->max_abs[j] = a;
        }
    }
    if (!s->xtx) return;
    const size_t need = (size_t)n * width;
    if (need > r->xd_elems) {
        double *xd = realloc(r->xd, need * sizeof *xd);
        if (!xd) {
            r->err = sq_errorf(SQ_ERR_NOMEM, "calibration: out of memory for %zu activations", need);
            return;
        }
        r->xd = xd;
        r->xd_elems = need;
    }
    for (size_t i = 0; i < need; i++) r->xd[i] = x[i];
    /* upper triangle (row-major) of xtx += X^T X; the lower one is mirrored when the block is done */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, width, n, 1.0, r->xd, width, 1.0, s->xtx, width);
}

static void mirror_xtx(sq_calib_stats *s) {
    if (!s->xtx) return;
    for (int i = 0; i < s->width; i++)
        for (int j = 0; j < i; j++) s->xtx[(size_t)i * s->width + j] = s->xtx[(size_t)j * s->width + i];
}

static SQ_NODISCARD sq_error *new_context(calib_run *r) {
    sq_context_free(r->ctx);
    r->ctx = NULL;
    SQ_TRY(sq_context_create(r->model, &r->ctx_opts, &r->ctx));
    sq_context_set_tap(r->ctx, tap, r);
    return NULL;
}

/* One forward step over samples [s0, s0 + n): the embeddings into hidden (layer < 0), or block `layer` run on
 * hidden, writing its outputs back when `keep`. */
static SQ_NODISCARD sq_error *step(calib_run *r, int s0, int n, int layer, int keep) {
    const int T = r->samples->seq_len, dim = r->model->cfg.dim;
    sq_seq_batch *seqs = r->seqs;
    for (int i = 0; i < n; i++)
        seqs[i] =
            (sq_seq_batch){.seq_id = i, .tokens = r->samples->ids + (size_t)(s0 + i) * T, .n_tokens = T};
    float *h = r->hidden + (size_t)s0 * T * dim; /* [n][T][dim] */
    SQ_TRY(sq_forward_begin(r->ctx, seqs, n));
    sq_error *err = NULL;
    if (layer >= 0) {
        err = sq_forward_set_hidden(r->ctx, h);
        if (!err) err = sq_forward_layer(r->ctx, layer);
    }
    if (!err && keep) err = sq_forward_get_hidden(r->ctx, h);
    sq_error *end = sq_forward_end(r->ctx);
    if (!err)
        err = end;
    else
        sq_error_free(end);
    for (int i = 0; i < n; i++) {
        sq_error *t = sq_seq_truncate(r->ctx, i, 0);
        if (!err)
            err = t;
        else
            sq_error_free(t);
    }
    return err;
}

static SQ_NODISCARD sq_error *pass(calib_run *r, int layer, int keep) {
    for (int s0 = 0; s0 < r->samples->n_samples; s0 += r->batch) {
        const int n = r->samples->n_samples - s0 < r->batch ? r->samples->n_samples - s0 : r->batch;
        SQ_TRY(step(r, s0, n, layer, keep));
        if (r->err) {
            sq_error *e = r->err;
            r->err = NULL;
            return e;
        }
    }
    return NULL;
}

static SQ_NODISCARD sq_error *check(const sq_model *model, const sq_calib_samples *s,
                                    const sq_calib_method *m, const sq_calib_options *o) {
    if (!s || !s->ids || s->n_samples < 1 || s->seq_len < 1 || !m)
        return sq_errorf(SQ_ERR_INVALID_ARG, "calibration: no samples or no method");
    if (s->seq_len > model->cfg.max_seq_len)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "calibration: samples of %d tokens exceed the model's context of %d", s->seq_len,
                         model->cfg.max_seq_len);
    if (model->cfg.n_experts && !m->experts)
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "calibration: %s is a mixture-of-experts model; this calibrated method does not "
            "support expert tensors (GPTQ, Wanda and SparseGPT calibrate each expert on its own tokens; "
            "round to nearest and depth pruning need no calibration)",
            model->cfg.arch);
    if (m->stats & ~(unsigned)(SQ_CALIB_XTX | SQ_CALIB_SUM_SQ | SQ_CALIB_SUM_ABS | SQ_CALIB_MAX_ABS))
        return sq_errorf(SQ_ERR_INVALID_ARG, "calibration: unknown statistics flags 0x%x", m->stats);
    if (o->n_threads < 0 || o->n_threads > 1024 || o->batch_tokens < 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "calibration: invalid options (threads %d, batch_tokens %d)",
                         o->n_threads, o->batch_tokens);
    const size_t n = (size_t)s->n_samples * s->seq_len;
    for (size_t i = 0; i < n; i++)
        if (s->ids[i] < 0 || s->ids[i] >= model->cfg.vocab_size)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "calibration: sample %zu, token %zu: id %d is outside the vocabulary of %d",
                             i / s->seq_len, i % s->seq_len, s->ids[i], model->cfg.vocab_size);
    return NULL;
}

SQ_NODISCARD sq_error *sq_calibrate(sq_model *model, const sq_calib_samples *samples,
                                    const sq_calib_method *method, const sq_calib_options *opts) {
    const sq_calib_options o = opts ? *opts : (sq_calib_options){0};
    SQ_TRY(check(model, samples, method, &o));
    const int T = samples->seq_len, L = model->cfg.n_layers;
    int batch = (o.batch_tokens ? o.batch_tokens : 2048) / T;
    if (batch < 1) batch = 1;
    if (batch > samples->n_samples) batch = samples->n_samples;
    if (batch > 1024) batch = 1024;
    calib_run r = {.model = model, .samples = samples, .method = method, .batch = batch, .layer = -1};
    r.ctx_opts = (sq_context_options){
        .n_ctx = T, .n_seq_max = batch, .n_threads = o.n_threads, .n_batch_max = batch * T};
    const size_t n_hidden = (size_t)samples->n_samples * T * model->cfg.dim;
    r.hidden = malloc(n_hidden * sizeof *r.hidden);
    r.seqs = malloc((size_t)batch * sizeof *r.seqs);
    sq_error *err =
        r.hidden && r.seqs
            ? NULL
            : sq_errorf(SQ_ERR_NOMEM, "calibration: out of memory for %zu hidden-state values", n_hidden);
    if (!err) err = new_context(&r);
    if (!err) err = pass(&r, -1, 1);
    for (int l = 0; !err && l < L; l++) {
        err = alloc_stats(&r, l);
        r.layer = l;
        if (!err) err = pass(&r, l, !method->changes_weights);
        r.layer = -1;
        if (err) break;
        for (int i = 0; i < r.n_stats; i++) mirror_xtx(&r.stats[i]);
        if (method->apply_block) {
            /* the model may change only while no context holds it; shapes may change (width pruning) */
            sq_context_free(r.ctx);
            r.ctx = NULL;
            err = method->apply_block(method->user, model, l, r.stats);
            if (!err) err = new_context(&r);
        }
        if (!err && method->changes_weights) err = pass(&r, l, 1);
        if (!err && o.progress) o.progress(o.progress_user, l + 1, L);
    }
    sq_context_free(r.ctx);
    free_stats(&r);
    free(r.xd);
    free(r.hidden);
    free(r.seqs);
    return err;
}
