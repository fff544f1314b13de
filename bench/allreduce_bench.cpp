// All-reduce bus bandwidth of Braid's ProcessGroup (MPI backend, CPU tensors) against raw MPI_Allreduce, side by
// side in one run: float32 sum, 4 KiB to 64 MiB, interleaved (A B C A B C) and the median of the repetitions.
// Braid is timed two ways: the blocking call (dist::all_reduce, torch.distributed's default) and the asynchronous
// one waited at once (group->all_reduce(t)->wait()), which wakes the communication thread first.
// Bus bandwidth = 2 (n - 1) / n * bytes / time, as nccl-tests define it.
// usage: mpirun -np 2 --bind-to none build/bench/braid_allreduce_bench [repetitions]
#define OMPI_SKIP_MPICXX 1
#include <braid/braid.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace braid;

namespace {

// Seconds per call, the slowest rank's, over enough calls to take about 50 ms.
template <class Fn>
double time_per_call(Fn fn) {
  fn();  // warm-up
  int iters = 1;
  for (;;) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; ++i) fn();
    double dt = MPI_Wtime() - t0, slowest = 0;
    MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (slowest > 0.05 || iters >= (1 << 16)) return slowest / iters;
    iters *= slowest < 0.005 ? 8 : 2;
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  dist::init(argc, argv);
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const int n = dist::world_size();
  auto group = dist::world();
  if (dist::rank() == 0) {
    std::printf("All-reduce, float32 sum, %d ranks, median of %d interleaved repetitions\n\n", n, reps);
    std::printf(
        "| size | MPI_Allreduce µs | Braid blocking µs | Braid async+wait µs | MPI bus GB/s | Braid blocking bus GB/s "
        "| blocking / MPI | async+wait / MPI |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
  }
  for (size_t bytes = 4096; bytes <= (size_t(64) << 20); bytes *= 4) {
    int64_t count = int64_t(bytes / sizeof(float));
    Tensor t = ones({count});
    // The raw call gets Braid-allocated memory too, so the two differ only in how the call is made.
    Tensor raw_tensor = ones({count});
    float* raw_data = raw_tensor.data<float>();
    std::vector<double> t_mpi, t_braid, t_async;
    for (int r = 0; r < reps; ++r) {
      t_mpi.push_back(time_per_call(
          [&] { MPI_Allreduce(MPI_IN_PLACE, raw_data, int(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }));
      t_braid.push_back(time_per_call([&] { dist::all_reduce(t, dist::ReduceOp::Sum, group); }));
      t_async.push_back(time_per_call([&] { group->all_reduce(t)->wait(); }));
    }
    double a = median(t_mpi), b = median(t_braid), c = median(t_async);
    double factor = n > 1 ? 2.0 * (n - 1) / n : 1.0;
    double bw_a = factor * double(bytes) / a / 1e9, bw_b = factor * double(bytes) / b / 1e9;
    if (dist::rank() == 0) {
      const char* unit = bytes >= (1 << 20) ? "MiB" : "KiB";
      size_t shown = bytes >= (1 << 20) ? bytes >> 20 : bytes >> 10;
      std::printf("| %zu %s | %.1f | %.1f | %.1f | %.2f | %.2f | %.3f | %.3f |\n", shown, unit, a * 1e6, b * 1e6,
                  c * 1e6, bw_a, bw_b, a / b, a / c);
      std::fflush(stdout);
    }
  }
  dist::finalize();
  return 0;
}
