/* squeeze finetune: LoRA recovery training of a compressed model, with distillation from the original. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

typedef struct finetune_args {
    const char *model, *teacher, *out, *targets, *data, *loss, *val, *resume, *merge, *to, *tokenizer;
    long rank, steps, stop_at, batch, seq, warmup, gen_samples, val_every, val_samples, save_every, threads,
        seed;
    double alpha, lr, kd_temp, clip, weight_decay, min_lr;
    int no_progress;
} finetune_args;

static const cli_verb verb = {
    .name = "finetune",
    .usage = "-m MODEL --teacher ORIGINAL -o OUTDIR [--data FILE|generate] [--loss ce|kd|ce+kd] [options]",
    .about =
        "Trains LoRA adapters (Hu et al. 2021) on the linear layers of every block of MODEL (a pruned or\n"
        "quantized model; its weights stay frozen) and writes them to OUTDIR as PEFT does\n"
        "(adapter_model.safetensors, adapter_config.json), with a checkpoint (state.bin) that --resume\n"
        "continues bit for bit. Losses: ce, next-token cross-entropy on the data; kd, distillation\n"
        "from --teacher (KL divergence at temperature --kd-temp, times its square); ce+kd, their sum.\n"
        "Data: a text file (random windows of --seq tokens), or 'generate': --gen-samples sequences\n"
        "sampled by the teacher itself from random first tokens (LLM-QAT's data-free distillation).\n"
        "AdamW with linear warm-up and cosine decay, gradient clipping. --val FILE: validation loss\n"
        "every --val-every steps. --merge OUT writes MODEL with the adapters folded in (each tensor in\n"
        "its own format: a quantized base is quantized again).\n",
};

static int parse_args(int argc, char **argv, finetune_args *a) {
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&a->model, 1),
        CLI_TEXT_FLAG("--teacher", "MODEL", &a->teacher, "the original model (kd, ce+kd, generate)"),
        CLI_TEXT_FLAG("-o, --output", "OUTDIR", &a->out, "directory for the adapters and the checkpoint",
                      .required = 1),
        CLI_INT_FLAG("--lora-rank", "R", &a->rank, 1, 4096, 8, "adapter rank"),
        CLI_NUMBER_FLAG("--lora-alpha", "A", &a->alpha, 0, 1e6, 16, "adapter scaling alpha (alpha / rank)",
                        .lo_open = 1),
        CLI_TEXT_FLAG("--targets", "LIST", &a->targets, "linear layers with adapters",
                      .def_shown = "q,k,v,o,gate,up,down"),
        CLI_TEXT_FLAG("--data", "FILE|generate", &a->data, "training text, or generate",
                      .def_shown = "generate"),
        CLI_INT_FLAG("--gen-samples", "N", &a->gen_samples, 1, 1 << 20, 256, "generate: sequences"),
        CLI_INT_FLAG("--steps", "N", &a->steps, 1, 1 << 24, 100, "optimizer steps (the schedule's length)"),
        CLI_INT_FLAG("--stop-at", "N", &a->stop_at, 0, 1 << 24, 0,
                     "stop after step N with a checkpoint (--resume continues)", .def_shown = "--steps"),
        CLI_INT_FLAG("--batch", "B", &a->batch, 1, CLI_MAX_BATCH, 8, "sequences per step"),
        CLI_INT_FLAG("--seq", "L", &a->seq, 2, CLI_MAX_CTX, 128, "tokens per sequence"),
        CLI_NUMBER_FLAG("--lr", "LR", &a->lr, 0, 1, 1e-4, "peak learning rate", .lo_open = 1),
        CLI_INT_FLAG("--warmup", "N", &a->warmup, 0, 1 << 24, 10, "warm-up steps"),
        CLI_NUMBER_FLAG("--min-lr", "F", &a->min_lr, 0, 1, 0.1, "final learning rate, a fraction of --lr"),
        CLI_NUMBER_FLAG("--clip", "NORM", &a->clip, 0, 1e9, 1, "gradient norm clip (0: none)"),
        CLI_NUMBER_FLAG("--weight-decay", "W", &a->weight_decay, 0, 10, 0, "AdamW decoupled weight decay"),
        CLI_CHOICE_FLAG("--loss", "LOSS", &a->loss, "ce|kd|ce+kd", "kd", "training loss"),
        CLI_NUMBER_FLAG("--kd-temp", "T", &a->kd_temp, 0, 100, 1, "distillation temperature", .lo_open = 1),
        CLI_TEXT_FLAG("--val", "FILE", &a->val, "validation text"),
        CLI_INT_FLAG("--val-every", "K", &a->val_every, 1, 1 << 24, 25, "steps between validations"),
        CLI_INT_FLAG("--val-samples", "N", &a->val_samples, 1, 1 << 16, 8, "validation windows"),
        CLI_INT_FLAG("--save-every", "K", &a->save_every, 0, 1 << 24, 0,
                     "steps between checkpoints (0: the end)"),
        CLI_TEXT_FLAG("--resume", "DIR", &a->resume, "continue from the checkpoint in DIR"),
        CLI_TEXT_FLAG("--merge", "OUT", &a->merge, "also write MODEL with the adapters folded in"),
        CLI_FLAG_OUTPUT_FORMAT(&a->to),
        CLI_FLAG_SEED(&a->seed, 0, "adapter initialisation, data order and generated data"),
        CLI_FLAG_THREADS(&a->threads),
        CLI_FLAG_TOKENIZER(&a->tokenizer),
        CLI_FLAG_NO_PROGRESS(&a->no_progress),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    int kd = strcmp(a->loss, "ce") != 0, gen = !a->data || !strcmp(a->data, "generate");
    if ((kd || gen) && !a->teacher)
        return cli_usage_error("finetune", "%s needs --teacher MODEL",
                               kd ? "distillation" : "--data generate");
    return CLI_CONTINUE;
}

typedef struct teacher_ctx {
    sq_context *ctx;
} teacher_ctx;

static SQ_NODISCARD sq_error *teacher_logits(void *user, int seq, const int32_t *tokens, int seq_len,
                                             float *logits) {
    (void)seq;
    teacher_ctx *t = user;
    sq_error *err = sq_seq_truncate(t->ctx, 0, 0);
    if (err) return err;
    sq_seq_batch b = {
        .seq_id = 0, .tokens = tokens, .n_tokens = seq_len, .logits_mode = SQ_LOGITS_ALL, .logits = logits};
    return sq_forward(t->ctx, &b, 1);
}

/* The training windows: a text file's windows drawn once (steps x batch of them), or generated samples. */
static int load_data(const finetune_args *a, const sq_model *student, const sq_model *teacher, int n,
                     sq_calib_samples *out) {
    if (a->data && strcmp(a->data, "generate"))
        return cli_calib_samples("finetune", student, a->data, n, (int)a->seq, a->seed, out);
    sq_error *err = sq_generate_samples(teacher, (int)a->gen_samples, (int)a->seq, (uint64_t)a->seed,
                                        (int)a->threads, out);
    return err ? cli_fail(err) : CLI_CONTINUE;
}

