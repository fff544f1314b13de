// The fused softmax of scaled dot-product attention over the rows of a contiguous [rows, cols] block of raw
// scores S (q @ k^T): P = softmax(scale * S) per row, max-subtracted. Causal rows see only the keys up to their
// own query position (row r is position r % q_len, keys 0..r % q_len); their masked probabilities are written as
// exact zeros, so no -inf mask is ever built. The backward gives the gradient of the raw scores,
// dS = scale * P * (dP - rowsum(dP * P)), zero where masked. Row sums accumulate in double.
#pragma once

#include <cstdint>

namespace braid::kernels::cpu {

template <class T>
void attention_softmax(const T* scores, T* probs, int64_t rows, int64_t cols, int64_t q_len, bool causal, T scale);

template <class T>
void attention_softmax_backward(const T* grad_probs, const T* probs, T* grad_scores, int64_t rows, int64_t cols,
                                int64_t q_len, bool causal, T scale);

}  // namespace braid::kernels::cpu
