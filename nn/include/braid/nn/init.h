// Parameter initialisers (in place, without recording a graph), with PyTorch's definitions.
#pragma once

#include "braid/core/core.h"

namespace braid::nn::init {

void uniform_(const Tensor& t, double low, double high, Generator* gen = nullptr);
void normal_(const Tensor& t, double mean, double std, Generator* gen = nullptr);
void constant_(const Tensor& t, double value);
void zeros_(const Tensor& t);
void ones_(const Tensor& t);
// fan_in = size(1) * receptive field; bound = gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + a^2)).
void kaiming_uniform_(const Tensor& t, double a = 0, Generator* gen = nullptr);
void xavier_uniform_(const Tensor& t, double gain = 1, Generator* gen = nullptr);
int64_t fan_in(const Tensor& t);
int64_t fan_out(const Tensor& t);

}  // namespace braid::nn::init
