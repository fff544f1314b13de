// The CUDA kernels: plain functions over device pointers, sizes, strides and a stream, shaped like their CPU
// twins in kernels/cpu so the two can be tested against each other. Element-wise kernels run the functors of
// functors.h through op_kinds.h, the same math the CPU runs. Every launch is checked (braid::Error on failure).
// This header needs no CUDA headers: streams and cuBLAS handles are the runtime's opaque pointer types.
#pragma once

#include <cstdint>

#include "braid/kernels/functors.h"
#include "braid/kernels/loop.h"
#include "braid/kernels/op_kinds.h"

struct CUstream_st;
struct cublasContext;

namespace braid::kernels::cuda {

using Stream = CUstream_st*;          // cudaStream_t
using BlasHandle = cublasContext*;    // cublasHandle_t

// ---- element-wise (T: float, double, int64_t; int64_t only for integer_ok ops) ----
template <class T>
void unary(UnaryOp op, OpParams p, const Loop<2>& loop, T* out, const T* in, Stream stream);
template <class T>
void binary(BinaryOp op, OpParams p, const Loop<3>& loop, T* out, const T* a, const T* b, Stream stream);
// Strided copy with conversion between any two of float, double, int64_t.
template <class TO, class TF>
void convert(const Loop<2>& loop, TO* out, const TF* in, Stream stream);
template <class T>
void fill(T* out, int64_t n, T value, Stream stream);

// ---- reductions over the middle axis of a contiguous [outer, reduce, inner] block (float, double, int64_t) ----
template <class T>
void reduce(ReduceOp op, const T* in, T* out, int64_t outer, int64_t reduce, int64_t inner, Stream stream);
template <class T>
void arg_reduce(bool max, const T* in, int64_t* out, int64_t outer, int64_t reduce, int64_t inner, Stream stream);

// ---- softmax and negative log-likelihood (float, double), as kernels/cpu/reduce.h ----
template <class T>
void softmax(bool log, const T* in, T* out, int64_t outer, int64_t dim, int64_t inner, Stream stream);
template <class T>
void softmax_backward(bool log, const T* grad_out, const T* y, T* grad_in, int64_t outer, int64_t dim,
                      int64_t inner, Stream stream);
// Per-sample loss; *bad_target (device memory) is lowered to the smallest i whose target is outside [0, c)
// (the caller sets it to n first and reads it back).
template <class T>
void nll_forward(const T* log_probs, const int64_t* target, T* loss, int64_t* bad_target, int64_t n, int64_t c,
                 Stream stream);
template <class T>
void nll_backward(bool from_log_softmax, const T* log_probs, const int64_t* target, const T* grad_loss,
                  bool per_sample_grad, T scale, T* grad_in, int64_t n, int64_t c, Stream stream);

// ---- fused attention softmax and layer normalisation (float, double), as kernels/cpu/attention_softmax.h and
// ---- kernels/cpu/layer_norm.h
template <class T>
void attention_softmax(const T* scores, T* probs, int64_t rows, int64_t cols, int64_t q_len, bool causal, T scale,
                       Stream stream);
template <class T>
void attention_softmax_backward(const T* grad_probs, const T* probs, T* grad_scores, int64_t rows, int64_t cols,
                                int64_t q_len, bool causal, T scale, Stream stream);
template <class T>
void layer_norm(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t cols,
                double eps, Stream stream);
template <class T>
void layer_norm_backward(const T* grad_y, const T* x, const T* weight, const T* mean, const T* rstd, T* grad_x,
                         T* grad_weight, T* grad_bias, int64_t rows, int64_t cols, Stream stream);

// ---- indexing: rows of row_bytes bytes ----
void gather_rows(const void* src, const int64_t* index, void* out, int64_t rows, int64_t row_bytes, Stream stream);
// out[index[i], :] += src[i, :] (atomics: repeated indices add up)
template <class T>
void index_add_rows(const T* src, const int64_t* index, T* out, int64_t rows, int64_t row_elems, Stream stream);

// ---- fused optimizer updates (float, double) ----
template <class T>
void sgd_update(const SgdUpdate& u, T* param, const T* grad, T* momentum_buffer, int64_t n, Stream stream);
template <class T>
void adam_update(const AdamUpdate& u, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n, Stream stream);

// ---- GEMM through cuBLAS, row-major like kernels/cpu/gemm.h (the handle is bound to `stream` by the caller) ----
void gemm(BlasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(BlasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);
// Batched: matrix i of each operand starts stride_* elements after matrix i-1 (0 broadcasts one matrix).
void gemm_strided_batched(BlasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          float alpha, const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                          int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch);
void gemm_strided_batched(BlasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          double alpha, const double* a, int64_t lda, int64_t stride_a, const double* b, int64_t ldb,
                          int64_t stride_b, double beta, double* c, int64_t ldc, int64_t stride_c, int64_t batch);

}  // namespace braid::kernels::cuda