static void path_in(char *buf, size_t size, const char *dir, const char *name) {
    snprintf(buf, size, "%s/%s", dir, name);
}

int sq_cmd_finetune(int argc, char **argv) {
    finetune_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    if (a.seed < 0) { /* a resumed run needs the same seed: say which one this is */
        a.seed = (long)cli_clock_seed();
        fprintf(stderr, "squeeze finetune: seed %ld\n", a.seed);
    }
    const int use_kd = strcmp(a.loss, "ce") != 0, use_ce = strcmp(a.loss, "kd") != 0;
    unsigned targets;
    sq_error *err = sq_lora_parse_targets(a.targets ? a.targets : "q,k,v,o,gate,up,down", &targets);
    if (err) return cli_fail(err);
    struct stat st;
    if (mkdir(a.out, 0755) != 0 && (stat(a.out, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "squeeze finetune: cannot create directory %s\n", a.out);
        return 1;
    }
    sq_model *model = NULL, *teacher = NULL;
    sq_trainer *t = NULL;
    sq_calib_samples data = {0}, val = {0};
    teacher_ctx tc = {0};
    cli_progress *bar = NULL;
    sq_load_options lo = {.tokenizer_path = a.tokenizer};
    if ((err = cli_load_model(a.model, &lo, &model))) goto fail;
    if (a.teacher && (err = cli_load_model(a.teacher, &lo, &teacher))) goto fail;
    if (teacher) {
        sq_model_info mi, ti;
        sq_model_get_info(model, &mi);
        sq_model_get_info(teacher, &ti);
        if (mi.vocab_size != ti.vocab_size || mi.max_seq_len > ti.max_seq_len) {
            fprintf(stderr,
                    "squeeze finetune: the teacher's vocabulary (%d) or context (%d) does not cover the "
                    "model's (%d, %d)\n",
                    ti.vocab_size, ti.max_seq_len, mi.vocab_size, mi.max_seq_len);
            rc = 1;
            goto done;
        }
    }
    if ((rc = load_data(&a, model, teacher, (int)(a.steps * a.batch), &data)) != CLI_CONTINUE) goto done;
    if (a.val && (rc = cli_calib_samples("finetune", model, a.val, (int)a.val_samples, (int)a.seq, 1234,
                                         &val)) != CLI_CONTINUE)
        goto done;
    if (use_kd &&
        (err = sq_context_create(
             teacher, &(sq_context_options){.n_ctx = data.seq_len, .n_threads = (int)a.threads}, &tc.ctx)))
        goto fail;
    sq_trainer_options to = {.n_threads = (int)a.threads,
                             .max_tokens = (int)(a.batch * data.seq_len),
                             .lora_rank = (int)a.rank,
                             .lora_alpha = (float)a.alpha,
                             .lora_targets = targets,
                             .seed = (uint64_t)a.seed};
    if ((err = sq_trainer_create(model, &to, &t))) goto fail;
    char path[4096];
    if (a.resume) {
        path_in(path, sizeof path, a.resume, "state.bin");
        if ((err = sq_trainer_load_state(t, path))) goto fail;
        fprintf(stderr, "squeeze: resuming at step %lld of %ld\n", (long long)sq_trainer_steps(t), a.steps);
    }
    sq_loss_options loss = {use_ce ? 1.0f : 0.0f, use_kd ? 1.0f : 0.0f, (float)a.kd_temp, teacher_logits,
                            &tc};
    sq_adamw_options ao = {0, 0.9f, 0.999f, 1e-8f, (float)a.weight_decay, (float)a.clip};
    int32_t *batch = malloc((size_t)a.batch * data.seq_len * sizeof *batch);
    if (!batch) {
        fprintf(stderr, "squeeze finetune: out of memory\n");
        rc = 1;
        goto done;
    }
    bar = a.no_progress ? NULL : cli_progress_create("finetune");
    const double t0 = sq_monotonic_seconds();
    const int64_t first = sq_trainer_steps(t);
    const int64_t last = a.stop_at && a.stop_at < a.steps ? a.stop_at : a.steps;
    for (int64_t step = first; step < last && !err; step++) {
        /* step s trains on windows s*B .. s*B+B-1 of the data (cyclically): a resumed run sees the same */
        for (int b = 0; b < a.batch; b++) {
            int64_t w = (step * a.batch + b) % data.n_samples;
            memcpy(batch + (size_t)b * data.seq_len, data.ids + (size_t)w * data.seq_len,
                   (size_t)data.seq_len * sizeof *batch);
        }
        sq_loss_value v;
        double gnorm = 0;
        sq_trainer_zero_grad(t);
        err = sq_trainer_run(t, batch, (int)a.batch, data.seq_len, &loss, 1, &v);
        ao.lr = sq_lr_schedule((float)a.lr, (int)step, (int)a.warmup, (int)a.steps, (float)a.min_lr);
        if (!err) err = sq_trainer_adamw_step(t, &ao, &gnorm);
        if (err) break;
        const double el = sq_monotonic_seconds() - t0, done = (double)(step + 1 - first);
        const double tps = done * a.batch * data.seq_len / el;
        if (bar)
            cli_progress_update(bar, step + 1, a.steps);
        else
            fprintf(stderr, "step %lld/%ld  loss %.4f  lr %.3g  grad %.3g  %.0f tok/s  ETA %.0fs\n",
                    (long long)step + 1, a.steps, v.loss, ao.lr, gnorm, tps,
                    el / done * (a.steps - step - 1));
        if (bar && (step + 1) % 10 == 0)
            fprintf(stderr, "\rstep %lld/%ld  loss %.4f  %.0f tok/s  ETA %.0fs\n", (long long)step + 1,
                    a.steps, v.loss, tps, el / done * (a.steps - step - 1));
        if (a.val && ((step + 1) % a.val_every == 0 || step + 1 == a.steps)) {
            double sum = 0, ce = 0, kd = 0;
            for (int s = 0; s < val.n_samples && !err; s += (int)a.batch) {
                int nb = val.n_samples - s < a.batch ? val.n_samples - s : (int)a.batch;
                sq_loss_value vv;
                err = sq_trainer_run(t, val.ids + (size_t)s * val.seq_len, nb, val.seq_len, &loss, 0, &vv);
                sum += vv.loss * nb, ce += vv.ce * nb, kd += vv.kd * nb;
            }
            if (!err)
                fprintf(stderr, "validation at step %lld: loss %.4f (ce %.4f, kd %.4f)\n",
                        (long long)step + 1, sum / val.n_samples, ce / val.n_samples, kd / val.n_samples);
        }
        if (!err && ((a.save_every && (step + 1) % a.save_every == 0) || step + 1 == last)) {
            path_in(path, sizeof path, a.out, "state.bin");
            err = sq_trainer_save_state(t, path);
            if (!err) err = sq_trainer_save_adapter(t, a.out);
        }
    }
    free(batch);
    cli_progress_free(bar);
    bar = NULL;
    if (!err && first >= last) { /* resumed at the end: write the adapters anyway */
        err = sq_trainer_save_adapter(t, a.out);
    }
    if (!err) {
        const double el = sq_monotonic_seconds() - t0;
        printf("trained           %lld steps of %ld x %d tokens in %.1f s (%.0f tokens/s), now at step %lld "
               "of %ld\n",
               (long long)(last - first), a.batch, data.seq_len, el,
               el > 0 ? (double)(last - first) * a.batch * data.seq_len / el : 0.0, (long long)last, a.steps);
        printf("adapters          %s/adapter_model.safetensors (rank %ld, alpha %g)\n", a.out, a.rank,
               a.alpha);
    }
    if (!err && a.merge) {
        sq_context_free(tc.ctx);
        tc.ctx = NULL;
        err = sq_trainer_merge(t, model);
        if (!err) err = sq_model_save(model, a.merge, cli_output_format(a.merge, a.to));
        if (!err) printf("merged model      %s\n", a.merge);
    }
fail:
    rc = err ? cli_fail(err) : 0;
done:
    cli_progress_free(bar);
    sq_trainer_free(t);
    sq_context_free(tc.ctx);
    sq_calib_samples_free(&data);
    sq_calib_samples_free(&val);
    sq_model_free(teacher);
    sq_model_free(model);
    return rc;
}
