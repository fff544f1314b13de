#include <algorithm>
#include <cstring>
#include <optional>

#include "braid/core/creation.h"
#include "op_util.h"

namespace braid::ops {

using detail::check_defined;
using detail::wrap_dim;

namespace {

Tensor alias(const Tensor& t, Shape shape, Shape strides, int64_t offset) {
  return make_tensor(t.storage(), std::move(shape), std::move(strides), offset, t.dtype());
}

// Strides that let `t`'s memory be read as `shape`, if any (PyTorch's rule for view).
std::optional<Shape> view_strides(const Tensor& t, const Shape& shape) {
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  if (t.numel() == 0 || os.empty() || t.is_contiguous()) return contiguous_strides(shape);
  Shape ns(shape.size());
  int64_t view_d = int64_t(shape.size()) - 1;
  int64_t chunk_base_stride = ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t td = int64_t(os.size()) - 1; td >= 0; --td) {
    tensor_numel *= os[td];
    if (td == 0 || (os[td - 1] != 1 && ost[td - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        ns[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (td > 0) {
        chunk_base_stride = ost[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return ns;
}

}  // namespace

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      BRAID_CHECK(infer < 0, op, ": only one dimension can be -1 in ", shape_str(shape));
      infer = int64_t(i);
    } else {
      BRAID_CHECK(out[i] >= 0, op, ": invalid dimension ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    BRAID_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(shape), " is invalid for ", numel,
                " elements");
    out[infer] = numel / known;
  }
  BRAID_CHECK(shape_numel(out) == numel, op, ": shape ", shape_str(shape), " is invalid for ", numel, " elements");
  return out;
}

Tensor view(const Tensor& t, const Shape& shape) {
  check_defined("view", t);
  Shape s = infer_shape(shape, t.numel(), "view");
  auto st = view_strides(t, s);
  BRAID_CHECK(st, "view: a tensor of shape ", shape_str(t.shape()), " and strides ", shape_str(t.strides()),
              " cannot be viewed as ", shape_str(s), "; use reshape (which copies) or contiguous() first");
  return alias(t, s, *st, t.offset());
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  check_defined("reshape", t);
  Shape s = infer_shape(shape, t.numel(), "reshape");
  if (auto st = view_strides(t, s)) return alias(t, s, *st, t.offset());
  return view(clone(t), s);
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  check_defined("transpose", t);
  // A view is always a new handle: returning `t` itself would let autograd attach history to the input.
  if (t.dim() == 0) return alias(t, t.shape(), t.strides(), t.offset());
  d0 = wrap_dim(d0, t.dim(), "transpose");
  d1 = wrap_dim(d1, t.dim(), "transpose");
  Shape s = t.shape(), st = t.strides();
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return alias(t, s, st, t.offset());
}

Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  check_defined("permute", t);
  BRAID_CHECK(int64_t(dims.size()) == t.dim(), "permute: got ", dims.size(), " dims for a ", t.dim(), "-d tensor");
  Shape s(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], t.dim(), "permute");
    BRAID_CHECK(!seen[d], "permute: dim ", d, " repeated");
    seen[d] = true;
    s[i] = t.shape()[d];
    st[i] = t.strides()[d];
  }
  return alias(t, s, st, t.offset());
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  check_defined("narrow", t);
  BRAID_CHECK(t.dim() > 0, "narrow: cannot narrow a 0-d tensor");
  dim = wrap_dim(dim, t.dim(), "narrow");
  int64_t n = t.shape()[dim];
  if (start < 0) start += n;
  BRAID_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ", start + length,
              ") is out of bounds for dim ", dim, " of size ", n);
  Shape s = t.shape();
  s[dim] = length;
  return alias(t, s, t.strides(), t.offset() + start * t.strides()[dim]);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  check_defined("select", t);
  BRAID_CHECK(t.dim() > 0, "select: cannot index a 0-d tensor");
  dim = wrap_dim(dim, t.dim(), "select");
  int64_t n = t.shape()[dim];
  if (index < 0) index += n;
  BRAID_CHECK(index >= 0 && index < n, "select: index ", index, " out of range for dim ", dim, " of size ", n);
  Shape s = t.shape(), st = t.strides();
  int64_t off = t.offset() + index * st[dim];
  s.erase(s.begin() + dim);
  st.erase(st.begin() + dim);
  return alias(t, s, st, off);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  check_defined("expand", t);
  BRAID_CHECK(shape.size() >= size_t(t.dim()), "expand: cannot expand ", shape_str(t.shape()), " to fewer dims ",
              shape_str(shape));
  size_t off = shape.size() - size_t(t.dim());
  Shape s(shape.size()), st(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < off) {
      BRAID_CHECK(shape[i] >= 0, "expand: new leading dim must be sized, got ", shape_str(shape));
      s[i] = shape[i];
      continue;
    }
    int64_t cur = t.shape()[i - off];
    int64_t want = shape[i] == -1 ? cur : shape[i];
    BRAID_CHECK(cur == want || cur == 1, "expand: dimension ", i, " of ", shape_str(t.shape()), " (size ", cur,
                ") cannot expand to ", shape_str(shape));
    s[i] = want;
    st[i] = cur == want ? t.strides()[i - off] : 0;
  }
  return alias(t, s, st, t.offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  check_defined("squeeze", t);
  if (t.dim() == 0) return alias(t, t.shape(), t.strides(), t.offset());
  dim = wrap_dim(dim, t.dim(), "squeeze");
  if (t.shape()[dim] != 1) return alias(t, t.shape(), t.strides(), t.offset());
  Shape s = t.shape(), st = t.strides();
  s.erase(s.begin() + dim);
  st.erase(st.begin() + dim);
  return alias(t, s, st, t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  check_defined("unsqueeze", t);
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape s = t.shape(), st = t.strides();
  int64_t stride = dim < t.dim() ? s[dim] * st[dim] : 1;
  s.insert(s.begin() + dim, 1);
  st.insert(st.begin() + dim, stride);
  return alias(t, s, st, t.offset());
}

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  check_defined("flatten", t);
  if (t.dim() == 0) return reshape(t, {1});
  start_dim = wrap_dim(start_dim, t.dim(), "flatten");
  end_dim = wrap_dim(end_dim, t.dim(), "flatten");
  BRAID_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape s;
  for (int64_t i = 0; i < start_dim; ++i) s.push_back(t.shape()[i]);
  int64_t m = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) m *= t.shape()[i];
  s.push_back(m);
  for (int64_t i = end_dim + 1; i < t.dim(); ++i) s.push_back(t.shape()[i]);
  return reshape(t, s);
}

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  BRAID_CHECK(!ts.empty(), "cat: expected a non-empty list of tensors");
  const Tensor& first = ts[0];
  check_defined("cat", first);
  BRAID_CHECK(first.dim() > 0, "cat: cannot concatenate 0-d tensors (use stack)");
  dim = wrap_dim(dim, first.dim(), "cat");
  Shape s = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    check_defined("cat", t);
    check_same_dtype("cat", first, t);
    check_same_device("cat", first, t);
    bool ok = t.dim() == first.dim();
    for (int64_t d = 0; ok && d < t.dim(); ++d) ok = d == dim || t.shape()[d] == s[d];
    BRAID_CHECK(ok, "cat: tensor ", i, " has shape ", shape_str(t.shape()), ", expected ", shape_str(s),
                " except in dim ", dim);
    total += t.shape()[dim];
  }
  s[dim] = total;
  Tensor out = empty(s, TensorOptions(first.dtype(), first.device()));
  int64_t pos = 0;
  for (const Tensor& t : ts) {
    int64_t n = t.shape()[dim];
    if (n) detail::copy_into(narrow(out, dim, pos, n), t);
    pos += n;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  BRAID_CHECK(!ts.empty(), "stack: expected a non-empty list of tensors");
  check_defined("stack", ts[0]);
  dim = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  us.reserve(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    check_defined("stack", ts[i]);
    BRAID_CHECK(ts[i].shape() == ts[0].shape(), "stack: tensor ", i, " has shape ", shape_str(ts[i].shape()),
                ", expected ", shape_str(ts[0].shape()));
    us.push_back(unsqueeze(ts[i], dim));
  }
  return cat(us, dim);
}

