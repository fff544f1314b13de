// Tensor basics: factories, random numbers, element access, printing, geometry, and the view rules (views share
// storage; contiguous() and reshape() copy only when they must; view() refuses layouts it cannot express).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/core/core.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;

namespace {

// Reads / writes element `idx` of any (strided) float32 or float64 tensor through its strides.
int64_t element_offset(const Tensor& t, const std::vector<int64_t>& idx) {
  EXPECT_EQ(int64_t(idx.size()), t.dim());
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides()[d];
  return off;
}

double at(const Tensor& t, const std::vector<int64_t>& idx) {
  int64_t off = element_offset(t, idx);
  if (t.dtype() == DType::Float64) return static_cast<const double*>(t.raw_data())[off];
  return static_cast<const float*>(t.raw_data())[off];
}

void set_at(const Tensor& t, const std::vector<int64_t>& idx, double v) {
  int64_t off = element_offset(t, idx);
  if (t.dtype() == DType::Float64)
    static_cast<double*>(t.raw_data())[off] = v;
  else
    static_cast<float*>(t.raw_data())[off] = float(v);
}

bool shares_storage(const Tensor& a, const Tensor& b) { return a.storage().ptr.get() == b.storage().ptr.get(); }

// 0, 1, 2, ... as float32 in the given shape.
Tensor iota(const Shape& shape) { return ops::reshape(arange(double(shape_numel(shape))), shape); }

}  // namespace

// ---- factories ----

TEST(TensorCreation, ZerosOnesFull) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.dtype(), DType::Float32);
  for (float v : z.to_vector<float>()) EXPECT_EQ(v, 0.0f);

  Tensor o = ones({4}, DType::Float64);
  EXPECT_EQ(o.dtype(), DType::Float64);
  for (double v : o.to_vector<double>()) EXPECT_EQ(v, 1.0);

  Tensor f = full({3, 2}, -2.5);
  EXPECT_EQ(f.numel(), 6);
  for (float v : f.to_vector<float>()) EXPECT_EQ(v, -2.5f);

  Tensor fi = full({2}, 7, DType::Int64);
  EXPECT_EQ(fi.to_vector<int64_t>(), (std::vector<int64_t>{7, 7}));

  Tensor s = scalar_tensor(3.25);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item<float>(), 3.25f);

  Tensor e = zeros({0, 3});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(e.to_vector<float>().empty());

  EXPECT_THROW(zeros({2, -1}), Error);
}

TEST(TensorCreation, CpuStorageAlignment) {
  auto address = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()); };
  for (int64_t n : {1, 3, 1000}) EXPECT_EQ(address(zeros({n})) % 64, 0u) << n;
  // From 2 MiB up: 2 MiB-aligned (transparent huge pages), and still zero-filled by zeros().
  Tensor big = zeros({(int64_t(2) << 20) / 4 + 5});
  EXPECT_EQ(address(big) % (size_t(2) << 20), 0u);
  EXPECT_EQ(big.to_vector<float>().back(), 0.0f);
  // Asked for: huge pages whatever the size.
  Tensor small = zeros_on_huge_pages({3, 5}, DType::Float64);
  EXPECT_EQ(address(small) % (size_t(2) << 20), 0u);
  EXPECT_EQ(small.shape(), (Shape{3, 5}));
  EXPECT_EQ(small.dtype(), DType::Float64);
  EXPECT_EQ(small.to_vector<double>(), std::vector<double>(15, 0.0));
}

TEST(TensorCreation, LikeFactoriesKeepShapeAndDtype) {
  Tensor a = full({2, 5}, 3, DType::Float64);
  Tensor z = zeros_like(a), o = ones_like(a), e = empty_like(a);
  for (const Tensor& t : {z, o, e}) {
    EXPECT_EQ(t.shape(), a.shape());
    EXPECT_EQ(t.dtype(), DType::Float64);
    EXPECT_FALSE(shares_storage(t, a));
  }
  for (double v : z.to_vector<double>()) EXPECT_EQ(v, 0.0);
  for (double v : o.to_vector<double>()) EXPECT_EQ(v, 1.0);
}

