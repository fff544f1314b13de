#include "braid/nn/checkpoint.h"

#include <signal.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "braid/core/creation.h"
#include "braid/core/ops.h"

// The C stdio and POSIX calls report through errno.
#define BRAID_IO_CHECK(cond, op, call, path)                                                                        \
  do {                                                                                                              \
    if (!(cond))                                                                                                    \
      BRAID_FAIL(op, ": ", call, " failed for '", path, "': ", std::strerror(errno), " (", __FILE__, ":", __LINE__, \
                 ")");                                                                                              \
  } while (0)

namespace braid::nn {

// The format is little-endian and Braid writes tensor memory as it is.
static_assert(std::endian::native == std::endian::little, "checkpoint.cpp assumes a little-endian host");

namespace {

using nlohmann::json;

// The limit of the reference implementation: larger headers are corrupt or hostile.
constexpr uint64_t max_header_bytes = 100'000'000;
constexpr const char* metadata_key = "__metadata__";

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
    default:
      return "I64";
  }
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32")
    *out = DType::Float32;
  else if (s == "F64")
    *out = DType::Float64;
  else if (s == "I64")
    *out = DType::Int64;
  else
    return false;
  return true;
}

class File {
 public:
  File(const std::string& path, const char* mode, const char* op) : path_(path), op_(op) {
    errno = 0;
    f_ = std::fopen(path.c_str(), mode);
    BRAID_IO_CHECK(f_, op_, "fopen", path_);
  }
  ~File() {
    if (f_) std::fclose(f_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  void write(const void* p, size_t n) {
    if (n == 0) return;
    errno = 0;
    BRAID_IO_CHECK(std::fwrite(p, 1, n, f_) == n, op_, "fwrite", path_);
  }
  // Reads exactly n bytes; `what` says what they were meant to be when the file ends early.
  void read(void* p, size_t n, const char* what) {
    if (n == 0) return;
    errno = 0;
    size_t got = std::fread(p, 1, n, f_);
    if (got == n) return;
    BRAID_IO_CHECK(!std::ferror(f_), op_, "fread", path_);
    BRAID_FAIL(op_, ": '", path_, "' is truncated: it ended ", n - got, " bytes short while reading ", what);
  }
  // Flushes to the disk, so the rename that follows never exposes a file whose data is not there yet.
  void sync_and_close() {
    errno = 0;
    BRAID_IO_CHECK(std::fflush(f_) == 0, op_, "fflush", path_);
    BRAID_IO_CHECK(::fsync(fileno(f_)) == 0, op_, "fsync", path_);
    FILE* f = f_;
    f_ = nullptr;
    BRAID_IO_CHECK(std::fclose(f) == 0, op_, "fclose", path_);
  }

 private:
  std::string path_;
  const char* op_;
  FILE* f_ = nullptr;
};

struct Entry {
  std::string name;
  DType dtype = DType::Float32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

struct Header {
  uint64_t data_start = 0;     // 8 + header length
  std::vector<Entry> entries;  // sorted by offset
  Metadata metadata;
};

// Reads and validates everything but the tensor bytes; `file` is left at the start of the data.
Header read_header(File& file, const std::string& path, const char* op) {
  std::error_code ec;
  uint64_t file_size = std::filesystem::file_size(path, ec);
  BRAID_CHECK(!ec, op, ": cannot read '", path, "': ", ec.message());
  BRAID_CHECK(file_size >= 8, op, ": '", path, "' is truncated: it has ", file_size,
              " bytes, fewer than the 8-byte header length that starts a safetensors file");
  uint8_t prefix[8];
  file.read(prefix, 8, "the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | prefix[i];
  BRAID_CHECK(n <= max_header_bytes, op, ": '", path, "' declares a header of ", n, " bytes (limit ", max_header_bytes,
              "): not a safetensors file, or a corrupt one");
  BRAID_CHECK(n <= file_size - 8, op, ": '", path, "' declares a header of ", n, " bytes but only ", file_size - 8,
              " bytes follow the length: truncated or corrupt");
  std::string text(n, '\0');
  file.read(text.data(), n, "the JSON header");
  BRAID_CHECK(n > 0 && text[0] == '{', op, ": '", path, "' has a header that does not start with '{'");
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    BRAID_FAIL(op, ": '", path, "' has a header that is not valid JSON: ", e.what());
  }
  BRAID_CHECK(root.is_object(), op, ": '", path, "' has a JSON header that is not an object");

  Header h;
  h.data_start = 8 + n;
  uint64_t data_size = file_size - h.data_start;
  for (auto& [name, value] : root.items()) {
    if (name == metadata_key) {
      BRAID_CHECK(value.is_object(), op, ": '", path, "': ", metadata_key, " must be an object of strings");
      for (auto& [k, v] : value.items()) {
        BRAID_CHECK(v.is_string(), op, ": '", path, "': ", metadata_key, " value of '", k, "' is not a string");
        h.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    // Captured by an init-capture: clang before 16 cannot capture a structured binding.
    auto where = [&, &name = name] { return detail::concat(op, ": '", path, "': tensor '", name, "'"); };
    BRAID_CHECK(value.is_object(), where(), " is not described by an object");
    Entry e;
    e.name = name;
    auto dtype = value.find("dtype");
    BRAID_CHECK(dtype != value.end() && dtype->is_string(), where(), " has no dtype string");
    BRAID_CHECK(parse_dtype(dtype->get<std::string>(), &e.dtype), where(), " has dtype ", dtype->get<std::string>(),
                "; Braid reads F32, F64 and I64");
    auto shape = value.find("shape");
    BRAID_CHECK(shape != value.end() && shape->is_array(), where(), " has no shape array");
    uint64_t numel = 1;
    // Bounded without the zero dims too: an empty tensor's shape still sets its strides, which must not overflow.
    uint64_t nonzero_numel = 1;
    for (const json& d : *shape) {
      // Only scalars are printed: dump() recurses once per nesting level, and a deep enough array overflows the stack.
      BRAID_CHECK(d.is_number_unsigned(), where(), " has a shape entry ", d.is_structured() ? d.type_name() : d.dump(),
                  " that is not a size");
      uint64_t v = d.get<uint64_t>();
      BRAID_CHECK(v <= uint64_t(std::numeric_limits<int64_t>::max()) &&
                      (v == 0 || nonzero_numel <= uint64_t(std::numeric_limits<int64_t>::max()) / 8 / v),
                  where(), " has shape ", shape_str(e.shape), " followed by ", v, ", too large to be real");
      numel *= v;
      if (v != 0) nonzero_numel *= v;
      e.shape.push_back(int64_t(v));
    }
    auto offsets = value.find("data_offsets");
    BRAID_CHECK(offsets != value.end() && offsets->is_array() && offsets->size() == 2 &&
                    (*offsets)[0].is_number_unsigned() && (*offsets)[1].is_number_unsigned(),
                where(), " has no data_offsets [begin, end] of two sizes");
    e.begin = (*offsets)[0].get<uint64_t>();
    e.end = (*offsets)[1].get<uint64_t>();
    BRAID_CHECK(e.begin <= e.end, where(), " has data_offsets ", offsets->dump(), " with begin after end");
    uint64_t nbytes = numel * element_size(e.dtype);
    BRAID_CHECK(e.end - e.begin == nbytes, where(), " is ", dtype->get<std::string>(), " of shape ", shape->dump(),
                " (", nbytes, " bytes) but its data_offsets ", offsets->dump(), " span ", e.end - e.begin);
    BRAID_CHECK(e.end <= data_size, op, ": '", path, "' is truncated or corrupt: tensor '", name, "' ends at byte ",
                e.end, " of the data, but only ", data_size, " bytes follow the header");
    h.entries.push_back(std::move(e));
  }
  std::sort(h.entries.begin(), h.entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  // The format forbids overlaps and holes: sorted by offset, each tensor starts where the previous one ended.
  uint64_t at = 0;
  for (const Entry& e : h.entries) {
    BRAID_CHECK(e.begin == at, op, ": '", path, "': tensor '", e.name, "' starts at data byte ", e.begin,
                " but the previous tensor ends at ", at, (e.begin < at ? " (overlap)" : " (hole)"));
    at = e.end;
  }
  BRAID_CHECK(at == data_size, op, ": '", path, "' has ", data_size - at,
              " bytes after the last tensor's data that no tensor describes");
  return h;
}

constexpr const char* temporary_infix = ".tmp.";

// Beside the real file, so the rename stays on one file system; the pid keeps concurrent writers apart.
std::string temporary_path(const std::string& path) { return path + temporary_infix + std::to_string(::getpid()); }

// The pid a temporary of `file_name` names, or 0 when `candidate` is not one (only plain positive decimals count,
// so kill() is never asked about a process group or every process).
pid_t temporary_owner(const std::string& candidate, const std::string& file_name) {
  const std::string prefix = file_name + temporary_infix;
  if (candidate.size() <= prefix.size() || candidate.compare(0, prefix.size(), prefix) != 0) return 0;
  const char* first = candidate.data() + prefix.size();
  const char* last = candidate.data() + candidate.size();
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(first, last, pid);
  if (ec != std::errc() || end != last || pid <= 0) return 0;
  return pid;
}

// A save killed between creating its temporary and renaming it leaves the temporary behind; one whose owner no
// longer exists can never be finished, so it is removed. Best effort: a folder that cannot be listed is left as
// it is, and the save itself reports any real problem with the path.
void remove_dead_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string file_name = target.filename().string();
  if (file_name.empty()) return;
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    pid_t owner = temporary_owner(it->path().filename().string(), file_name);
    if (owner == 0 || owner == ::getpid()) continue;
    // EPERM means the process exists under another user: its save may still be running.
    if (::kill(owner, 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

}  // namespace

uint32_t checksum(const StateDict& tensors, uint32_t crc) {
  // zlib takes lengths as uInt: larger tensors go in pieces.
  auto add = [&crc](const void* data, size_t n) {
    const auto* p = static_cast<const Bytef*>(data);
    for (size_t chunk; n > 0; p += chunk, n -= chunk) {
      chunk = std::min<size_t>(n, size_t(1) << 30);
      crc = uint32_t(::crc32(crc, p, uInt(chunk)));
    }
  };
  // Lengths before names keep ("ab", "c") and ("a", "bc") apart.
  auto add_u64 = [&add](uint64_t v) { add(&v, sizeof v); };
  for (const auto& [name, t] : tensors) {
    add_u64(name.size());
    add(name.data(), name.size());
    const char* dtype = safetensors_dtype(t.dtype());
    add(dtype, std::strlen(dtype));
    add_u64(uint64_t(t.dim()));
    for (int64_t d : t.shape()) add_u64(uint64_t(d));
    Tensor c = ops::contiguous(t.device().is_cpu() ? t : ops::to_device(t, Device::cpu()));
    add(c.raw_data(), size_t(c.numel()) * element_size(c.dtype()));
  }
  return crc;
}

void save(const StateDict& tensors, const std::string& path, const Metadata& metadata) {
  const char* op = "nn::save";
  struct Item {
    const std::string* name;
    Tensor data;  // contiguous, CPU
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  for (auto& [name, t] : tensors) {
    BRAID_CHECK(!name.empty(), op, ": '", path, "': a tensor has an empty name");
    BRAID_CHECK(name != metadata_key, op, ": '", path, "': '", metadata_key, "' is reserved and cannot name a tensor");
    BRAID_CHECK(t.defined(), op, ": '", path, "': tensor '", name, "' is undefined");
    Tensor c = t.device().is_cpu() ? t : ops::to_device(t, Device::cpu());
    items.push_back({&name, ops::contiguous(c)});
  }
  // Widest elements first keeps every tensor aligned to its element size in the data (as the reference writer
  // does); the header is padded to 8 bytes so the data itself starts aligned.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return element_size(a.data.dtype()) > element_size(b.data.dtype());
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[metadata_key] = metadata;
  uint64_t at = 0;
  for (const Item& it : items) {
    uint64_t nbytes = uint64_t(it.data.numel()) * element_size(it.data.dtype());
    header[*it.name] = {
        {"dtype", safetensors_dtype(it.data.dtype())}, {"shape", it.data.shape()}, {"data_offsets", {at, at + nbytes}}};
    at += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    BRAID_FAIL(op, ": '", path, "': a tensor name or metadata string is not valid UTF-8: ", e.what());
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');
  uint8_t prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  remove_dead_temporaries(path);
  std::string tmp = temporary_path(path);
  try {
    File file(tmp, "wb", op);
    file.write(prefix, 8);
    file.write(text.data(), text.size());
    for (const Item& it : items)
      file.write(it.data.raw_data(), size_t(it.data.numel()) * element_size(it.data.dtype()));
    file.sync_and_close();
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    BRAID_CHECK(!ec, op, ": cannot rename '", tmp, "' to '", path, "': ", ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

StateDict load(const std::string& path) {
  Metadata ignored;
  return load(path, ignored);
}

StateDict load(const std::string& path, Metadata& metadata) {
  const char* op = "nn::load";
  File file(path, "rb", op);
  Header h = read_header(file, path, op);
  metadata = std::move(h.metadata);
  StateDict out;
  // Sorted and without holes, so the tensors follow each other in the file exactly as read here.
  for (const Entry& e : h.entries) {
    Tensor t = empty(e.shape, e.dtype);
    file.read(t.raw_data(), e.end - e.begin, detail::concat("the data of tensor '", e.name, "'").c_str());
    out[e.name] = t;
  }
  return out;
}

Metadata load_metadata(const std::string& path) {
  File file(path, "rb", "nn::load_metadata");
  return read_header(file, path, "nn::load_metadata").metadata;
}

void check_can_save(const std::string& path) {
  const char* op = "nn::check_can_save";
  BRAID_CHECK(!path.empty(), op, ": the checkpoint path is empty");
  std::error_code ec;
  BRAID_CHECK(!std::filesystem::is_directory(path, ec), op, ": '", path, "' is a directory, not a file name");
  remove_dead_temporaries(path);
  std::string tmp = temporary_path(path);
  {
    File probe(tmp, "wb", op);
    probe.sync_and_close();
  }
  std::filesystem::remove(tmp, ec);
}

void save(const Module& module, const std::string& path, const Metadata& metadata) {
  save(module.state_dict(), path, metadata);
}

void load(Module& module, const std::string& path, bool strict) { module.load_state_dict(load(path), strict); }

}  // namespace braid::nn
