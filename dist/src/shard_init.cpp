#include "braid/dist/shard_init.h"

#include <cmath>
#include <mutex>

namespace braid::dist {

namespace {

struct Layout {
  int64_t outer = 1, full = 1, inner = 1, part = 1, block = 1;
};

Layout layout_of(const Shape& full_shape, const ShardSpec& spec) {
  Layout l;
  for (int64_t i = 0; i < spec.dim; ++i) l.outer *= full_shape[size_t(i)];
  l.full = full_shape[size_t(spec.dim)];
  for (size_t i = size_t(spec.dim) + 1; i < full_shape.size(); ++i) l.inner *= full_shape[i];
  l.block = l.full / spec.stride;
  l.part = l.block / spec.num_shards;
  return l;
}

// Streams every draw of the full tensor in order into the shard's elements, dropping the others' draws.
template <class Draw>
Tensor stream_shard(const Shape& full_shape, const ShardSpec& spec, TensorOptions options, Generator* gen,
                    const char* op, Draw draw) {
  Shape shape = shard_shape(full_shape, spec, op);
  Layout l = layout_of(full_shape, spec);
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape, TensorOptions(options.dtype, Device::cpu()));
  std::lock_guard<std::mutex> lock(g.mutex());
  dispatch_floating(options.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    const int64_t local = l.part * spec.stride;
    for (int64_t o = 0; o < l.outer; ++o)
      for (int64_t k = 0; k < l.full; ++k) {
        int64_t block = k / l.block, within = k % l.block;
        bool mine = within / l.part == spec.shard_rank;
        T* row = p + (o * local + block * l.part + within % l.part) * l.inner;
        for (int64_t i = 0; i < l.inner; ++i) {
          double v = draw(g);
          if (mine) row[i] = T(v);
        }
      }
  });
  Tensor out = ops::to_device(t, options.device);
  if (options.requires_grad) out.requires_grad_(true);
  return out;
}

}  // namespace

Shape shard_shape(const Shape& full_shape, const ShardSpec& spec, const char* op) {
  BRAID_CHECK(spec.dim >= 0 && spec.dim < int64_t(full_shape.size()), op, ": shard dim ", spec.dim,
              " is not a dim of shape ", shape_str(full_shape));
  BRAID_CHECK(spec.num_shards >= 1 && spec.shard_rank >= 0 && spec.shard_rank < spec.num_shards, op, ": shard ",
              spec.shard_rank, " of ", spec.num_shards, " does not exist");
  BRAID_CHECK(spec.stride >= 1, op, ": partition stride must be >= 1, got ", spec.stride);
  int64_t n = full_shape[size_t(spec.dim)];
  BRAID_CHECK(n % (spec.num_shards * spec.stride) == 0, op, ": dim ", spec.dim, " of shape ", shape_str(full_shape),
              " (", n, ") does not split into ", spec.num_shards, " shards x ", spec.stride, " blocks (stride)");
  Shape s = full_shape;
  s[size_t(spec.dim)] = n / spec.num_shards;
  return s;
}

Tensor uniform_shard(const Shape& full_shape, const ShardSpec& spec, double low, double high, TensorOptions options,
                     Generator* gen) {
  return stream_shard(full_shape, spec, options, gen, "uniform_shard",
                      [&](Generator& g) { return low + (high - low) * g.uniform(); });
}

Tensor normal_shard(const Shape& full_shape, const ShardSpec& spec, double mean, double std, TensorOptions options,
                    Generator* gen) {
  return stream_shard(full_shape, spec, options, gen, "normal_shard",
                      [&](Generator& g) { return mean + std * g.normal(); });
}

Tensor kaiming_uniform_shard(const Shape& full_shape, const ShardSpec& spec, double a, TensorOptions options,
                             Generator* gen) {
  BRAID_CHECK(full_shape.size() >= 2, "kaiming_uniform_shard: needs a shape with at least 2 dims, got ",
              shape_str(full_shape));
  int64_t fan_in = full_shape[1];
  for (size_t d = 2; d < full_shape.size(); ++d) fan_in *= full_shape[d];
  // nn::init::kaiming_uniform_'s exact expression, so the bound (and every value) is bit for bit the same.
  double gain = std::sqrt(2.0 / (1 + a * a));
  double bound = gain * std::sqrt(3.0 / double(fan_in));
  return uniform_shard(full_shape, spec, -bound, bound, options, gen);
}

Tensor shard_of(const Tensor& full, const ShardSpec& spec) {
  shard_shape(full.shape(), spec, "shard_of");
  Layout l = layout_of(full.shape(), spec);
  std::vector<Tensor> parts;
  for (int64_t b = 0; b < spec.stride; ++b)
    parts.push_back(ops::narrow(full, spec.dim, b * l.block + spec.shard_rank * l.part, l.part));
  return parts.size() == 1 ? ops::clone(parts[0]) : ops::cat(parts, spec.dim);
}

}  // namespace braid::dist
