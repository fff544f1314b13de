// Helpers shared by Braid's side-by-side benchmarks: a wall clock, medians, a tiny --flag parser, and the list
// of GEMMs one training step of an MLP performs (so "GFLOP/s in training" and "GEMM share of the step" count
// exactly what Braid's Linear forward and backward call), timed through braid::ops and through raw cblas_sgemm.
#pragma once

#include <cblas.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "braid/core/core.h"

namespace braid::bench {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds of the whole process (all threads): less sensitive than wall time to other jobs on the machine.
inline double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// --name value pairs; flags not given keep their defaults.
class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      const char* key = argv[i];
      if (std::strncmp(key, "--", 2) != 0) {
        std::fprintf(stderr, "unexpected argument %s\n", key);
        std::exit(2);
      }
      const char* value = "1";  // a bare flag
      if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) value = argv[++i];
      kv_.emplace_back(key + 2, value);
    }
  }
  std::string str(const std::string& k, const std::string& def) const {
    for (auto& [key, v] : kv_)
      if (key == k) return v;
    return def;
  }
  int64_t i64(const std::string& k, int64_t def) const { return std::stoll(str(k, std::to_string(def))); }
  double f64(const std::string& k, double def) const { return std::stod(str(k, std::to_string(def))); }

 private:
  std::vector<std::pair<std::string, std::string>> kv_;
};

inline std::vector<int64_t> parse_ints(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

// One row-major C[m,n] = op(A) op(B) (+ C when accumulate), named after its role in the step.
struct GemmShape {
  std::string name;
  bool trans_a, trans_b;
  int64_t m, n, k;
  bool accumulate;  // Linear's forward adds into the bias already copied into the output (beta = 1)
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
};

// The GEMMs of one training step of Linear layers dims[0] -> dims[1] -> ... at `batch`, as Braid issues them:
// forward x[B,in] @ W^T (W passed transposed), weight gradient g^T @ x (g passed transposed), and input
// gradient g @ W, which autograd skips for the first layer because the data does not require grad (PyTorch
// skips it too).
inline std::vector<GemmShape> mlp_gemms(const std::vector<int64_t>& dims, int64_t batch) {
  std::vector<GemmShape> out;
  for (size_t l = 0; l + 1 < dims.size(); ++l) {
    int64_t in = dims[l], o = dims[l + 1];
    auto name = [&](const char* what) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "L%zu %lld->%lld %s", l, (long long)in, (long long)o, what);
      return std::string(buf);
    };
    out.push_back({name("fwd x@W^T"), false, true, batch, o, in, true});
    out.push_back({name("dW g^T@x"), true, false, o, in, batch, false});
    if (l > 0) out.push_back({name("dX g@W"), false, false, batch, in, o, false});
  }
  return out;
}

inline double total_flops(const std::vector<GemmShape>& g) {
  double f = 0;
  for (auto& s : g) f += s.flops();
  return f;
}

// Operands for one GEMM, stored as they are in training (A is [k,m] when transposed, B is [n,k] when transposed).
struct GemmOperands {
  Tensor a, b, c;
  explicit GemmOperands(const GemmShape& s)
      : a(randn(s.trans_a ? Shape{s.k, s.m} : Shape{s.m, s.k})),
        b(randn(s.trans_b ? Shape{s.n, s.k} : Shape{s.k, s.n})),
        c(zeros({s.m, s.n})) {}
};

// Median seconds for one pass over `shapes`, each GEMM through braid::ops::gemm_into with transposed views
// (what Linear's forward and backward call), or through cblas_sgemm directly. Also fills per-GEMM medians.
inline double time_gemms(const std::vector<GemmShape>& shapes, bool raw_cblas, int reps,
                         std::vector<double>* per_gemm = nullptr) {
  std::vector<GemmOperands> ops;
  for (auto& s : shapes) ops.emplace_back(s);
  auto run_one = [&](size_t i) {
    const GemmShape& s = shapes[i];
    GemmOperands& o = ops[i];
    float beta = s.accumulate ? 1.f : 0.f;
    if (raw_cblas) {
      cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, s.trans_b ? CblasTrans : CblasNoTrans,
                  int(s.m), int(s.n), int(s.k), 1.f, o.a.data<float>(), int(s.trans_a ? s.m : s.k),
                  o.b.data<float>(), int(s.trans_b ? s.k : s.n), beta, o.c.data<float>(), int(s.n));
    } else {
      Tensor A = s.trans_a ? ops::transpose(o.a, 0, 1) : o.a;
      Tensor B = s.trans_b ? ops::transpose(o.b, 0, 1) : o.b;
      ops::gemm_into(o.c, A, B, 1, beta);
    }
  };
  for (int w = 0; w < 3; ++w)
    for (size_t i = 0; i < shapes.size(); ++i) run_one(i);
  std::vector<double> pass;
  std::vector<std::vector<double>> each(shapes.size());
  for (int r = 0; r < reps; ++r) {
    double t_pass = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      double t0 = now_s();
      run_one(i);
      double dt = now_s() - t0;
      each[i].push_back(dt);
      t_pass += dt;
    }
    pass.push_back(t_pass);
  }
  if (per_gemm) {
    per_gemm->clear();
    for (auto& e : each) per_gemm->push_back(median(e));
  }
  return median(pass);
}

}  // namespace braid::bench
