/* AdamW on the adapters, the learning-rate schedule, and checkpoints that resume bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/trainer.h"

SQ_NODISCARD sq_error *sq_trainer_adamw_step(sq_trainer *t, const sq_adamw_options *o, double *grad_norm) {
    if (!(o->lr >= 0) || !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) ||
        !(o->eps > 0) || !(o->weight_decay >= 0) || !(o->clip_norm >= 0))
        return sq_errorf(SQ_ERR_INVALID_ARG, "AdamW: lr, weight decay, clip >= 0, betas in [0, 1), eps > 0");
    double ss = 0;
    for (int i = 0; i < t->n_params; i++)
        for (int64_t k = 0; k < t->params[i].n; k++) ss += (double)t->params[i].g[k] * t->params[i].g[k];
    const double norm = sqrt(ss);
    *grad_norm = norm;
    if (!isfinite(norm))
        return sq_errorf(SQ_ERR_INTERNAL, "AdamW: the gradient is not finite (norm %g)", norm);
    const float clip = o->clip_norm > 0 && norm > o->clip_norm ? (float)(o->clip_norm / norm) : 1.0f;
    t->step++;
    const float bc1 = 1.0f - powf(o->beta1, (float)t->step), bc2 = 1.0f - powf(o->beta2, (float)t->step);
    for (int i = 0; i < t->n_params; i++) {
        tr_param *p = &t->params[i];
        for (int64_t k = 0; k < p->n; k++) {
            float g = p->g[k] * clip;
            p->m[k] = o->beta1 * p->m[k] + (1 - o->beta1) * g;
            p->v[k] = o->beta2 * p->v[k] + (1 - o->beta2) * g * g;
            float mh = p->m[k] / bc1, vh = p->v[k] / bc2;
            p->p[k] -= o->lr * (mh / (sqrtf(vh) + o->eps) + o->weight_decay * p->p[k]);
        }
    }
    return NULL;
}

float sq_lr_schedule(float lr, int step, int warmup, int total, float min_ratio) {
    if (step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (total <= warmup) return lr;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    if (progress > 1) progress = 1;
    return (float)(lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(M_PI * progress))));
}

int64_t sq_trainer_steps(const sq_trainer *t) { return t->step; }

/* The state file: magic, then int64 step, rank, targets, n_params, then per array its length, values, m, v.
 */
static const char state_magic[8] = {'S', 'Q', 'T', 'R', 'A', 'I', 'N', '1'};

SQ_NODISCARD sq_error *sq_trainer_save_state(const sq_trainer *t, const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return sq_errorf(SQ_ERR_INVALID_ARG, "checkpoint path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return sq_errorf(SQ_ERR_IO, "cannot create checkpoint %s", tmp);
    int64_t head[4] = {t->step, t->rank, t->targets, t->n_params};
    int ok = fwrite(state_magic, 1, 8, f) == 8 && fwrite(head, sizeof head, 1, f) == 1;
    for (int i = 0; ok && i < t->n_params; i++) {
        const tr_param *p = &t->params[i];
        size_t n = (size_t)p->n;
        ok = fwrite(&p->n, sizeof p->n, 1, f) == 1 && fwrite(p->p, sizeof(float), n, f) == n &&
             fwrite(p->m, sizeof(float), n, f) == n && fwrite(p->v, sizeof(float), n, f) == n;
    }
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return sq_errorf(SQ_ERR_IO, "cannot write checkpoint %s", path);
    }
    return NULL;
}

SQ_NODISCARD sq_error *sq_trainer_load_state(sq_trainer *t, const char *path) {
    char *data;
    size_t size;
    SQ_TRY(sq_read_file(path, (size_t)1 << 40, &data, &size));
    sq_error *err = NULL;
    int64_t head[4];
    size_t off = 8 + sizeof head;
    if (size < off || memcmp(data, state_magic, 8)) {
        err = sq_errorf(SQ_ERR_FORMAT, "%s: not a squeeze training checkpoint", path);
        goto done;
    }
    memcpy(head, data + 8, sizeof head);
    if (head[1] != t->rank || head[2] != (int64_t)t->targets || head[3] != t->n_params || head[0] < 0) {
        err = sq_errorf(
            SQ_ERR_FORMAT,
            "%s: checkpoint of rank %lld, targets 0x%llx, %lld arrays; this run has rank %d, targets "
            "0x%x, %d arrays",
            path, (long long)head[1], (unsigned long long)head[2], (long long)head[3], t->rank, t->targets,
            t->n_params);
        goto done;
    }
    /* two passes: every array checked before any is copied, so a bad file leaves the trainer as it was */
    for (int copy = 0; copy < 2; copy++) {
        off = 8 + sizeof head;
        for (int i = 0; i < t->n_params; i++) {
            tr_param *p = &t->params[i];
            int64_t n;
            if (size - off < sizeof n) goto truncated;
            memcpy(&n, data + off, sizeof n);
            off += sizeof n;
            if (n != p->n) {
                err = sq_errorf(SQ_ERR_FORMAT, "%s: array %d has %lld values, this run's has %lld", path, i,
                                (long long)n, (long long)p->n);
                goto done;
            }
            size_t bytes = (size_t)n * sizeof(float);
            if ((size - off) / 3 < bytes) goto truncated;
            if (copy) {
                memcpy(p->p, data + off, bytes);
                memcpy(p->m, data + off + bytes, bytes);
                memcpy(p->v, data + off + 2 * bytes, bytes);
            }
            off += 3 * bytes;
        }
        if (off != size) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: %zu bytes after the last array", path, size - off);
            goto done;
        }
    }
    t->step = head[0];
    goto done;
truncated:
    err = sq_errorf(SQ_ERR_FORMAT, "%s: truncated checkpoint", path);
done:
    free(data);
    return err;
}
