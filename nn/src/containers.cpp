#include "braid/nn/containers.h"

namespace braid::nn {

size_t detail::checked_index(const char* container, int64_t index, size_t size) {
  int64_t n = int64_t(size);
  BRAID_CHECK(index >= -n && index < n, container, "[", index, "]: index out of range for a ", container, " of ",
              size, " modules (expected ", -n, " <= index < ", n, ")");
  return size_t(index < 0 ? index + n : index);
}

void ModuleSequence::append_module(const std::string& name, std::shared_ptr<Module> module) {
  BRAID_CHECK(module, type_name(), ".push_back: the module is null");
  register_module(name, module);
  modules_.push_back(std::move(module));
}

void SequentialImpl::push_back_entry(const std::string& name, std::shared_ptr<Module> module, Forward forward) {
  append_module(name, std::move(module));
  names_.push_back(name);
  forwards_.push_back(std::move(forward));
  next_name_ = std::stoll(name) + 1;
}

Tensor SequentialImpl::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& f : forwards_) h = f(h);
  return h;
}

Sequential SequentialImpl::slice(int64_t begin, int64_t end) const {
  int64_t n = int64_t(size());
  int64_t b = begin < 0 ? begin + n : begin, e = end < 0 ? end + n : end;
  BRAID_CHECK(b >= 0 && b <= e && e <= n, "Sequential.slice(", begin, ", ", end, "): not a range of a Sequential of ",
              n, " modules (expected 0 <= begin <= end <= ", n, ", negative values counting from the end)");
  Sequential out;
  for (int64_t i = b; i < e; ++i) out->push_back_entry(names_[size_t(i)], modules_[size_t(i)], forwards_[size_t(i)]);
  out->set_training_flag(is_training());
  return out;
}

}  // namespace braid::nn
