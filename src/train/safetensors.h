// Reading and writing the Hugging Face safetensors format (checkpoints).
//
// Layout: an 8-byte little-endian uint64 N, then N bytes of UTF-8 JSON header
//   {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
// padded with spaces to a multiple of 8, then the data section: each tensor's raw little-endian
// bytes in row-major order at [b, e) relative to the data section's start. The data section is
// indexed completely: tensors are contiguous, without holes or overlaps.
// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pelab {

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // in data-section order
};

// Writes `tensors` (moved to CPU and made contiguous; laid out in the given order) and `metadata`
// (omitted from the header when empty) to `path` atomically: the bytes go to path + ".tmp", which
// is then renamed over `path`. Names must be unique, non-empty and not "__metadata__". Throws
// std::runtime_error naming the path (the temporary file is removed on failure).
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Reads and validates a safetensors file; the tensors come back on the CPU in the order of their
// data offsets (which is the writing order for files from write_safetensors). Throws
// std::runtime_error naming the file and the problem (file too short, header length beyond the
// file, bad JSON, unknown dtype, offsets out of range, overlapping, leaving holes or not matching
// shape x itemsize).
SafetensorsFile read_safetensors(const std::filesystem::path& path);

}  // namespace pelab