namespace {
void check_index(const char* op, const Tensor& index, int64_t limit) {
  detail::check_device(op, index);
  BRAID_CHECK(index.dtype() == DType::Int64, op, ": index must be int64, got ", index.dtype());
  for (int64_t v : index.to_vector<int64_t>())
    BRAID_CHECK(v >= 0 && v < limit, op, ": index ", v, " is out of range [0, ", limit, ")");
}
}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  detail::check_device("index_select", t);
  BRAID_CHECK(t.dim() > 0, "index_select: cannot index a 0-d tensor");
  dim = wrap_dim(dim, t.dim(), "index_select");
  BRAID_CHECK(dim == 0 || index.dim() <= 1, "index_select: a multi-dimensional index is only supported along dim 0");
  check_index("index_select", index, t.shape()[dim]);
  check_same_device("index_select", t, index);
  Tensor src = dim == 0 ? contiguous(t) : contiguous(transpose(t, 0, dim));
  Tensor idx = contiguous(index);
  int64_t rows = idx.numel();
  int64_t row_elems = src.numel() / std::max<int64_t>(src.shape()[0], 1);
  Shape s = idx.shape();
  for (int64_t d = 1; d < src.dim(); ++d) s.push_back(src.shape()[d]);
  Tensor out = empty(s, TensorOptions(t.dtype(), t.device()));
  size_t row_bytes = size_t(row_elems) * element_size(t.dtype());
  const char* sp = static_cast<const char*>(src.raw_data());
  char* op = static_cast<char*>(out.raw_data());
  const int64_t* ip = idx.data<int64_t>();
  const bool parallel = rows * row_elems >= (int64_t(1) << 22);
  BRAID_ON_DEVICE(t, {
    _Pragma("omp parallel for if (parallel)")
    for (int64_t r = 0; r < rows; ++r) std::memcpy(op + r * row_bytes, sp + ip[r] * row_bytes, row_bytes);
  }, kernels::cuda::gather_rows(sp, ip, op, rows, int64_t(row_bytes), detail::stream_of(t)));
  if (dim == 0) return out;
  return contiguous(transpose(out, 0, dim));
}

