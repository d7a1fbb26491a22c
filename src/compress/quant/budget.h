/* Mixed precision under a bits-per-weight budget (sq_quantize_params.budget_bpw, --budget-bpw). */
#ifndef SQ_COMPRESS_QUANT_BUDGET_H
#define SQ_COMPRESS_QUANT_BUDGET_H

#include "core/threadpool.h"
#include "squeeze.h"

/* Re-plans the format of every weight matrix of the blocks (blk.*) that no --keep rule chose, so that the
 * whole model's bits per weight (all tensors, as the report counts them) stay within p->budget_bpw with the
 * least summed sensitivity (measured KL on p->calib's windows when given, budget.c); r holds the plan so far
 * (plan() in quantize.c) and receives the new one. The model is probed (one matrix at a time changed and put
 * back) but left as it was. Fails with SQ_ERR_INVALID_ARG when even the cheapest candidates exceed the
 * budget. */
SQ_NODISCARD sq_error *sq_quant_budget_plan(sq_model *model, const sq_quantize_params *p,
                                            sq_quantize_report *r, sq_threadpool *pool);

#endif
