/* Measured sensitivity of one weight matrix (issue 8's mixed precision, HAWQ-style but measured, not
 * estimated): the mean KL divergence KL(P_model || P_probe) of the next-token distributions over calibration
 * windows when that matrix alone is stored in a candidate format, every other tensor as it is. The
 * reference distributions are computed once from the unchanged model and kept as their top 64
 * log-probabilities per position (sq_ppl_options.ref_logits_out / ref_logits_in, llama-perplexity
 * --kl-divergence's way), so each probe costs one forward pass over the windows. */
#ifndef SQ_COMPRESS_QUANT_SENSITIVITY_H
#define SQ_COMPRESS_QUANT_SENSITIVITY_H

#include <stddef.h>

#include "core/dtype.h"
#include "core/error.h"
#include "squeeze.h"

typedef struct sq_kl_probe sq_kl_probe;

/* Runs the unchanged model over the windows of s (each one SQ_PPL_WINDOWS window of s->seq_len tokens, none
 * added) and keeps its distributions in a temporary file (under $TMPDIR, else /tmp; removed by
 * sq_kl_probe_free). Fails as sq_perplexity does (a window longer than the model's context), or with
 * SQ_ERR_IO when no temporary file can be made. */
SQ_NODISCARD sq_error *sq_kl_probe_create(sq_model *model, const sq_calib_samples *s, int n_threads,
                                          sq_kl_probe **out);

/* *kl = mean KL over the windows' positions with tensor `name` replaced by data (nbytes in dtype's layout,
 * the tensor's shape); the tensor's original bytes and format are put back before it returns, on every
 * path (an error restoring them is returned: the model is then not what it was). */
SQ_NODISCARD sq_error *sq_kl_probe_measure(sq_kl_probe *k, sq_model *model, const char *name, sq_dtype dtype,
                                           const void *data, size_t nbytes, double *kl);

void sq_kl_probe_free(sq_kl_probe *k);

#endif
