// Checkpoints as .safetensors files (https://github.com/huggingface/safetensors), so PyTorch and Hugging Face
// tools read what Braid writes and the other way round: an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets"}, ..., "__metadata__": {str: str}}) padded with spaces to a multiple
// of 8, then the tensors' bytes, little-endian, back to back. Braid reads and writes F32, F64 and I64.
// save writes a temporary file beside `path` and renames it into place, so a crash never leaves a half-written
// checkpoint under the real name. load checks every size, offset and dtype against the file before trusting it
// and throws braid::Error naming the file and the problem.
#pragma once

#include <map>
#include <string>

#include "braid/nn/module.h"

namespace braid::nn {

using Metadata = std::map<std::string, std::string>;

// Tensors are saved contiguous and on the CPU, whatever their layout and device.
void save(const StateDict& tensors, const std::string& path, const Metadata& metadata = {});
StateDict load(const std::string& path);
// The file's "__metadata__" (empty when it has none); the header is validated as by load.
Metadata load_metadata(const std::string& path);

void save(const Module& module, const std::string& path, const Metadata& metadata = {});
// Loads into the module's parameters and buffers; with strict, missing or unexpected names are errors. Shapes
// and dtypes must match either way.
void load(Module& module, const std::string& path, bool strict = true);

}  // namespace braid::nn
