// Data files: safetensors or JSON lines (format in data_file.h).
#include "train/data_file.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "config/user_paths.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "train/trainer.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSplitNames[] = {"train", "test"};

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

[[noreturn]] void fail_data_file(const fs::path& file, const std::string& problem) {
  throw DataFileError(fmt::format("data file {}: {}", file.string(), problem));
}

std::string jsonl_text(const DataFile& rows) {
  const auto& d = rows.data;
  const auto tokens = d.tokens.contiguous();
  const int64_t L = tokens.size(1);
  std::string out;
  for (int64_t r = 0; r < d.size(); ++r) {
    const int64_t* row = tokens[r].data_ptr<int64_t>();
    nlohmann::ordered_json j;
    j["tokens"] = std::vector<int64_t>(row, row + L);
    j["length"] = d.lengths[r].item<int64_t>();
    if (d.labels.defined()) j["label"] = d.labels[r].item<int64_t>();
    if (rows.split.defined()) j["split"] = kSplitNames[rows.split[r].item<uint8_t>()];
    out += j.dump();
    out += '\n';
  }
  return out;
}

// An integer tensor of the file as int64; I64 and I32 are accepted (numpy writes either).
torch::Tensor integer_tensor(const fs::path& file, const std::string& name,
                             const torch::Tensor& t) {
  if (t.scalar_type() != torch::kInt64 && t.scalar_type() != torch::kInt32)
    fail_data_file(file, fmt::format("tensor '{}' has dtype {}; accepted: I64 or I32", name,
                                     std::string(c10::toString(t.scalar_type()))));
  return t.to(torch::kInt64);
}

DataFile read_safetensors_rows(const fs::path& file) {
  SafetensorsFile st;
  try {
    st = read_safetensors(file);
  } catch (const std::runtime_error& e) {
    throw DataFileError(e.what());
  }
  DataFile rows;
  for (const auto& [name, t] : st.tensors) {
    if (name == "tokens") {
      rows.data.tokens = integer_tensor(file, name, t);
    } else if (name == "lengths") {
      rows.data.lengths = integer_tensor(file, name, t);
    } else if (name == "labels") {
      rows.data.labels = integer_tensor(file, name, t);
    } else if (name == "split") {
      if (t.scalar_type() != torch::kUInt8 || (t.numel() > 0 && t.max().item<int64_t>() > 1))
        fail_data_file(file, "tensor 'split' must be U8 with 0 (train) or 1 (test) per row");
      rows.split = t;
    } else {
      fail_data_file(
          file,
          fmt::format("unexpected tensor '{}'; accepted: tokens, lengths, labels, split", name));
    }
  }
  if (!rows.data.tokens.defined()) fail_data_file(file, "no tensor 'tokens' (I64 [N, L])");
  if (rows.data.tokens.dim() != 2)
    fail_data_file(file, fmt::format("tensor 'tokens' has shape {}; accepted: [N, L]",
                                     shape_text(rows.data.tokens)));
  const int64_t n = rows.data.tokens.size(0);
  if (!rows.data.lengths.defined())
    rows.data.lengths = torch::full({n}, rows.data.tokens.size(1), torch::kInt64);
  const auto check_rows = [&](const char* name, const torch::Tensor& t) {
    if (t.defined() && (t.dim() != 1 || t.size(0) != n))
      fail_data_file(file,
                     fmt::format("tensor '{}' has shape {}; accepted: [{}] (one per row of tokens)",
                                 name, shape_text(t), n));
  };
  check_rows("lengths", rows.data.lengths);
  check_rows("labels", rows.data.labels);
  check_rows("split", rows.split);
  return rows;
}

int64_t integer_value(const fs::path& file, int64_t line, const char* key,
                      const nlohmann::json& v) {
  if (!v.is_number_integer())
    fail_data_file(file,
                   fmt::format("line {}: \"{}\" is {}; accepted: an integer", line, key, v.dump()));
  return v.get<int64_t>();
}

