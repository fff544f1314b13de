#include "braid/nn/init.h"

#include <cmath>

namespace braid::nn::init {

// Each initialiser writes through one core in-place op, so the tensor's version is bumped once. The random ones
// check the destination before drawing, so a refused call leaves the generator where it was.
void uniform_(const Tensor& t, double low, double high, Generator* gen) {
  check_no_internal_overlap("nn::init::uniform_", t);
  ops::copy_(t, uniform(t.shape(), low, high, TensorOptions(t.dtype(), t.device()), gen));
}

void normal_(const Tensor& t, double mean, double std, Generator* gen) {
  check_no_internal_overlap("nn::init::normal_", t);
  ops::copy_(t, normal(t.shape(), mean, std, TensorOptions(t.dtype(), t.device()), gen));
}

void constant_(const Tensor& t, double value) { ops::fill_(t, value); }
void zeros_(const Tensor& t) { ops::fill_(t, 0); }
void ones_(const Tensor& t) { ops::fill_(t, 1); }

namespace {
int64_t receptive_field(const Tensor& t) {
  int64_t r = 1;
  for (int64_t d = 2; d < t.dim(); ++d) r *= t.shape()[d];
  return r;
}
}  // namespace

int64_t fan_in(const Tensor& t) {
  BRAID_CHECK(t.dim() >= 2, "init: fan in needs a tensor with at least 2 dims, got ", shape_str(t.shape()));
  return t.shape()[1] * receptive_field(t);
}

int64_t fan_out(const Tensor& t) {
  BRAID_CHECK(t.dim() >= 2, "init: fan out needs a tensor with at least 2 dims, got ", shape_str(t.shape()));
  return t.shape()[0] * receptive_field(t);
}

void kaiming_uniform_(const Tensor& t, double a, Generator* gen) {
  double gain = std::sqrt(2.0 / (1 + a * a));
  double bound = gain * std::sqrt(3.0 / double(fan_in(t)));
  uniform_(t, -bound, bound, gen);
}

void xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  double bound = gain * std::sqrt(6.0 / double(fan_in(t) + fan_out(t)));
  uniform_(t, -bound, bound, gen);
}

}  // namespace braid::nn::init
