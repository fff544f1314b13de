#include "braid/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "braid/core/creation.h"

// zlib reports failures through gzerror, or through errno when the failure was the system's (Z_ERRNO).
#define BRAID_ZLIB_CHECK(cond, call, file, path)                                 \
  do {                                                                           \
    if (!(cond)) ::braid::data::zlib_fail(call, file, path, __FILE__, __LINE__); \
  } while (0)

namespace braid::data {

[[noreturn]] static void zlib_fail(const char* call, gzFile file, const std::string& path, const char* src, int line) {
  int saved_errno = errno;
  int errnum = Z_ERRNO;
  const char* message = file ? gzerror(file, &errnum) : nullptr;
  std::string why = (errnum == Z_ERRNO || !message) ? std::strerror(saved_errno) : message;
  BRAID_FAIL("read_idx: ", call, " failed for '", path, "': ", why, " (", src, ":", line, ")");
}

namespace {

enum class IdxType : uint8_t { U8 = 0x08, I8 = 0x09, I16 = 0x0B, I32 = 0x0C, F32 = 0x0D, F64 = 0x0E };

// A header of more dims than this is taken as corruption, not data.
constexpr uint32_t max_dims = 16;
// Compressed data is read in pieces, so memory grows only with the bytes actually present. They start small and
// double, so a short file whose header claims a lot costs little (a fuzzer's every other input) yet large files
// still read in few pieces.
constexpr size_t first_read_chunk = size_t(64) << 10;
constexpr size_t read_chunk = size_t(16) << 20;

size_t type_size(IdxType t) {
  switch (t) {
    case IdxType::U8:
    case IdxType::I8:
      return 1;
    case IdxType::I16:
      return 2;
    case IdxType::I32:
    case IdxType::F32:
      return 4;
    default:
      return 8;
  }
}

const char* type_name(IdxType t) {
  switch (t) {
    case IdxType::U8:
      return "u8";
    case IdxType::I8:
      return "i8";
    case IdxType::I16:
      return "i16";
    case IdxType::I32:
      return "i32";
    case IdxType::F32:
      return "f32";
    default:
      return "f64";
  }
}

bool known_type(uint8_t code) {
  return code == 0x08 || code == 0x09 || code == 0x0B || code == 0x0C || code == 0x0D || code == 0x0E;
}

uint32_t big_endian_u32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

uint64_t big_endian_u64(const uint8_t* p) { return uint64_t(big_endian_u32(p)) << 32 | big_endian_u32(p + 4); }

class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    std::error_code ec;
    BRAID_CHECK(std::filesystem::exists(path, ec), "read_idx: file '", path, "' does not exist");
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    BRAID_ZLIB_CHECK(file_, "gzopen", file_, path_);
  }
  ~GzReader() {
    if (file_) gzclose(file_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes; fewer only at the end of the data.
  size_t read(void* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      // gzread takes an unsigned count and returns an int, so large reads go in pieces.
      unsigned piece = unsigned(std::min<size_t>(n - done, size_t(1) << 30));
      errno = 0;
      int got = gzread(file_, static_cast<char*>(dst) + done, piece);
      BRAID_ZLIB_CHECK(got >= 0, "gzread", file_, path_);
      if (got == 0) break;
      done += size_t(got);
    }
    return done;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

struct IdxArray {
  IdxType type;
  Shape shape;
  std::vector<uint8_t> bytes;  // big-endian elements, exactly as in the file
};

IdxArray read_raw(const std::string& path) {
  GzReader in(path);
  uint8_t magic[4];
  size_t got = in.read(magic, 4);
  BRAID_CHECK(got == 4, "read_idx: '", path, "' is truncated: it has ", got,
              " bytes, fewer than the 4-byte IDX magic number");
  BRAID_CHECK(magic[0] == 0 && magic[1] == 0 && known_type(magic[2]), "read_idx: '", path, "' has bad magic number 0x",
              std::hex, big_endian_u32(magic), std::dec,
              ": expected two zero bytes, a type code (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64) "
              "and the number of dims (is this an IDX file?)");
  IdxArray a;
  a.type = IdxType(magic[2]);
  uint32_t ndims = magic[3];
  BRAID_CHECK(ndims >= 1 && ndims <= max_dims, "read_idx: '", path, "' declares ", ndims,
              " dims in its header; expected 1 to ", max_dims);
  std::vector<uint8_t> dims(4 * ndims);
  got = in.read(dims.data(), dims.size());
  BRAID_CHECK(got == dims.size(), "read_idx: '", path, "' is truncated in its header: ", ndims, " dims need ",
              dims.size(), " bytes after the magic number, the file has ", got);
  uint64_t numel = 1;
  // Bounded without the zero dims too: an empty array's shape still sets its strides (and an image's rows * cols),
  // which must not overflow.
  uint64_t nonzero_numel = 1;
  for (uint32_t d = 0; d < ndims; ++d) {
    uint32_t n = big_endian_u32(&dims[4 * d]);
    a.shape.push_back(int64_t(n));
    BRAID_CHECK(n == 0 || nonzero_numel <= uint64_t(std::numeric_limits<int64_t>::max()) / 8 / n, "read_idx: '",
                path, "' declares shape ", shape_str(a.shape), "..., too many elements to be real (corrupt header?)");
    numel *= n;
    if (n != 0) nonzero_numel *= n;
  }
  size_t nbytes = size_t(numel) * type_size(a.type);
  // Grow with the data actually present: a header promising terabytes fails at the end of a small file.
  for (size_t chunk = first_read_chunk; a.bytes.size() < nbytes; chunk = std::min(2 * chunk, read_chunk)) {
    size_t before = a.bytes.size();
    size_t want = std::min(chunk, nbytes - before);
    a.bytes.resize(before + want);
    size_t n = in.read(a.bytes.data() + before, want);
    BRAID_CHECK(n == want, "read_idx: '", path, "' is truncated: its header declares ", type_name(a.type), " shape ",
                shape_str(a.shape), ", ", nbytes, " bytes of data, but the file holds only ", before + n);
  }
  uint8_t extra;
  BRAID_CHECK(in.read(&extra, 1) == 0, "read_idx: '", path, "' has more data than the ", nbytes,
              " bytes its header declares (", type_name(a.type), " shape ", shape_str(a.shape), ")");
  return a;
}

template <class Out, class Decode>
Tensor convert(const IdxArray& a, const Shape& shape, DType dtype, Decode decode) {
  Tensor t = empty(shape, dtype);
  Out* out = t.data<Out>();
  size_t size = type_size(a.type);
  int64_t n = t.numel();
  const uint8_t* p = a.bytes.data();
  for (int64_t i = 0; i < n; ++i) out[i] = decode(p + size_t(i) * size);
  return t;
}

// Integer codes decoded as their C++ value; the caller picks the output element type.
template <class Out>
Tensor convert_integers(const IdxArray& a, const Shape& shape, DType dtype) {
  switch (a.type) {
    case IdxType::U8:
      return convert<Out>(a, shape, dtype, [](const uint8_t* p) { return Out(p[0]); });
    case IdxType::I8:
      return convert<Out>(a, shape, dtype, [](const uint8_t* p) { return Out(int8_t(p[0])); });
    case IdxType::I16:
      return convert<Out>(a, shape, dtype, [](const uint8_t* p) { return Out(int16_t(uint16_t(p[0] << 8 | p[1]))); });
    default:
      return convert<Out>(a, shape, dtype, [](const uint8_t* p) { return Out(int32_t(big_endian_u32(p))); });
  }
}

std::string file_in(const std::string& root, const std::string& base) {
  std::filesystem::path gz = std::filesystem::path(root) / (base + ".gz");
  std::filesystem::path plain = std::filesystem::path(root) / base;
  std::error_code ec;
  if (std::filesystem::exists(gz, ec)) return gz.string();
  if (std::filesystem::exists(plain, ec)) return plain.string();
  BRAID_FAIL("FashionMNIST: neither '", gz.string(), "' nor '", plain.string(),
             "' exists (Debian's dataset-fashion-mnist package installs them in ", default_fashion_mnist_root, ")");
}

}  // namespace

Tensor read_idx(const std::string& path) {
  IdxArray a = read_raw(path);
  switch (a.type) {
    case IdxType::I32:
      return convert_integers<int64_t>(a, a.shape, DType::Int64);
    case IdxType::F32:
      return convert<float>(a, a.shape, DType::Float32,
                            [](const uint8_t* p) { return std::bit_cast<float>(big_endian_u32(p)); });
    case IdxType::F64:
      return convert<double>(a, a.shape, DType::Float64,
                             [](const uint8_t* p) { return std::bit_cast<double>(big_endian_u64(p)); });
    default:
      return convert_integers<float>(a, a.shape, DType::Float32);
  }
}

Tensor read_idx_images(const std::string& path) {
  IdxArray a = read_raw(path);
  BRAID_CHECK(a.type == IdxType::U8 && a.shape.size() == 3, "read_idx_images: '", path, "' holds ", type_name(a.type),
              " of shape ", shape_str(a.shape), "; expected u8 images of shape [N, rows, cols]");
  return convert<float>(a, {a.shape[0], a.shape[1] * a.shape[2]}, DType::Float32,
                        [](const uint8_t* p) { return float(p[0]) / 255.0f; });
}

Tensor read_idx_labels(const std::string& path) {
  IdxArray a = read_raw(path);
  BRAID_CHECK(a.shape.size() == 1 && a.type != IdxType::F32 && a.type != IdxType::F64, "read_idx_labels: '", path,
              "' holds ", type_name(a.type), " of shape ", shape_str(a.shape),
              "; expected integer labels of shape [N]");
  return convert_integers<int64_t>(a, a.shape, DType::Int64);
}

static Example load_split(const std::string& root, bool train) {
  std::string prefix = train ? "train" : "t10k";
  std::string images_path = file_in(root, prefix + "-images-idx3-ubyte");
  std::string labels_path = file_in(root, prefix + "-labels-idx1-ubyte");
  Example e{read_idx_images(images_path), read_idx_labels(labels_path)};
  BRAID_CHECK(e.data.shape()[0] == e.target.shape()[0], "FashionMNIST: '", images_path, "' holds ", e.data.shape()[0],
              " images but '", labels_path, "' holds ", e.target.shape()[0], " labels");
  return e;
}

FashionMNIST::FashionMNIST(const std::string& root, bool train) : FashionMNIST(load_split(root, train)) {}

FashionMNIST::FashionMNIST(Example loaded) : TensorDataset(std::move(loaded.data), std::move(loaded.target)) {}

std::shared_ptr<TensorDataset> load_fashion_mnist(const std::string& root, bool train) {
  return std::make_shared<FashionMNIST>(root, train);
}

}  // namespace braid::data