TEST(TensorCreation, Arange) {
  EXPECT_EQ(arange(5).to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1, 2, 0.25, DType::Float64).to_vector<double>(), (std::vector<double>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(arange(5, 0, -2).to_vector<float>(), (std::vector<float>{5, 3, 1}));
  Tensor i = arange(0, 4, 1, DType::Int64);
  EXPECT_EQ(i.dtype(), DType::Int64);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(arange(3, 3).numel(), 0);
  EXPECT_THROW(arange(0, 5, 0), Error);
  EXPECT_THROW(arange(0, 5, -1), Error);
}

TEST(TensorCreation, FromVector) {
  Tensor a = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_EQ(a.dtype(), DType::Float32);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(at(a, {1, 0}), 4.0);

  Tensor d = from_vector(std::vector<double>{0.5, -1.5});
  EXPECT_EQ(d.shape(), (Shape{2}));
  EXPECT_EQ(d.dtype(), DType::Float64);

  Tensor i = from_vector(std::vector<int64_t>{3, -7}, {2, 1});
  EXPECT_EQ(i.dtype(), DType::Int64);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{3, -7}));

  // The values are copied: changing the vector afterwards does not change the tensor.
  std::vector<float> src{1, 2};
  Tensor c = from_vector(src);
  src[0] = 100;
  EXPECT_EQ(c.to_vector<float>()[0], 1.0f);

  std::string msg = error_of([] { from_vector(std::vector<float>{1, 2, 3}, {2, 2}); });
  EXPECT_CONTAINS(msg, "from_vector");
  EXPECT_CONTAINS(msg, "[2, 2]");
}

TEST(TensorCreation, FromBlobWrapsWithoutCopyAndCallsDeleter) {
  float buf[6] = {1, 2, 3, 4, 5, 6};
  int deleted = 0;
  void* deleted_ptr = nullptr;
  {
    Tensor t = from_blob(buf, {2, 3}, DType::Float32, [&](void* p) {
      ++deleted;
      deleted_ptr = p;
    });
    EXPECT_EQ(t.raw_data(), static_cast<void*>(buf));
    EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
    buf[4] = 50;  // no copy: the tensor sees the buffer change
    EXPECT_EQ(at(t, {1, 1}), 50.0);

    Tensor v = ops::transpose(t, 0, 1);
    t = Tensor();
    EXPECT_EQ(deleted, 0) << "the deleter ran while a view was alive";
    EXPECT_EQ(at(v, {1, 1}), 50.0);
  }
  EXPECT_EQ(deleted, 1);
  EXPECT_EQ(deleted_ptr, static_cast<void*>(buf));

  // Without a deleter nothing is freed (the buffer is on the stack here).
  double dbuf[2] = {1.5, 2.5};
  {
    Tensor t = from_blob(dbuf, {2}, DType::Float64);
    EXPECT_EQ(t.to_vector<double>()[1], 2.5);
  }
  EXPECT_EQ(dbuf[0], 1.5);
}

// ---- random numbers ----

TEST(TensorRandom, ManualSeedReproduces) {
  manual_seed(42);
  Tensor a = rand({1000});
  Tensor an = randn({1000}, DType::Float64);
  manual_seed(42);
  Tensor b = rand({1000});
  Tensor bn = randn({1000}, DType::Float64);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_EQ(an.to_vector<double>(), bn.to_vector<double>());
  Tensor c = rand({1000});  // the stream moves on
  EXPECT_NE(a.to_vector<float>(), c.to_vector<float>());
  manual_seed(43);
  EXPECT_NE(rand({1000}).to_vector<float>(), a.to_vector<float>());
}

TEST(TensorRandom, UniformBitsAreMt19937_64) {
  // The documented contract: 53 bits of mt19937_64 give the uniform in [0, 1), so seeds reproduce everywhere.
  Generator g(1234);
  Tensor u = rand({5}, DType::Float64, &g);
  std::mt19937_64 ref(1234);
  std::vector<double> v = u.to_vector<double>();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(v[i], double(ref() >> 11) / 9007199254740992.0);
}