Tensor index_add(const Shape& shape, const Tensor& index, const Tensor& src) {
  detail::check_device("index_add", src);
  BRAID_CHECK(!shape.empty(), "index_add: destination must have at least one dim");
  check_index("index_add", index, shape[0]);
  check_same_device("index_add", src, index);
  Tensor out = zeros(shape, TensorOptions(src.dtype(), src.device()));
  int64_t row_elems = shape_numel(shape) / std::max<int64_t>(shape[0], 1);
  BRAID_CHECK(src.numel() == index.numel() * row_elems, "index_add: source ", shape_str(src.shape()),
              " does not hold ", index.numel(), " rows of ", row_elems);
  Tensor s = contiguous(src);
  Tensor idx = contiguous(index);
  const int64_t* ip = idx.data<int64_t>();
  dispatch_floating(src.dtype(), "index_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = out.data<T>();
    const T* x = s.data<T>();
    const int64_t n = idx.numel();
    BRAID_ON_DEVICE(src,
                    for (int64_t r = 0; r < n; ++r) {
                      T* dst = o + ip[r] * row_elems;
                      const T* from = x + r * row_elems;
                      for (int64_t j = 0; j < row_elems; ++j) dst[j] += from[j];
                    },
                    kernels::cuda::index_add_rows<T>(x, ip, o, n, row_elems, detail::stream_of(src)));
  });
  return out;
}

}  // namespace braid::ops
