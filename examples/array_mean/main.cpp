// The mean of a large random array computed in chunks, the reduction Dask users write as
//   da.random.random((10000, 10000), chunks=(1000, 1000)).mean()
// Chunks are dealt round-robin over the ranks of mpirun and, within a rank, over OpenMP threads. Each chunk is
// drawn from a generator seeded by its grid position alone, so the array is the same whatever the number of ranks
// and threads. Each rank writes the sums of its chunks into a vector indexed by chunk (zeros elsewhere); one
// world()->all_reduce adds the vectors, and every rank sums the chunk sums in chunk order. Adding zeros is exact,
// so the parallel mean is bit-for-bit the serial one, which rank 0 then computes through the same code with one
// rank and one thread, for the time comparison.
//
//   mpirun -np 2 array_mean [--size 10000] [--chunk 1000] [--threads N] [--seed S] [--no-serial]
#include <braid/braid.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cxxopts.hpp>
#include <vector>

#include "cli_values.h"

using namespace braid;
using examples::int_flag;

namespace {

struct Layout {
  int64_t size, chunk, grid;  // the array is size x size, cut into grid x grid chunks of (up to) chunk x chunk
  uint64_t seed;
};

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Chunk (row, col) of the array: uniform in [0, 1), from its own generator.
Tensor make_chunk(const Layout& a, int64_t row, int64_t col) {
  Generator gen(splitmix64(a.seed ^ splitmix64(uint64_t(row) * uint64_t(a.grid) + uint64_t(col))));
  int64_t rows = std::min(a.chunk, a.size - row * a.chunk), cols = std::min(a.chunk, a.size - col * a.chunk);
  return rand({rows, cols}, DType::Float64, &gen);
}

double chunk_sum(const Tensor& chunk) {
  const double* p = chunk.data<double>();
  double total = 0;
  for (int64_t r = 0; r < chunk.size(0); ++r) {
    double row = 0;
    for (int64_t c = 0; c < chunk.size(1); ++c) row += p[r * chunk.size(1) + c];
    total += row;
  }
  return total;
}

// The sums of the chunks that `rank` of `ranks` owns (round-robin), computed by `threads` OpenMP threads; the
// other entries stay zero.
std::vector<double> local_chunk_sums(const Layout& a, int rank, int ranks, int threads) {
  const int64_t chunks = a.grid * a.grid;
  std::vector<double> sums(size_t(chunks), 0.0);
#pragma omp parallel for num_threads(threads) schedule(dynamic)
  for (int64_t c = rank; c < chunks; c += ranks) sums[size_t(c)] = chunk_sum(make_chunk(a, c / a.grid, c % a.grid));
  return sums;
}

// The mean of the array over `group` (or this process alone when null), with `threads` threads per rank.
double chunked_mean(const Layout& a, dist::ProcessGroup* group, int threads) {
  std::vector<double> sums = local_chunk_sums(a, group ? group->rank() : 0, group ? group->size() : 1, threads);
  Tensor all = from_vector(sums);
  if (group) group->all_reduce(all, dist::ReduceOp::Sum)->wait();
  const double* s = all.data<double>();
  double total = 0;
  for (size_t c = 0; c < sums.size(); ++c) total += s[c];
  return total / (double(a.size) * double(a.size));
}

// Each rank holds two vectors of one double per chunk (its sums and the reduced copy) and each thread one chunk at
// a time; refused before any work when that exceeds this host's memory, instead of a std::bad_alloc thrown inside
// an OpenMP loop, which terminates the job. Counted in double: size x size itself overflows int64 above 3e9.
void check_fits_in_memory(const Layout& a, int threads) {
  const double gib = double(1 << 30);
  const double host = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  const double chunks = double(a.grid) * double(a.grid), edge = double(std::min(a.chunk, a.size));
  const double sums = 2 * 8 * chunks, per_thread = 8 * edge * edge;
  BRAID_CHECK(sums <= host, "--size ", a.size, " with --chunk ", a.chunk, " makes ", chunks, " chunks, whose sums (",
              sums / gib, " GiB per rank) exceed this host's memory (", host / gib, " GiB): raise --chunk");
  BRAID_CHECK(sums + per_thread * threads <= host, "--chunk ", a.chunk, ": ", threads, " threads holding a chunk of ",
              per_thread / gib, " GiB each exceed this host's memory (", host / gib,
              " GiB): lower --chunk or --threads");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  bool main_rank = true;  // until dist::init has said otherwise
  cxxopts::Options cli("array_mean", "Mean of a chunked random array over MPI ranks and OpenMP threads");
  // clang-format off
  cli.add_options()
    ("size", "the array is size x size float64", examples::text_value("10000"))
    ("chunk", "chunks are chunk x chunk", examples::text_value("1000"))
    ("threads", "OpenMP threads per rank (0: OMP_NUM_THREADS, or the cores shared among this host's ranks)",
     examples::text_value("0"))
    ("seed", "seed of the array", examples::text_value("0"))
    ("no-serial", "skip the single-thread reference run")
    ("h,help", "show this help");
  // clang-format on
  try {
    dist::init(argc, argv);  // inside the try: a bad BRAID_DIST_TIMEOUT is reported like a bad flag
    main_rank = dist::rank() == 0;
    auto args = examples::parse_args(cli, argc, argv);
    if (args.count("help")) {
      if (main_rank) std::printf("%s\n", cli.help().c_str());
      return 0;
    }
    Layout a{int_flag(args, "size", 1), int_flag(args, "chunk", 1), 0, examples::seed_flag(args)};
    a.grid = a.size / a.chunk + (a.size % a.chunk != 0);  // size + chunk - 1 could overflow
    // OpenMP starts every thread asked for: far more than any host has cores ends the process in libgomp.
    int threads = int(int_flag(args, "threads", 0, examples::kMaxThreads));
    if (threads <= 0)
      threads = std::getenv("OMP_NUM_THREADS") ? omp_get_max_threads()
                                               : std::max(1, omp_get_num_procs() / dist::local_world_size());
    check_fits_in_memory(a, threads);
    auto world = dist::world();

    world->barrier()->wait();  // start together, so the time is the slowest rank's
    auto start = std::chrono::steady_clock::now();
    double mean = chunked_mean(a, world.get(), threads);
    double parallel_s = seconds_since(start);

    if (main_rank) {
      const double n = double(a.size) * double(a.size);
      std::printf(
          "array_mean: %lld x %lld float64 uniform [0, 1) in %lld x %lld chunks (%lld chunks), %d ranks x %d "
          "threads\n",
          (long long)a.size, (long long)a.size, (long long)a.chunk, (long long)a.chunk, (long long)(a.grid * a.grid),
          world->size(), threads);
      std::printf("mean %.15f in %.3f s (%.3g elements/s)\n", mean, parallel_s, n / parallel_s);
      // The mean of n independent uniforms on [0, 1) has expectation 1/2 and standard error sqrt(1 / (12 n)).
      const double standard_error = std::sqrt(1.0 / (12.0 * n));
      std::printf("expected 0.5 +- %.2g (standard error): off by %.2f standard errors\n", standard_error,
                  (mean - 0.5) / standard_error);
      bool ok = std::abs(mean - 0.5) < 6 * standard_error;
      if (!args.count("no-serial")) {
        start = std::chrono::steady_clock::now();
        double serial = chunked_mean(a, nullptr, 1);
        double serial_s = seconds_since(start);
        double rel = std::abs(mean - serial) / std::abs(serial);
        std::printf("serial (1 rank, 1 thread): mean %.15f in %.3f s; speed-up %.2fx; relative difference %.3g\n",
                    serial, serial_s, serial_s / parallel_s, rel);
        ok = ok && rel <= 1e-9;
      }
      std::printf("%s\n", ok ? "OK" : "MISMATCH");
      std::fflush(stdout);
      if (!ok) dist::abort("array_mean: the mean is off (see above)", 3);
    }
    world->barrier()->wait();  // the other ranks wait for rank 0's serial run rather than tearing MPI down
    dist::finalize();
    return 0;
  } catch (const cxxopts::exceptions::exception& e) {
    // Any rank may be the one given bad flags (mpirun MPMD): it says so, and its goodbye at exit ends the ranks
    // that wait for it.
    if (main_rank)
      std::fprintf(stderr, "array_mean: %s\n%s\n", e.what(), cli.help().c_str());
    else
      std::fprintf(stderr, "array_mean (rank %d): %s\n", dist::rank(), e.what());
    return 2;
  } catch (const Error& e) {
    if (dist::is_initialized() && dist::world_size() > 1) dist::abort(std::string("array_mean: ") + e.what());
    std::fprintf(stderr, "array_mean: %s\n", e.what());
    return 1;
  }
}