TEST(TensorRandom, GeneratorIsIndependentOfDefault) {
  manual_seed(7);
  Tensor ref = rand({50});
  manual_seed(7);
  Generator g(99);
  Tensor from_g = rand({50}, {}, &g);  // must not advance the default generator
  Tensor from_default = rand({50});
  EXPECT_EQ(from_default.to_vector<float>(), ref.to_vector<float>());

  Generator g2(99);
  EXPECT_EQ(rand({50}, {}, &g2).to_vector<float>(), from_g.to_vector<float>());
  g2.seed(99);
  EXPECT_EQ(rand({50}, {}, &g2).to_vector<float>(), from_g.to_vector<float>());
  g2.seed(100);
  EXPECT_NE(rand({50}, {}, &g2).to_vector<float>(), from_g.to_vector<float>());

  // Normals reseed cleanly too (Box-Muller keeps a spare value, which seed() must drop).
  Generator h(5);
  Tensor n1 = randn({3}, DType::Float64, &h);
  h.seed(5);
  Tensor n2 = randn({3}, DType::Float64, &h);
  EXPECT_EQ(n1.to_vector<double>(), n2.to_vector<double>());
}

TEST(TensorRandom, Distributions) {
  Generator g(3);
  const int n = 20000;
  std::vector<double> u = uniform({n}, -2, 3, DType::Float64, &g).to_vector<double>();
  double mean = 0;
  for (double x : u) {
    EXPECT_GE(x, -2.0);
    EXPECT_LT(x, 3.0);
    mean += x / n;
  }
  EXPECT_NEAR(mean, 0.5, 0.05);

  std::vector<double> z = normal({n}, 1.0, 2.0, DType::Float64, &g).to_vector<double>();
  double m = 0, v = 0;
  for (double x : z) m += x / n;
  for (double x : z) v += (x - m) * (x - m) / n;
  EXPECT_NEAR(m, 1.0, 0.06);
  EXPECT_NEAR(std::sqrt(v), 2.0, 0.06);

  std::vector<float> r = rand({n}, {}, &g).to_vector<float>();
  for (float x : r) {
    EXPECT_GE(x, 0.0f);
    EXPECT_LT(x, 1.0f);
  }

  Tensor p = randperm(100, &g);
  std::vector<int64_t> pv = p.to_vector<int64_t>();
  std::vector<int64_t> sorted = pv;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(pv, sorted);  // a permutation of 100 that is the identity has probability 1/100!
  EXPECT_THROW(randn({2}, DType::Int64), Error);
}

// ---- element access and printing ----

TEST(TensorAccess, Item) {
  EXPECT_EQ(scalar_tensor(2.5, DType::Float64).item<double>(), 2.5);
  EXPECT_EQ(from_vector(std::vector<int64_t>{9}).item<int64_t>(), 9);
  EXPECT_EQ(full({1, 1, 1}, 4).item<float>(), 4.0f);
  EXPECT_EQ(full({1}, 4.75).item<int>(), 4);  // converts
  std::string msg = error_of([] { zeros({2, 3}).item<float>(); });
  EXPECT_CONTAINS(msg, "item");
  EXPECT_CONTAINS(msg, "[2, 3]");
  // data<T>() checks the type.
  EXPECT_THROW(zeros({2}).data<double>(), Error);
  EXPECT_NO_THROW(zeros({2}).data<float>());
}

TEST(TensorAccess, PrintingShowsValuesShapeAndDtype) {
  Tensor a = from_vector(std::vector<float>{1.5f, -2.25f, 3, 4}, {2, 2});
  std::string s = a.to_string();
  EXPECT_CONTAINS(s, "1.5000");
  EXPECT_CONTAINS(s, "-2.2500");
  EXPECT_CONTAINS(s, "3.0000");
  EXPECT_CONTAINS(s, "[2, 2]");
  EXPECT_CONTAINS(s, "float32");

  std::ostringstream os;
  os << from_vector(std::vector<int64_t>{7, -3});
  EXPECT_CONTAINS(os.str(), "7");
  EXPECT_CONTAINS(os.str(), "-3");
  EXPECT_CONTAINS(os.str(), "int64");

  // A transposed view prints its logical values.
  std::string t = ops::transpose(a, 0, 1).to_string();
  EXPECT_LT(t.find("1.5000"), t.find("3.0000"));
  EXPECT_LT(t.find("3.0000"), t.find("-2.2500"));

  // Long dims are elided, keeping the edges.
  std::string big = arange(100).to_string();
  EXPECT_CONTAINS(big, "...");
  EXPECT_CONTAINS(big, "99.0000");
  EXPECT_EQ(big.find("50.0000"), std::string::npos);

  Tensor g = zeros({2});
  g.requires_grad_();
  EXPECT_CONTAINS(g.to_string(), "requires_grad");
  EXPECT_CONTAINS(Tensor().to_string(), "undefined");
}

