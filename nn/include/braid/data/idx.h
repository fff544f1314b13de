// Readers for the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a big-endian header
// (two zero bytes, an element-type code, the number of dims, then each dim as a u32) followed by the elements.
// Files are read through zlib, so gzip-compressed and plain files both work. Every header is checked against the
// bytes actually present before the data is kept, so a corrupt header cannot cause a huge allocation; a missing
// file, bad magic, unknown element type, truncated or over-long data is a braid::Error naming the file.
#pragma once

#include <memory>
#include <string>

#include "braid/core/tensor.h"
#include "braid/data/dataset.h"

namespace braid::data {

// The array with the header's shape. Element types: u8, i8 and i16 become Float32 (exact), i32 becomes Int64
// (exact; IDX integers are usually labels or counts), f32 becomes Float32 and f64 Float64. Values are not scaled.
Tensor read_idx(const std::string& path);
// An image file (u8, [N, rows, cols]) as Float32 [N, rows * cols] scaled to [0, 1].
Tensor read_idx_images(const std::string& path);
// A label file (one dim of u8, i8, i16 or i32) as Int64 [N].
Tensor read_idx_labels(const std::string& path);

// Where Debian's dataset-fashion-mnist package installs the four files.
inline constexpr const char* default_fashion_mnist_root = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST (or MNIST, which uses the same file names) from `root`: {train,t10k}-images-idx3-ubyte and
// {train,t10k}-labels-idx1-ubyte, each with or without a .gz suffix. Data is Float32 [N, 784] in [0, 1];
// targets are Int64 [N] class indices.
class FashionMNIST : public TensorDataset {
 public:
  explicit FashionMNIST(const std::string& root = default_fashion_mnist_root, bool train = true);

 private:
  explicit FashionMNIST(Example loaded);
};

std::shared_ptr<TensorDataset> load_fashion_mnist(const std::string& root = default_fashion_mnist_root,
                                                  bool train = true);

}  // namespace braid::data