DataFile read_jsonl_rows(const fs::path& file) {
  std::ifstream in(file);
  if (!in) fail_data_file(file, "cannot open");
  std::vector<int64_t> tokens, lengths, labels;
  std::vector<uint8_t> splits;
  int64_t width = -1, rows = 0, first_line = 0;
  bool has_labels = false, has_splits = false;
  std::string text;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail_data_file(file, fmt::format("line {}: not valid JSON ({})", line, e.what()));
    }
    if (!j.is_object()) fail_data_file(file, fmt::format("line {}: expected a JSON object", line));
    for (const auto& [key, value] : j.items())
      if (key != "tokens" && key != "length" && key != "label" && key != "split")
        fail_data_file(
            file, fmt::format("line {}: unknown key \"{}\"; accepted: tokens, length, label, split",
                              line, key));
    if (!j.contains("tokens") || !j["tokens"].is_array())
      fail_data_file(file, fmt::format("line {}: \"tokens\" must be an array of token ids", line));
    const auto& row = j["tokens"];
    const auto count = static_cast<int64_t>(row.size());
    if (width < 0) {
      width = count;
      first_line = line;
    } else if (count != width) {
      fail_data_file(
          file, fmt::format("line {} (row {}) has {} tokens but line {} has {}; every row needs "
                            "the same count (pad with 0 as `pelab data` does)",
                            line, rows, count, first_line, width));
    }
    for (const auto& t : row) tokens.push_back(integer_value(file, line, "tokens", t));
    lengths.push_back(j.contains("length") ? integer_value(file, line, "length", j["length"])
                                           : count);
    if (rows == 0) {
      has_labels = j.contains("label");
      has_splits = j.contains("split");
    }
    const std::pair<const char*, bool> optional_keys[] = {{"label", has_labels},
                                                          {"split", has_splits}};
    for (const auto& [key, present] : optional_keys)
      if (j.contains(key) != present)
        fail_data_file(
            file, fmt::format("line {}: \"{}\" must be given on every line or on none (line {} "
                              "{} it)",
                              line, key, first_line, present ? "has" : "lacks"));
    if (j.contains("label")) labels.push_back(integer_value(file, line, "label", j["label"]));
    if (j.contains("split")) {
      const auto& s = j["split"];
      if (s != "train" && s != "test")
        fail_data_file(file, fmt::format("line {}: \"split\" is {}; accepted: \"train\", \"test\"",
                                         line, s.dump()));
      splits.push_back(s == "train" ? 0 : 1);
    }
    ++rows;
  }
  if (rows == 0) fail_data_file(file, "no rows; expected one JSON object per line");
  DataFile out;
  out.data.tokens = torch::tensor(tokens, torch::kInt64).view({rows, width});
  out.data.lengths = torch::tensor(lengths, torch::kInt64);
  if (has_labels) out.data.labels = torch::tensor(labels, torch::kInt64);
  if (has_splits)
    out.split = torch::tensor(std::vector<int64_t>(splits.begin(), splits.end())).to(torch::kUInt8);
  return out;
}

}  // namespace

DataFormat data_format_for(const fs::path& file) {
  const auto ext = file.extension().string();
  if (ext == ".safetensors") return DataFormat::kSafetensors;
  if (ext == ".jsonl") return DataFormat::kJsonLines;
  throw DataFileError(
      fmt::format("{}: unknown extension '{}'; accepted: .safetensors, .jsonl (JSON lines)",
                  file.string(), ext));
}

DataFile data_of_split(const DatasetSplit& split, const std::string& split_name) {
  if (split_name != "train" && split_name != "test" && split_name != "all")
    throw DataFileError(
        fmt::format("--split '{}': unknown split; accepted: train, test, all", split_name));
  DataFile rows{select_split(split, split_name), {}};
  if (split_name == "all")  // select_split puts the training rows first
    rows.split = torch::cat({torch::zeros({split.train.size()}, torch::kUInt8),
                             torch::ones({split.test.size()}, torch::kUInt8)});
  return rows;
}

void write_data_file(const fs::path& file, const DataFile& rows,
                     const std::map<std::string, std::string>& metadata) {
  const DataFormat format = data_format_for(file);
  const fs::path folder = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  if (!fs::is_directory(folder))
    throw DataFileError(fmt::format("cannot write {}: the folder '{}' does not exist",
                                    file.string(), folder.string()));
  try {
    if (format == DataFormat::kJsonLines) {
      write_file_atomically(file, jsonl_text(rows));
      return;
    }
    std::vector<std::pair<std::string, torch::Tensor>> tensors = {{"tokens", rows.data.tokens},
                                                                  {"lengths", rows.data.lengths}};
    if (rows.data.labels.defined()) tensors.emplace_back("labels", rows.data.labels);
    if (rows.split.defined()) tensors.emplace_back("split", rows.split);
    write_safetensors(file, tensors, metadata);
  } catch (const std::exception& e) {
    throw DataFileError(fmt::format("cannot write {}: {}", file.string(), e.what()));
  }
}

DataFile read_data_file(const fs::path& file) {
  const DataFormat format = data_format_for(file);
  if (!user_file_exists(file)) fail_data_file(file, "no such file");
  return format == DataFormat::kJsonLines ? read_jsonl_rows(file) : read_safetensors_rows(file);
}

void check_rows_for_model(const DataFile& rows, const fs::path& file, int64_t vocab_size,
                          int64_t max_len, int64_t num_classes) {
  const auto& d = rows.data;
  const int64_t n = d.size(), L = d.tokens.size(1);
  if (n == 0) fail_data_file(file, "no rows");
  if (L < 1 || L > max_len)
    fail_data_file(
        file,
        fmt::format("rows have {} tokens; accepted: 1..{} (the model's task.seq_len)", L, max_len));
  const auto tokens = d.tokens.contiguous();
  const int64_t* t = tokens.data_ptr<int64_t>();
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < L; ++i) {
      const int64_t id = t[r * L + i];
      if (id < 0 || id >= vocab_size)
        fail_data_file(file,
                       fmt::format("row {}, position {}: token id {} is outside the vocabulary; "
                                   "accepted: 0..{} (task.vocab_size = {}, 0 is the pad)",
                                   r, i, id, vocab_size - 1, vocab_size));
    }
    const int64_t length = d.lengths[r].item<int64_t>();
    if (length < 1 || length > L)
      fail_data_file(file, fmt::format("row {}: length {}; accepted: 1..{} (the row's token count)",
                                       r, length, L));
    if (d.labels.defined()) {
      const int64_t label = d.labels[r].item<int64_t>();
      if (label < 0 || label >= num_classes)
        fail_data_file(file, fmt::format("row {}: label {}; accepted: 0..{} (the task's classes)",
                                         r, label, num_classes - 1));
    }
  }
}

}  // namespace pelab
