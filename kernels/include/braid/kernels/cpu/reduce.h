// CPU reductions over the middle axis of a contiguous [outer, reduce, inner] block, and row-wise softmax.
// Sums accumulate in double so float32 results do not depend on the thread count more than rounding allows.
#pragma once

#include <cstdint>

#include "braid/kernels/op_kinds.h"

namespace braid::kernels::cpu {

using kernels::ReduceOp;

template <class T>
void reduce(ReduceOp op, const T* in, T* out, int64_t outer, int64_t reduce, int64_t inner);

// Index of the first maximum (max=true) or minimum along the reduced axis.
template <class T>
void arg_reduce(bool max, const T* in, int64_t* out, int64_t outer, int64_t reduce, int64_t inner);

// Softmax (or log-softmax) along the middle axis of a contiguous [outer, dim, inner] block. Log-softmax is
// (x - max) - log(sum(exp(x - max))) in that order, as PyTorch computes it, with the sum and its log in double:
// max + log(sum) rounded to T first would lose a small log(sum) to the spacing of T near a large max.
template <class T>
void softmax(bool log, const T* in, T* out, int64_t outer, int64_t dim, int64_t inner);
// grad_in from grad_out and the forward's output y.
template <class T>
void softmax_backward(bool log, const T* grad_out, const T* y, T* grad_in, int64_t outer, int64_t dim,
                      int64_t inner);

// Negative log-likelihood per sample from log-probabilities [n, c] and class targets; returns the index of the
// first target outside [0, c), or -1 when all are valid.
template <class T>
int64_t nll_forward(const T* log_probs, const int64_t* target, T* loss, int64_t n, int64_t c);
// grad_in[i, j] = scale_i * ((softmax ? exp(lp[i,j]) : 0) - [j == target_i]), scale_i = grad_loss[i or 0] * scale.
template <class T>
void nll_backward(bool from_log_softmax, const T* log_probs, const int64_t* target, const T* grad_loss,
                  bool per_sample_grad, T scale, T* grad_in, int64_t n, int64_t c);

}  // namespace braid::kernels::cpu