// ---- geometry ----

TEST(TensorGeometry, DtypeShapeStrides) {
  Tensor a = zeros({2, 3, 4}, DType::Float64);
  EXPECT_EQ(a.dim(), 3);
  EXPECT_EQ(a.numel(), 24);
  EXPECT_EQ(a.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(a.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(a.size(1), 3);
  EXPECT_EQ(a.size(-1), 4);
  EXPECT_THROW(a.size(3), Error);
  EXPECT_EQ(a.dtype(), DType::Float64);
  EXPECT_EQ(element_size(a.dtype()), 8u);
  EXPECT_EQ(element_size(DType::Float32), 4u);
  EXPECT_EQ(element_size(DType::Int64), 8u);
  EXPECT_EQ(a.storage().nbytes, 24u * 8u);
  EXPECT_TRUE(a.device().is_cpu());
  EXPECT_TRUE(a.is_contiguous());
  EXPECT_EQ(a.offset(), 0);

  Tensor t = ops::transpose(a, 0, 2);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 4, 12}));
  EXPECT_FALSE(t.is_contiguous());

  Tensor s = ops::select(a, 1, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 4}));
  EXPECT_EQ(s.strides(), (Shape{12, 1}));
  EXPECT_EQ(s.offset(), 8);

  EXPECT_EQ(dtype_name(DType::Int64), "int64");
  EXPECT_EQ(shape_str({2, 3}), "[2, 3]");
  EXPECT_EQ(contiguous_strides({5, 1, 3}), (Shape{3, 3, 1}));
  EXPECT_THROW(Tensor().shape(), Error);
}

// ---- views share storage ----

TEST(TensorViews, ReshapeAndViewShareStorage) {
  Tensor base = iota({2, 6});
  Tensor r = ops::reshape(base, {3, 4});
  Tensor v = ops::view(base, {4, -1});
  EXPECT_EQ(v.shape(), (Shape{4, 3}));
  EXPECT_TRUE(shares_storage(r, base));
  EXPECT_TRUE(shares_storage(v, base));
  set_at(r, {2, 1}, 100);  // element 9
  EXPECT_EQ(at(base, {1, 3}), 100.0);
  set_at(v, {0, 2}, -5);  // element 2
  EXPECT_EQ(at(base, {0, 2}), -5.0);
  EXPECT_EQ(at(r, {0, 2}), -5.0);
  EXPECT_THROW(ops::view(base, {5, -1}), Error);
  EXPECT_THROW(ops::reshape(base, {-1, -1}), Error);
}

TEST(TensorViews, TransposeAndPermuteShareStorage) {
  Tensor base = iota({2, 3, 4});
  Tensor t = ops::transpose(base, 0, 2);
  EXPECT_TRUE(shares_storage(t, base));
  EXPECT_EQ(at(t, {3, 1, 0}), at(base, {0, 1, 3}));
  set_at(t, {3, 2, 1}, 77);
  EXPECT_EQ(at(base, {1, 2, 3}), 77.0);

  Tensor p = ops::permute(base, {1, 2, 0});
  EXPECT_EQ(p.shape(), (Shape{3, 4, 2}));
  EXPECT_TRUE(shares_storage(p, base));
  EXPECT_EQ(at(p, {2, 3, 1}), 77.0);
  set_at(p, {0, 1, 1}, -1);
  EXPECT_EQ(at(base, {1, 0, 1}), -1.0);
  EXPECT_THROW(ops::permute(base, {0, 0, 1}), Error);
  EXPECT_THROW(ops::permute(base, {0, 1}), Error);
}

