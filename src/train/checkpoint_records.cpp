#include "train/checkpoint_records.h"

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <cctype>
#include <string_view>
#include <vector>

#include "train/checkpoint.h"
#include "train/checkpoint_pickles.h"

namespace pelab {
namespace {

constexpr std::string_view kRootRecord = "code/__torch__.py";
constexpr std::string_view kMangledPrefix = "code/__torch__/___torch_mangle_";
constexpr std::string_view kRootClass = "__torch__.Module";

bool ends_with(std::string_view s, std::string_view end) {
  return s.size() >= end.size() && s.substr(s.size() - end.size()) == end;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// "code/__torch__/___torch_mangle_7.py" -> "__torch__.___torch_mangle_7.Module"; "" for a record
// name pelab never writes.
std::string class_of_record(std::string_view record) {
  if (record == kRootRecord) return std::string(kRootClass);
  if (record.substr(0, kMangledPrefix.size()) != kMangledPrefix || record.size() < 4 ||
      record.substr(record.size() - 3) != ".py")
    return "";
  const std::string_view number =
      record.substr(kMangledPrefix.size(), record.size() - 3 - kMangledPrefix.size());
  if (!all_digits(number)) return "";
  return fmt::format("__torch__.___torch_mangle_{}.Module", number);
}

// One class record's text, read line by line; every refusal names the record and the line.
class RecordParser {
 public:
  RecordParser(const std::filesystem::path& file, std::string record)
      : file_(file), record_(std::move(record)) {}

  // The classes this record's annotations refer to.
  std::vector<std::string> parse(std::string_view text) {
    size_t line_number = 0;
    for (size_t begin = 0; begin < text.size();) {
      size_t end = text.find('\n', begin);
      if (end == std::string_view::npos) end = text.size();
      line_ = text.substr(begin, end - begin);
      ++line_number;
      line_number_ = line_number;
      if (line_number == 1) {
        if (line_ != "class Module(Module):")
          refuse("the first line must be 'class Module(Module):'");
      } else if (!line_.empty()) {
        member(line_);
      }
      begin = end + 1;
    }
    if (line_number == 0) refuse("the record is empty");
    return references_;
  }

 private:
  [[noreturn]] void refuse(const std::string& why) const {
    throw CheckpointError(fmt::format(
        "checkpoint '{}' is corrupt or not a pelab checkpoint: its type record '{}' line {} "
        "('{}'): {}",
        file_.string(), record_, line_number_, std::string(line_.substr(0, 80)), why));
  }

  static bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
  }

  // `  NAME : TYPE`, `  __parameters__ = [...]`, `  __buffers__ = [...]`,
  // `  __annotations__ = []` or `  __annotations__["NAME"] = TYPE`.
  void member(std::string_view line) {
    if (!starts_with(line, "  ")) refuse("members are indented by two spaces");
    std::string_view rest = line.substr(2);
    for (const std::string_view list : {"__parameters__ = ", "__buffers__ = "})
      if (starts_with(rest, list)) return string_list(rest.substr(list.size()));
    if (rest == "__annotations__ = []") return;
    if (starts_with(rest, "__annotations__[\"")) {
      rest.remove_prefix(std::string_view("__annotations__[\"").size());
      const size_t close = rest.find("\"] = ");
      if (close == std::string_view::npos || rest.substr(0, close).find('"') != rest.npos)
        refuse("expected __annotations__[\"NAME\"] = TYPE");
      rest.remove_prefix(close + std::string_view("\"] = ").size());
      whole_type(rest);
      return;
    }
    size_t name_end = 0;
    while (name_end < rest.size() &&
           (std::isalnum(static_cast<unsigned char>(rest[name_end])) || rest[name_end] == '_'))
      ++name_end;
    if (name_end == 0 || rest.substr(name_end, 3) != " : ")
      refuse(
          "expected NAME : TYPE, __parameters__, __buffers__ or __annotations__ (the members "
          "LibTorch's archives hold)");
    whole_type(rest.substr(name_end + 3));
  }

  // ["a", "b", ] as LibTorch writes it.
  void string_list(std::string_view s) {
    if (s.empty() || s.front() != '[' || s.back() != ']') refuse("expected a list [\"name\", ]");
    s = s.substr(1, s.size() - 2);
    while (!s.empty()) {
      if (s.front() == ' ') {
        s.remove_prefix(1);
        continue;
      }
      if (s.front() != '"') refuse("expected a quoted name in the list");
      const size_t close = s.find('"', 1);
      if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ',')
        refuse("expected \"name\", in the list");
      s.remove_prefix(close + 2);
    }
  }

  void whole_type(std::string_view s) {
    type(s, 1);
    if (!s.empty()) refuse("unexpected text after the type");
  }

