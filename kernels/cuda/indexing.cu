// CUDA row gathers and scatter-adds for index_select / index_add (and embedding lookups and their backward): rows
// of a contiguous source addressed by an int64 index. gather_rows copies whole rows in the widest unit (16, 8, 4
// or 1 bytes) that the pointers and the row size allow; index_add_rows adds with atomics so repeated indices sum.
// Indices are not checked here: the launchers are not told the source's row count (see kernels.h).
#include <cstdint>

#include "braid/kernels/cuda/kernels.h"
#include "launch.cuh"

namespace braid::kernels::cuda {

namespace {

using namespace detail;

// out[r, u] = src[index[r], u] over rows of `units` units of type U.
template <class U>
__global__ void __launch_bounds__(kThreads)
    gather_rows_kernel(const U* src, const int64_t* index, U* out, int64_t total, int64_t units, RowCol split) {
  for (int64_t i = global_thread(); i < total; i += grid_stride()) {
    int64_t r, u;
    split.get(i, r, u);
    out[i] = src[index[r] * units + u];
  }
}

template <class U>
void launch_gather(const void* src, const int64_t* index, void* out, int64_t rows, int64_t row_bytes, Stream stream) {
  const int64_t units = row_bytes / int64_t(sizeof(U));
  const int64_t total = rows * units;
  gather_rows_kernel<U><<<grid_for(total, kThreads), kThreads, 0, stream>>>(
      static_cast<const U*>(src), index, static_cast<U*>(out), total, units, RowCol(total, units));
  BRAID_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    index_add_rows_kernel(const T* src, const int64_t* index, T* out, int64_t total, int64_t row_elems, RowCol split) {
  for (int64_t i = global_thread(); i < total; i += grid_stride()) {
    int64_t r, j;
    split.get(i, r, j);
    atomicAdd(out + index[r] * row_elems + j, src[i]);
  }
}

}  // namespace

void gather_rows(const void* src, const int64_t* index, void* out, int64_t rows, int64_t row_bytes, Stream stream) {
  if (rows <= 0 || row_bytes <= 0) return;
  auto fits = [&](size_t unit) { return row_bytes % int64_t(unit) == 0 && aligned(src, unit) && aligned(out, unit); };
  if (fits(16))
    launch_gather<uint4>(src, index, out, rows, row_bytes, stream);
  else if (fits(8))
    launch_gather<uint2>(src, index, out, rows, row_bytes, stream);
  else if (fits(4))
    launch_gather<uint32_t>(src, index, out, rows, row_bytes, stream);
  else
    launch_gather<unsigned char>(src, index, out, rows, row_bytes, stream);
}

template <class T>
void index_add_rows(const T* src, const int64_t* index, T* out, int64_t rows, int64_t row_elems, Stream stream) {
  if (rows <= 0 || row_elems <= 0) return;
  const int64_t total = rows * row_elems;
  index_add_rows_kernel<T>
      <<<grid_for(total, kThreads), kThreads, 0, stream>>>(src, index, out, total, row_elems, RowCol(total, row_elems));
  BRAID_CUDA_CHECK_LAUNCH();
}

template void index_add_rows<float>(const float*, const int64_t*, float*, int64_t, int64_t, Stream);
template void index_add_rows<double>(const double*, const int64_t*, double*, int64_t, int64_t, Stream);

}  // namespace braid::kernels::cuda