TEST(TensorViews, NarrowAndSelectShareStorage) {
  Tensor base = iota({4, 5});
  Tensor n = ops::narrow(base, 1, 1, 3);
  EXPECT_EQ(n.shape(), (Shape{4, 3}));
  EXPECT_TRUE(shares_storage(n, base));
  EXPECT_EQ(at(n, {2, 0}), 11.0);
  ops::fill_(n, -1);  // non-contiguous fill writes only the narrowed columns
  std::vector<float> v = base.to_vector<float>();
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(v[i * 5 + j], (j >= 1 && j <= 3) ? -1.0f : float(i * 5 + j));

  Tensor s = ops::select(base, 0, -1);  // last row
  EXPECT_EQ(s.shape(), (Shape{5}));
  EXPECT_TRUE(shares_storage(s, base));
  set_at(s, {4}, 123);
  EXPECT_EQ(at(base, {3, 4}), 123.0);
  Tensor c = ops::select(base, 1, 0);  // first column
  set_at(c, {2}, 55);
  EXPECT_EQ(at(base, {2, 0}), 55.0);

  Tensor nn = ops::narrow(base, 0, -2, 2);  // negative start counts from the end
  EXPECT_EQ(at(nn, {0, 0}), at(base, {2, 0}));
  EXPECT_THROW(ops::narrow(base, 1, 3, 3), Error);
  EXPECT_THROW(ops::select(base, 0, 4), Error);
}

TEST(TensorViews, ExpandAndUnsqueezeShareStorage) {
  Tensor base = iota({3, 1});
  Tensor e = ops::expand(base, {2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides()[0], 0);
  EXPECT_EQ(e.strides()[2], 0);
  EXPECT_TRUE(shares_storage(e, base));
  EXPECT_EQ(at(e, {1, 2, 3}), 2.0);
  set_at(e, {1, 1, 3}, 40);  // every expanded copy of row 1 is the same element
  EXPECT_EQ(at(base, {1, 0}), 40.0);
  EXPECT_EQ(at(e, {0, 1, 0}), 40.0);
  EXPECT_THROW(ops::expand(base, {3, 4, 2}), Error);

  Tensor u = ops::unsqueeze(base, 0);
  EXPECT_EQ(u.shape(), (Shape{1, 3, 1}));
  EXPECT_TRUE(shares_storage(u, base));
  set_at(u, {0, 2, 0}, -9);
  EXPECT_EQ(at(base, {2, 0}), -9.0);
  Tensor ul = ops::unsqueeze(base, -1);
  EXPECT_EQ(ul.shape(), (Shape{3, 1, 1}));

  Tensor sq = ops::squeeze(base, 1);
  EXPECT_EQ(sq.shape(), (Shape{3}));
  EXPECT_TRUE(shares_storage(sq, base));
  Tensor same_shape = ops::squeeze(base, 0);  // size 3: unchanged, but still a new view
  EXPECT_EQ(same_shape.shape(), (Shape{3, 1}));
  EXPECT_FALSE(same_shape.same(base));
  EXPECT_TRUE(shares_storage(same_shape, base));
  Tensor s0 = scalar_tensor(1);
  EXPECT_FALSE(ops::transpose(s0, 0, 0).same(s0));
  EXPECT_FALSE(ops::squeeze(s0, 0).same(s0));

  Tensor f = ops::flatten(iota({2, 3, 4}), 1);
  EXPECT_EQ(f.shape(), (Shape{2, 12}));
}

TEST(TensorViews, ContiguousCopiesOnlyWhenNeeded) {
  Tensor a = iota({3, 4});
  Tensor c = ops::contiguous(a);
  EXPECT_TRUE(c.same(a));

  Tensor rows = ops::narrow(a, 0, 1, 2);  // whole rows: still contiguous
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_TRUE(ops::contiguous(rows).same(rows));

  Tensor t = ops::transpose(a, 0, 1);
  EXPECT_FALSE(t.is_contiguous());
  Tensor tc = ops::contiguous(t);
  EXPECT_FALSE(shares_storage(tc, a));
  EXPECT_TRUE(tc.is_contiguous());
  EXPECT_EQ(tc.strides(), (Shape{3, 1}));
  EXPECT_EQ(tc.to_vector<float>(), t.to_vector<float>());
  std::vector<float> tv = tc.to_vector<float>();
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(tv[i * 3 + j], float(j * 4 + i));
  set_at(tc, {0, 0}, 99);  // a real copy
  EXPECT_EQ(at(a, {0, 0}), 0.0);

  // Size-1 dims do not break contiguity whatever their stride.
  Tensor one_row = ops::transpose(iota({4, 1}), 0, 1);
  EXPECT_TRUE(one_row.is_contiguous());
  EXPECT_TRUE(ops::contiguous(one_row).same(one_row));

  Tensor cl = ops::clone(a);
  EXPECT_FALSE(shares_storage(cl, a));
  EXPECT_EQ(cl.to_vector<float>(), a.to_vector<float>());
}

TEST(TensorViews, ViewOfNonViewableLayoutThrowsReshapeCopies) {
  Tensor a = iota({2, 3});
  Tensor t = ops::transpose(a, 0, 1);  // [3, 2] with strides [1, 3]
  std::string msg = error_of([&] { ops::view(t, {6}); });
  EXPECT_CONTAINS(msg, "view");
  EXPECT_CONTAINS(msg, "[3, 2]");
  EXPECT_CONTAINS(msg, "reshape");

  Tensor r = ops::reshape(t, {6});
  EXPECT_FALSE(shares_storage(r, a));
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));

  // Splitting a dim of a transposed tensor is expressible, so reshape returns a view there.
  Tensor b = ops::transpose(iota({4, 6}), 0, 1);  // [6, 4]
  Tensor split = ops::reshape(b, {2, 3, 4});
  EXPECT_TRUE(shares_storage(split, b));
  EXPECT_EQ(split.to_vector<float>(), b.to_vector<float>());
  EXPECT_NO_THROW(ops::view(b, {3, 2, 4}));
  EXPECT_THROW(ops::view(b, {24}), Error);
}

