/* The KL probe of sensitivity.h: reference distributions once (sq_perplexity with the model as its own
 * reference, written to a file), then per probe one edit, one sq_perplexity reading them, one edit back. */
#include "compress/quant/sensitivity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"

struct sq_kl_probe {
    char path[4096]; /* the reference distributions */
    const sq_calib_samples *s;
    int n_threads;
};

static sq_ppl_options probe_options(const sq_kl_probe *k) {
    return (sq_ppl_options){.protocol = SQ_PPL_WINDOWS,
                            .n_ctx = k->s->seq_len,
                            .n_threads = k->n_threads,
                            .bos_id = -1, /* the windows begin as the samples do */
                            .source = "calibration samples"};
}

SQ_NODISCARD sq_error *sq_kl_probe_create(sq_model *model, const sq_calib_samples *s, int n_threads,
                                          sq_kl_probe **out) {
    *out = NULL;
    sq_kl_probe *k = calloc(1, sizeof *k);
    if (!k) return sq_errorf(SQ_ERR_NOMEM, "sensitivity: out of memory");
    k->s = s;
    k->n_threads = n_threads;
    const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(k->path, sizeof k->path, "%s/squeeze-kl-XXXXXX", dir);
    const int fd = mkstemp(k->path);
    if (fd < 0) {
        sq_error *err = sq_errorf(SQ_ERR_IO, "sensitivity: cannot make a temporary file in %s", dir);
        free(k);
        return err;
    }
    close(fd);
    sq_ppl_options o = probe_options(k);
    o.ref = model;
    o.ref_logits_out = k->path;
    sq_ppl_result res;
    sq_error *err = sq_perplexity(model, s->ids, (int64_t)s->n_samples * s->seq_len, &o, &res);
    if (err) {
        sq_kl_probe_free(k);
        return sq_error_wrap(err, "sensitivity: the reference distributions");
    }
    sq_ppl_result_free(&res);
    *out = k;
    return NULL;
}

SQ_NODISCARD sq_error *sq_kl_probe_measure(sq_kl_probe *k, sq_model *model, const char *name, sq_dtype dtype,
                                           const void *data, size_t nbytes, double *kl) {
    const sq_tensor *t = sq_model_find_tensor(model, name);
    if (!t) return sq_errorf(SQ_ERR_INVALID_ARG, "sensitivity: the model has no tensor %s", name);
    const sq_dtype from = t->dtype;
    void *orig = malloc(t->nbytes); /* [nbytes] the tensor as it was */
    if (!orig) return sq_errorf(SQ_ERR_NOMEM, "sensitivity: no memory for a copy of %s", name);
    const size_t orig_bytes = t->nbytes;
    memcpy(orig, t->data, orig_bytes);
    const sq_tensor_edit probe = {
        .name = name, .dtype = sq_dtype_info(dtype)->name, .data = data, .nbytes = nbytes};
    sq_error *err = sq_model_edit_tensors(model, &probe, 1);
    if (!err) {
        sq_ppl_options o = probe_options(k);
        o.ref_logits_in = k->path;
        sq_ppl_result res;
        err = sq_perplexity(model, k->s->ids, (int64_t)k->s->n_samples * k->s->seq_len, &o, &res);
        if (!err) {
            *kl = res.kl_mean;
            sq_ppl_result_free(&res);
        }
        const sq_tensor_edit back = {
            .name = name, .dtype = sq_dtype_info(from)->name, .data = orig, .nbytes = orig_bytes};
        sq_error *err2 = sq_model_edit_tensors(model, &back, 1);
        if (err2 && err)
            sq_error_free(err2);
        else if (err2)
            err = err2;
    }
    free(orig);
    return err ? sq_error_wrap(err, "sensitivity of %s as %s", name, sq_dtype_info(dtype)->name) : NULL;
}

void sq_kl_probe_free(sq_kl_probe *k) {
    if (!k) return;
    unlink(k->path);
    free(k);
}