  // TYPE := Tensor | int | float | bool | str | __torch__.___torch_mangle_N.Module
  //       | Tuple[TYPE, ...] | List[TYPE] | Optional[TYPE] | Dict[TYPE, TYPE]
  void type(std::string_view& s, int depth) {
    if (depth > kMaxTypeDepth)
      refuse(fmt::format("types nest deeper than {} levels", kMaxTypeDepth));
    size_t end = 0;
    while (end < s.size() &&
           (std::isalnum(static_cast<unsigned char>(s[end])) || s[end] == '_' || s[end] == '.'))
      ++end;
    const std::string_view name = s.substr(0, end);
    s.remove_prefix(end);
    for (const std::string_view simple : {"Tensor", "int", "float", "bool", "str"})
      if (name == simple) return;
    if (starts_with(name, "__torch__.")) {
      constexpr std::string_view mangle = "__torch__.___torch_mangle_";
      const bool mangled = starts_with(name, mangle) && name.size() > mangle.size() + 7 &&
                           name.substr(name.size() - 7) == ".Module" &&
                           all_digits(name.substr(mangle.size(), name.size() - 7 - mangle.size()));
      if (!mangled && name != kRootClass) refuse("expected __torch__.___torch_mangle_N.Module");
      references_.emplace_back(name);
      return;
    }
    int arguments_min = 1, arguments_max = 1;
    if (name == "Tuple") {
      arguments_max = 64;
    } else if (name == "Dict") {
      arguments_min = arguments_max = 2;
    } else if (name != "List" && name != "Optional") {
      refuse(fmt::format(
          "type '{}' is not one pelab's checkpoints hold (Tensor, int, float, bool, str, "
          "Tuple, List, Optional, Dict, __torch__.___torch_mangle_N.Module)",
          std::string(name.substr(0, 40))));
    }
    if (s.empty() || s.front() != '[') refuse(fmt::format("expected '[' after {}", name));
    s.remove_prefix(1);
    for (int argument = 1;; ++argument) {
      if (argument > arguments_max) refuse(fmt::format("too many arguments for {}", name));
      type(s, depth + 1);
      if (!s.empty() && s.front() == ',') {
        s.remove_prefix(s.size() > 1 && s[1] == ' ' ? 2 : 1);
        continue;
      }
      if (s.empty() || s.front() != ']') refuse(fmt::format("expected ']' closing {}", name));
      s.remove_prefix(1);
      if (argument < arguments_min) refuse(fmt::format("too few arguments for {}", name));
      return;
    }
  }

  const std::filesystem::path& file_;
  std::string record_;
  std::string_view line_;
  size_t line_number_ = 0;
  std::vector<std::string> references_;
};

// Depth-first: a class reached again while still on the path closes a cycle.
void check_acyclic(const std::filesystem::path& file,
                   const std::map<std::string, std::vector<std::string>>& references,
                   const std::string& name, std::map<std::string, int>& state) {
  state[name] = 1;  // on the path
  for (const auto& target : references.at(name)) {
    if (!references.count(target))
      throw CheckpointError(
          fmt::format("checkpoint '{}' is corrupt or not a pelab checkpoint: class {} refers to "
                      "{}, which the file does not hold",
                      file.string(), name, target));
    const int seen = state[target];
    if (seen == 1)
      throw CheckpointError(
          fmt::format("checkpoint '{}' is corrupt or not a pelab checkpoint: its classes refer to "
                      "each other in a cycle (through {})",
                      file.string(), target));
    if (seen == 0) check_acyclic(file, references, target, state);
  }
  state[name] = 2;  // done
}

}  // namespace

void check_type_records(const std::filesystem::path& file,
                        const std::map<std::string, std::string>& code_records) {
  std::map<std::string, std::vector<std::string>> references;
  for (const auto& [record, text] : code_records) {
    const std::string name = class_of_record(record);
    if (name.empty())
      throw CheckpointError(fmt::format(
          "checkpoint '{}' is corrupt or not a pelab checkpoint: unexpected code record '{}' "
          "(accepted: {} and {}N.py)",
          file.string(), record, kRootRecord, kMangledPrefix));
    references[name] = RecordParser(file, record).parse(text);
  }
  std::map<std::string, int> state;
  for (const auto& entry : references)
    if (state[entry.first] == 0) check_acyclic(file, references, entry.first, state);
}

void check_checkpoint_records(const std::filesystem::path& file) {
  std::map<std::string, std::string> code_records;
  std::map<std::string, std::string> pickle_records;
  std::map<std::string, std::size_t> record_sizes;
  try {
    caffe2::serialize::PyTorchStreamReader reader(file.string());
    for (const auto& record : reader.getAllRecords()) {
      // Every record is read once here (the tensors' too, for their sizes): a few tens of MB
      // at the paper's shape, against LibTorch reading it all again right after.
      const auto [data, size] = reader.getRecord(record);
      record_sizes[record] = size;
      const std::string text(static_cast<const char*>(data.get()), size);
      if (ends_with(record, "pkl"))
        pickle_records[record] = text;
      else if (record.rfind("code/", 0) == 0 && ends_with(record, ".py"))
        code_records[record] = text;
    }
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw CheckpointError(fmt::format("checkpoint '{}' is corrupt or not a pelab checkpoint: {}",
                                      file.string(), what.substr(0, what.find('\n'))));
  }
  check_type_records(file, code_records);
  for (const auto& [record, bytes] : pickle_records) {
    const std::string storages = record == "data.pkl"        ? "data/"
                                 : record == "constants.pkl" ? "constants/"
                                                             : "";
    check_pickle(file, record, bytes, storages, record_sizes);
  }
}

}  // namespace pelab