// ---- cat and stack ----

TEST(TensorJoin, CatValues) {
  Tensor a = iota({2, 3});
  Tensor b = ops::affine(iota({1, 3}), 1, 100);
  Tensor c0 = ops::cat({a, b}, 0);
  EXPECT_EQ(c0.shape(), (Shape{3, 3}));
  EXPECT_EQ(c0.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 4, 5, 100, 101, 102}));

  Tensor d = ops::affine(iota({2, 2}), 1, 10);
  Tensor c1 = ops::cat({a, d}, -1);
  EXPECT_EQ(c1.shape(), (Shape{2, 5}));
  EXPECT_EQ(c1.to_vector<float>(), (std::vector<float>{0, 1, 2, 10, 11, 3, 4, 5, 12, 13}));

  // A transposed (non-contiguous) input is read in logical order.
  Tensor c2 = ops::cat({ops::transpose(a, 0, 1), iota({1, 2})}, 0);
  EXPECT_EQ(c2.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5, 0, 1}));

  std::string msg = error_of([&] { ops::cat({a, d}, 0); });
  EXPECT_CONTAINS(msg, "cat");
  EXPECT_CONTAINS(msg, "[2, 2]");
  EXPECT_THROW(ops::cat({a, zeros({2, 3}, DType::Float64)}, 0), Error);
  EXPECT_THROW(ops::cat({}, 0), Error);
}

TEST(TensorJoin, StackValues) {
  Tensor a = iota({2, 2});
  Tensor b = ops::affine(iota({2, 2}), 1, 10);
  Tensor s0 = ops::stack({a, b}, 0);
  EXPECT_EQ(s0.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(s0.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 10, 11, 12, 13}));
  Tensor s1 = ops::stack({a, b}, 1);
  EXPECT_EQ(s1.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(s1.to_vector<float>(), (std::vector<float>{0, 1, 10, 11, 2, 3, 12, 13}));
  Tensor s2 = ops::stack({a, b}, -1);
  EXPECT_EQ(s2.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(s2.to_vector<float>(), (std::vector<float>{0, 10, 1, 11, 2, 12, 3, 13}));
  EXPECT_THROW(ops::stack({a, iota({2, 3})}, 0), Error);
}

TEST(TensorConversion, ToDtypeAndCopy) {
  Tensor a = from_vector(std::vector<float>{1.5f, -2.0f, 3.25f});
  Tensor d = ops::to_dtype(a, DType::Float64);
  EXPECT_EQ(d.dtype(), DType::Float64);
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{1.5, -2.0, 3.25}));
  EXPECT_TRUE(ops::to_dtype(a, DType::Float32).same(a));
  Tensor i = ops::to_dtype(a, DType::Int64);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, -2, 3}));

  Tensor dst = zeros({2, 3});
  ops::copy_(dst, from_vector(std::vector<double>{1, 2, 3}));  // broadcast and convert
  EXPECT_EQ(dst.to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  EXPECT_THROW(ops::copy_(dst, zeros({4})), Error);
}
