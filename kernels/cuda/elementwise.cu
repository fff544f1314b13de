// CUDA launchers for the element-wise functors of functors.h over strided operands (Loop<N>, byte strides).
// After coalesce(), a loop that is one contiguous run (every input contiguous or a broadcast scalar) goes to a
// flat kernel with 16-byte loads and stores when the pointers allow; anything else goes to one strided kernel
// that decomposes the linear index over the loop's dimensions. Both kernels are templated on the functor, which
// op_kinds.h's with_unary / with_binary pick from the op's name, exactly as on the CPU.
#include <array>
#include <type_traits>

#include "braid/kernels/cuda/kernels.h"
#include "launch.cuh"

namespace braid::kernels::cuda {

namespace {

using namespace detail;

template <class TO>
struct Cast {
  template <class T>
  __device__ __forceinline__ TO operator()(T x) const {
    return static_cast<TO>(x);
  }
};

// Elements per vector: 16 bytes of the wider of the two types.
template <class TO, class TI>
constexpr int kVecWidth = 16 / int(sizeof(TO) > sizeof(TI) ? sizeof(TO) : sizeof(TI));

template <class F, class TI, int NIN>
__device__ __forceinline__ auto apply(const F& f, const TI (&x)[NIN]) {
  if constexpr (NIN == 1)
    return f(x[0]);
  else
    return f(x[0], x[1]);
}

template <class TO, class TI, int NIN>
struct FlatArgs {
  TO* out;
  const TI* in[NIN];
  bool scalar[NIN];  // a broadcast scalar (stride 0): read once
  int64_t n;
  bool vec;  // out and every non-scalar input are aligned to a whole vector
};

template <class F, class TO, class TI, int NIN>
__global__ void __launch_bounds__(kThreads) flat_kernel(F f, FlatArgs<TO, TI, NIN> a) {
  constexpr int V = kVecWidth<TO, TI>;
  const int64_t start = global_thread(), step = grid_stride();
  TI sv[NIN];
#pragma unroll
  for (int k = 0; k < NIN; ++k) sv[k] = a.scalar[k] ? a.in[k][0] : TI(0);
  int64_t done = 0;
  if (a.vec) {
    const int64_t nv = a.n / V;
    for (int64_t i = start; i < nv; i += step) {
      Vec<TI, V> x[NIN];
#pragma unroll
      for (int k = 0; k < NIN; ++k) {
        if (a.scalar[k]) {
#pragma unroll
          for (int e = 0; e < V; ++e) x[k].v[e] = sv[k];
        } else {
          x[k] = reinterpret_cast<const Vec<TI, V>*>(a.in[k])[i];
        }
      }
      Vec<TO, V> y;
#pragma unroll
      for (int e = 0; e < V; ++e) {
        TI args[NIN];
#pragma unroll
        for (int k = 0; k < NIN; ++k) args[k] = x[k].v[e];
        y.v[e] = static_cast<TO>(apply(f, args));
      }
      reinterpret_cast<Vec<TO, V>*>(a.out)[i] = y;
    }
    done = nv * V;
  }
  for (int64_t i = done + start; i < a.n; i += step) {
    TI args[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) args[k] = a.scalar[k] ? sv[k] : a.in[k][i];
    a.out[i] = static_cast<TO>(apply(f, args));
  }
}

template <int NIN>
struct InPtrs {
  const char* p[NIN];
};

template <class F, class TO, class TI, int NIN>
__global__ void __launch_bounds__(kThreads)
    strided_kernel(F f, char* out, InPtrs<NIN> in, StridedOffsets<NIN + 1> idx, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    int64_t off[NIN + 1];
    idx.get(i, off);
    TI args[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) args[k] = *reinterpret_cast<const TI*>(in.p[k] + off[k + 1]);
    *reinterpret_cast<TO*>(out + off[0]) = static_cast<TO>(apply(f, args));
  }
}

template <class F, class TO, class TI, int NIN>
void launch(F f, const Loop<NIN + 1>& loop, TO* out, std::array<const TI*, NIN> in, Stream stream) {
  const Loop<NIN + 1> L = coalesce(loop);
  const int64_t n = L.numel();
  if (n <= 0) return;

  FlatArgs<TO, TI, NIN> args{};
  bool flat = L.ndim == 0 || (L.ndim == 1 && L.strides[0][0] == int64_t(sizeof(TO)));
  for (int k = 0; k < NIN && flat; ++k) {
    const int64_t s = L.ndim == 0 ? int64_t(sizeof(TI)) : L.strides[k + 1][0];
    args.scalar[k] = s == 0;
    flat = s == 0 || s == int64_t(sizeof(TI));
  }
  if (flat) {
    constexpr int V = kVecWidth<TO, TI>;
    args.out = out;
    args.n = n;
    args.vec = aligned(out, sizeof(TO) * V);
    for (int k = 0; k < NIN; ++k) {
      args.in[k] = in[k];
      if (!args.scalar[k]) args.vec = args.vec && aligned(in[k], sizeof(TI) * V);
    }
    const int64_t items = args.vec ? ceil_div(n, V) : n;
    flat_kernel<F, TO, TI, NIN><<<grid_for(items, kThreads), kThreads, 0, stream>>>(f, args);
    BRAID_CUDA_CHECK_LAUNCH();
    return;
  }
  InPtrs<NIN> ptrs;
  for (int k = 0; k < NIN; ++k) ptrs.p[k] = reinterpret_cast<const char*>(in[k]);
  strided_kernel<F, TO, TI, NIN><<<grid_for(n, kThreads), kThreads, 0, stream>>>(f, reinterpret_cast<char*>(out), ptrs,
                                                                                 StridedOffsets<NIN + 1>(L), n);
  BRAID_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void __launch_bounds__(kThreads) fill_kernel(T* out, int64_t n, T value, bool vec) {
  constexpr int V = 16 / int(sizeof(T));
  const int64_t start = global_thread(), step = grid_stride();
  int64_t done = 0;
  if (vec) {
    Vec<T, V> v;
#pragma unroll
    for (int e = 0; e < V; ++e) v.v[e] = value;
    const int64_t nv = n / V;
    for (int64_t i = start; i < nv; i += step) reinterpret_cast<Vec<T, V>*>(out)[i] = v;
    done = nv * V;
  }
  for (int64_t i = done + start; i < n; i += step) out[i] = value;
}

const char* int64_error() { return ": expected a floating-point tensor, got int64 (CUDA)"; }

}  // namespace

template <class T>
void unary(UnaryOp op, OpParams p, const Loop<2>& loop, T* out, const T* in, Stream stream) {
  // Functors that are not integer_ok are never instantiated for int64_t.
  if constexpr (!std::is_floating_point_v<T>) BRAID_CHECK(integer_ok(op), op_name(op), int64_error());
  with_unary(op, p, [&](auto f) {
    using F = decltype(f);
    if constexpr (std::is_floating_point_v<T> || integer_functor<F>)
      launch<F, T, T, 1>(f, loop, out, {in}, stream);
    else
      BRAID_FAIL(op_name(op), int64_error());
  });
}

template <class T>
void binary(BinaryOp op, OpParams p, const Loop<3>& loop, T* out, const T* a, const T* b, Stream stream) {
  if constexpr (!std::is_floating_point_v<T>) BRAID_CHECK(integer_ok(op), op_name(op), int64_error());
  with_binary(op, p, [&](auto f) {
    using F = decltype(f);
    if constexpr (std::is_floating_point_v<T> || integer_functor<F>)
      launch<F, T, T, 2>(f, loop, out, {a, b}, stream);
    else
      BRAID_FAIL(op_name(op), int64_error());
  });
}

template <class TO, class TF>
void convert(const Loop<2>& loop, TO* out, const TF* in, Stream stream) {
  launch<Cast<TO>, TO, TF, 1>(Cast<TO>{}, loop, out, {in}, stream);
}

template <class T>
void fill(T* out, int64_t n, T value, Stream stream) {
  if (n <= 0) return;
  constexpr int V = 16 / int(sizeof(T));
  const bool vec = aligned(out, sizeof(T) * V);
  fill_kernel<T><<<grid_for(vec ? ceil_div(n, V) : n, kThreads), kThreads, 0, stream>>>(out, n, value, vec);
  BRAID_CUDA_CHECK_LAUNCH();
}

#define BRAID_INSTANTIATE(T)                                                                   \
  template void unary<T>(UnaryOp, OpParams, const Loop<2>&, T*, const T*, Stream);             \
  template void binary<T>(BinaryOp, OpParams, const Loop<3>&, T*, const T*, const T*, Stream); \
  template void fill<T>(T*, int64_t, T, Stream);                                               \
  template void convert<T, float>(const Loop<2>&, T*, const float*, Stream);                   \
  template void convert<T, double>(const Loop<2>&, T*, const double*, Stream);                 \
  template void convert<T, int64_t>(const Loop<2>&, T*, const int64_t*, Stream);
BRAID_INSTANTIATE(float)
BRAID_INSTANTIATE(double)
BRAID_INSTANTIATE(int64_t)
#undef BRAID_INSTANTIATE

}  // namespace braid::kernels::cuda
