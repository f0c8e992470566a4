// Safetensors writer and validating reader (format summary in safetensors.h).
#include "train/safetensors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <system_error>

namespace pelab {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this build assumes a little-endian host");

// The reference implementation refuses headers above 100 MB; so do we (it bounds the allocation).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// More dimensions than any real tensor has; it bounds the work one header entry can ask for.
constexpr size_t kMaxDims = 64;

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  uint64_t itemsize;
};

constexpr std::array<DtypeInfo, 10> kDtypes{{
    {"F64", torch::kFloat64, 8},
    {"F32", torch::kFloat32, 4},
    {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2},
    {"I64", torch::kInt64, 8},
    {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},
    {"I8", torch::kInt8, 1},
    {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
}};

const DtypeInfo* dtype_by_type(torch::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return &d;
  }
  return nullptr;
}

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

std::string accepted_dtypes() {
  std::string out;
  for (const auto& d : kDtypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

[[noreturn]] void fail_safetensors(const std::filesystem::path& path, const std::string& problem) {
  throw std::runtime_error("safetensors file " + path.string() + ": " + problem);
}

[[noreturn]] void refuse(const std::filesystem::path& path, const std::string& problem) {
  throw std::runtime_error("cannot write safetensors file " + path.string() + ": " + problem);
}

void write_file(const std::filesystem::path& tmp, const std::string& header,
                const std::vector<torch::Tensor>& data) {
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot create the temporary file " + tmp.string());
  std::array<char, 8> len{};
  const uint64_t n = header.size();
  for (size_t i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.write(len.data(), len.size());
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& t : data) {
    const auto bytes = static_cast<std::streamsize>(t.numel() * t.element_size());
    if (bytes > 0) out.write(static_cast<const char*>(t.data_ptr()), bytes);
  }
  out.close();
  if (!out) throw std::runtime_error("writing " + tmp.string() + " failed");
}

}  // namespace

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& meta = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
  }
  std::vector<torch::Tensor> data;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__") refuse(path, "invalid tensor name '" + name + "'");
    if (!names.insert(name).second) refuse(path, "duplicate tensor name '" + name + "'");
    if (!tensor.defined()) refuse(path, "tensor '" + name + "' is undefined");
    const DtypeInfo* dtype = dtype_by_type(tensor.scalar_type());
    if (dtype == nullptr) {
      refuse(path, "tensor '" + name + "' has unsupported dtype " +
                       std::string(c10::toString(tensor.scalar_type())) +
                       "; accepted: " + accepted_dtypes());
    }
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype->itemsize;
    header[name] = {{"dtype", dtype->name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(t));
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. metadata that is not valid UTF-8
    refuse(path, std::string("cannot encode the header: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  const std::filesystem::path tmp = path.string() + ".tmp";
  std::error_code ec;
  try {
    write_file(tmp, text, data);
    std::filesystem::rename(tmp, path);
  } catch (const std::exception& e) {
    std::filesystem::remove(tmp, ec);
    refuse(path, e.what());
  }
}

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail_safetensors(path, "cannot read: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_safetensors(path, "cannot open");
  if (file_size < 8) {
    fail_safetensors(path, "file too short (" + std::to_string(file_size) +
                               " bytes) to hold the 8-byte header length");
  }
  std::array<unsigned char, 8> len{};
  in.read(reinterpret_cast<char*>(len.data()), len.size());
  uint64_t header_len = 0;
  for (size_t i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (header_len > file_size - 8) {
    fail_safetensors(path, "header length " + std::to_string(header_len) +
                               " runs beyond the end of the file (" + std::to_string(file_size) +
                               " bytes); the file is truncated or not safetensors");
  }
  if (header_len > kMaxHeaderBytes) {
    fail_safetensors(path,
                     "header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  }
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (!in) fail_safetensors(path, "cannot read the header");
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail_safetensors(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail_safetensors(path, "header is not a JSON object");

  struct Entry {
    std::string name;
    const DtypeInfo* dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail_safetensors(path, "__metadata__ is not a JSON object");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string())
          fail_safetensors(path, "__metadata__ value of '" + key + "' is not a string");
        out.metadata[key] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!value.is_object()) fail_safetensors(path, where + "entry is not a JSON object");
    if (!value.contains("dtype") || !value["dtype"].is_string()) {
      fail_safetensors(path, where + "missing or non-string \"dtype\"");
    }
    const std::string dtype_name = value["dtype"].get<std::string>();
    const DtypeInfo* dtype = dtype_by_name(dtype_name);
    if (dtype == nullptr) {
      fail_safetensors(
          path, where + "unknown dtype '" + dtype_name + "'; accepted: " + accepted_dtypes());
    }
    if (!value.contains("shape") || !value["shape"].is_array()) {
      fail_safetensors(path, where + "missing or non-array \"shape\"");
    }
    if (value["shape"].size() > kMaxDims) {
      fail_safetensors(path, where + "shape has " + std::to_string(value["shape"].size()) +
                                 " dimensions; accepted: at most " + std::to_string(kMaxDims));
    }
    Entry entry{name, dtype, {}, 0, 0};
    uint64_t bytes = dtype->itemsize;
    bool empty = false;
    for (const auto& d : value["shape"]) {
      if (!d.is_number_unsigned())
        fail_safetensors(path, where + "shape " + value["shape"].dump() + " is invalid");
      const uint64_t dim = d.get<uint64_t>();
      // Strides multiply the dims after a zero as well, so even an empty tensor's non-zero dims
      // must multiply within int64.
      if (__builtin_mul_overflow(bytes, std::max<uint64_t>(dim, 1), &bytes) ||
          bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail_safetensors(path, where + "shape " + value["shape"].dump() + " is too large");
      }
      empty |= dim == 0;
      entry.shape.push_back(static_cast<int64_t>(dim));
    }
    if (empty) bytes = 0;
    const auto& offsets = value.contains("data_offsets") ? value["data_offsets"] : nlohmann::json();
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      fail_safetensors(path,
                       where + "\"data_offsets\" must be two non-negative integers [begin, end]");
    }
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    const std::string range = offsets.dump();
    if (entry.end < entry.begin)
      fail_safetensors(path, where + "data_offsets " + range + " end before begin");
    if (entry.end > data_size) {
      fail_safetensors(path, where + "data_offsets " + range +
                                 " out of range: the data section has " +
                                 std::to_string(data_size) + " bytes");
    }
    if (entry.end - entry.begin != bytes) {
      fail_safetensors(path, where + "data_offsets " + range + " span " +
                                 std::to_string(entry.end - entry.begin) + " bytes but dtype " +
                                 dtype_name + " and shape " + value["shape"].dump() + " need " +
                                 std::to_string(bytes));
    }
    entries.push_back(std::move(entry));
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const auto& e : entries) {
    if (e.begin < covered)
      fail_safetensors(path, "tensor '" + e.name + "' overlaps the previous tensor");
    if (e.begin > covered) {
      fail_safetensors(path, "hole in the data section before tensor '" + e.name + "' (bytes " +
                                 std::to_string(covered) + ".." + std::to_string(e.begin) +
                                 " unused)");
    }
    covered = e.end;
  }
  if (covered != data_size) {
    fail_safetensors(path, "the tensors cover " + std::to_string(covered) +
                               " bytes but the data section has " + std::to_string(data_size));
  }

  for (const auto& e : entries) {
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    const uint64_t bytes = e.end - e.begin;
    if (bytes > 0) {
      in.seekg(static_cast<std::streamoff>(data_start + e.begin));
      in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(bytes));
      if (!in) fail_safetensors(path, "cannot read the data of tensor '" + e.name + "'");
      if (e.dtype->type == torch::kBool && t.view(torch::kUInt8).max().item<int64_t>() > 1) {
        fail_safetensors(path, "tensor '" + e.name + "': BOOL data holds bytes other than 0 and 1");
      }
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace pelab
