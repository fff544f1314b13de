// The cores' empirical FP32 FMA throughput (port of peers/fma_peak.cpp): 12 independent FMA chains per thread,
// with 256-bit (AVX2) and 512-bit (AVX-512) vectors, on THREADS OpenMP threads; the best of 3 runs. Prints one
// JSON line per vector width, with the clock it implies at 32 and at 64 FP32 FLOP/cycle/core: Zen 4 does 32 at
// both widths (2 FMA pipes x 256 bit, AVX-512 double-pumped), Zen 5 (cpu family 26) does 64 with AVX-512.
// usage: braid_fma_peak [THREADS] [ITERS]   (ITERS per thread, default 100000000)
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

template <class V, V (*FMA)(V, V, V), V (*SET)(float)>
double kernel(long iters) {
  V a0 = SET(1.0f), a1 = SET(1.1f), a2 = SET(1.2f), a3 = SET(1.3f), a4 = SET(1.4f), a5 = SET(1.5f), a6 = SET(1.6f),
    a7 = SET(1.7f), a8 = SET(1.8f), a9 = SET(1.9f), a10 = SET(2.0f), a11 = SET(2.1f);
  V b = SET(0.999999f), c = SET(1e-7f);
  for (long i = 0; i < iters; ++i) {
    a0 = FMA(a0, b, c); a1 = FMA(a1, b, c); a2 = FMA(a2, b, c); a3 = FMA(a3, b, c);
    a4 = FMA(a4, b, c); a5 = FMA(a5, b, c); a6 = FMA(a6, b, c); a7 = FMA(a7, b, c);
    a8 = FMA(a8, b, c); a9 = FMA(a9, b, c); a10 = FMA(a10, b, c); a11 = FMA(a11, b, c);
    // Keeps the compiler from collapsing the chains.
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
  }
  V s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  float out[16];
  std::memcpy(out, &s, sizeof(V) < 64 ? sizeof(V) : 64);
  return out[0];
}

__m256 f256(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
__m256 s256(float x) { return _mm256_set1_ps(x); }
__m512 f512(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
__m512 s512(float x) { return _mm512_set1_ps(x); }

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  long iters = argc > 2 ? std::atol(argv[2]) : 100000000L;
  omp_set_num_threads(threads);
  for (int w = 0; w < 2; ++w) {
    const char* name = w == 0 ? "avx2-256" : "avx512-512";
    int lanes = w == 0 ? 8 : 16;
    double best = 0;
    for (int r = 0; r < 3; ++r) {
      double sink = 0;
      auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : sink)
      { sink += w == 0 ? kernel<__m256, f256, s256>(iters) : kernel<__m512, f512, s512>(iters); }
      auto t1 = std::chrono::steady_clock::now();
      double s = std::chrono::duration<double>(t1 - t0).count();
      double gf = double(iters) * 12 * lanes * 2 * threads / s * 1e-9;
      if (gf > best) best = gf;
      if (sink == 12345.0) std::printf("x");
    }
    std::printf("{\"width\": \"%s\", \"threads\": %d, \"peak_gflops\": %.1f, \"ghz_at_32_flop_per_cycle\": %.2f, "
                "\"ghz_at_64_flop_per_cycle\": %.2f}\n",
                name, threads, best, best / threads / 32.0, best / threads / 64.0);
    std::fflush(stdout);
  }
  return 0;
}
