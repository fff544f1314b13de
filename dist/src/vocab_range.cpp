#include "vocab_range.h"

#include "braid/core/creation.h"
#include "braid/core/ops.h"

namespace braid::dist::detail {

namespace {
Tensor int64_scalar(int64_t v, Device device) { return full({}, double(v), TensorOptions(DType::Int64, device)); }
}  // namespace

void check_ids_in_vocabulary(const char* op, const Tensor& ids, int64_t vocab_size) {
  BRAID_CHECK(ids.defined(), op, ": the ids are undefined");
  BRAID_CHECK(ids.dtype() == DType::Int64, op, ": ids must be int64, got ", ids.dtype(), " ", shape_str(ids.shape()));
  if (ids.numel() == 0) return;
  int64_t lo = ops::to_device(ops::amin(ids), Device::cpu()).item<int64_t>();
  int64_t hi = ops::to_device(ops::amax(ids), Device::cpu()).item<int64_t>();
  int64_t bad = lo < 0 ? lo : hi;
  BRAID_CHECK(lo >= 0 && hi < vocab_size, op, ": id ", bad, " is out of range for a vocabulary of ", vocab_size,
              " (ids must be in [0, ", vocab_size, "))");
}

VocabSlice vocab_slice(const Tensor& ids, int64_t start, int64_t end, DType dtype) {
  using ops::BinaryOp;
  Tensor held = ops::binary(BinaryOp::Mul, ops::binary(BinaryOp::Ge, ids, int64_scalar(start, ids.device())),
                            ops::binary(BinaryOp::Lt, ids, int64_scalar(end, ids.device())));
  Tensor local = ops::binary(BinaryOp::Mul, ops::affine(ids, 1, -double(start)), held);
  return {local, ops::to_dtype(held, dtype)};
}

}  // namespace braid::dist::detail
