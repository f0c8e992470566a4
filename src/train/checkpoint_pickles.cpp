#include "train/checkpoint_pickles.h"

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "train/checkpoint.h"

namespace pelab {
namespace {

// The unpickler's stack, modelled only as far as the checks need: numbers, strings, globals,
// tuples (whose items the storage and tensor checks read) and storages (their element count).
struct Value;
using ValuePtr = std::shared_ptr<const Value>;
struct Value {
  enum class Kind { kOther, kInt, kStr, kGlobal, kTuple, kStorage };
  Kind kind = Kind::kOther;
  int64_t number = 0;           // kInt: the value; kStorage: its element count
  std::string text;             // kStr: the string; kGlobal: "module name"
  std::vector<ValuePtr> items;  // kTuple: the items (shared, so memo reads copy nothing)
};

ValuePtr make(Value::Kind kind, int64_t number = 0, std::string text = {}) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  v->number = number;
  v->text = std::move(text);
  return v;
}

// Bytes per element of the storage classes LibTorch pickles (torch.FloatStorage, ...).
int64_t storage_element_size(const std::string& global) {
  static const std::map<std::string, int64_t> sizes = {
      {"torch FloatStorage", 4},        {"torch DoubleStorage", 8},
      {"torch HalfStorage", 2},         {"torch BFloat16Storage", 2},
      {"torch LongStorage", 8},         {"torch IntStorage", 4},
      {"torch ShortStorage", 2},        {"torch CharStorage", 1},
      {"torch ByteStorage", 1},         {"torch BoolStorage", 1},
      {"torch ComplexFloatStorage", 8}, {"torch ComplexDoubleStorage", 16}};
  const auto it = sizes.find(global);
  return it == sizes.end() ? 0 : it->second;
}

class PickleWalker {
 public:
  PickleWalker(const std::filesystem::path& file, const std::string& record, std::string_view bytes,
               const std::string& storage_prefix,
               const std::map<std::string, std::size_t>& record_sizes)
      : file_(file),
        record_(record),
        bytes_(bytes),
        storage_prefix_(storage_prefix),
        record_sizes_(record_sizes) {}

  void walk() {
    while (true) {
      op_at_ = pos_;
      const auto op = static_cast<unsigned char>(take(1)[0]);
      if (op == '.') return;  // STOP
      step(op);
    }
  }

 private:
  [[noreturn]] void refuse(const std::string& problem) const {
    throw CheckpointError(fmt::format(
        "checkpoint '{}' is corrupt or not a pelab checkpoint: pickle record '{}' byte {}: {}",
        file_.string(), record_, op_at_, problem));
  }

  std::string_view take(std::size_t n) {
    if (n > bytes_.size() - pos_)
      refuse(fmt::format("needs {} more bytes, the record ends after {}", n, bytes_.size() - pos_));
    const std::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint64_t take_unsigned(std::size_t n) {
    const std::string_view b = take(n);
    uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
      v |= static_cast<uint64_t>(static_cast<unsigned char>(b[i])) << (8 * i);
    return v;
  }
  std::string take_line() {
    const std::size_t end = bytes_.find('\n', pos_);
    if (end == std::string_view::npos) refuse("a GLOBAL name runs past the end of the record");
    std::string line(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return line;
  }
  // A length-prefixed string or bytes: the length may not reach past the record's end.
  std::string take_counted(std::size_t length_bytes) {
    const uint64_t n = take_unsigned(length_bytes);
    if (n > bytes_.size() - pos_)
      refuse(
          fmt::format("a string claims {} bytes, the record has {} left", n, bytes_.size() - pos_));
    return std::string(take(static_cast<std::size_t>(n)));
  }

  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  ValuePtr pop() {
    if (stack_.size() <= floor()) refuse("an opcode pops from an empty stack");
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  const ValuePtr& top() const {
    if (stack_.size() <= floor()) refuse("an opcode reads an empty stack");
    return stack_.back();
  }
  std::vector<ValuePtr> pop_to_mark() {
    if (marks_.empty()) refuse("an opcode needs a MARK and there is none");
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()),
                                stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  void push_tuple(std::vector<ValuePtr> items) {
    auto t = std::make_shared<Value>();
    t->kind = Value::Kind::kTuple;
    t->items = std::move(items);
    stack_.push_back(std::move(t));
  }
  void memo_put(uint64_t id) {
    // The pickler numbers memo entries 0, 1, 2, ...: an index past the next one is a damaged
    // file, and LibTorch would size its memo table to it.
    if (id > memo_.size())
      refuse(fmt::format("memo index {} skips ahead (the next one is {})", id, memo_.size()));
    if (id == memo_.size())
      memo_.push_back(top());
    else
      memo_[id] = top();
  }
  void memo_get(uint64_t id) {
    if (id >= memo_.size())
      refuse(fmt::format("memo index {} was never set ({} are)", id, memo_.size()));
    stack_.push_back(memo_[id]);
  }

  void step(unsigned char op) {
    using K = Value::Kind;
    switch (op) {
      case 0x80:  // PROTO
        take(1);
        break;
      case 0x95:  // FRAME
        take(8);
        break;
      case '(':  // MARK
        marks_.push_back(stack_.size());
        break;
      case ')':  // EMPTY_TUPLE
        push_tuple({});
        break;
      case 't':  // TUPLE
        push_tuple(pop_to_mark());
        break;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<ValuePtr> items(op - 0x84);
        for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop();
        push_tuple(std::move(items));
        break;
      }
      case ']':
      case '}':
      case 'N':
      case 0x88:
      case 0x89:  // EMPTY_LIST/DICT, NONE, NEWTRUE/FALSE
        stack_.push_back(make(K::kOther));
        break;
      case 'l':  // LIST, DICT
      case 'd':
        pop_to_mark();
        stack_.push_back(make(K::kOther));
        break;
      case 'a':  // APPEND
        pop();
        top();
        break;
      case 'e':  // APPENDS, SETITEMS
      case 'u':
        pop_to_mark();
        top();
        break;
      case 's':  // SETITEM
        pop();
        pop();
        top();
        break;
      case 'b':  // BUILD
        pop();
        top();
        break;
      case '0':  // POP
        pop();
        break;
      case '1':  // POP_MARK
        pop_to_mark();
        break;
      case '2':  // DUP
        stack_.push_back(top());
        break;
      case 'K':  // BININT1
        stack_.push_back(make(K::kInt, static_cast<int64_t>(take_unsigned(1))));
        break;
      case 'M':  // BININT2
        stack_.push_back(make(K::kInt, static_cast<int64_t>(take_unsigned(2))));
        break;
      case 'J':  // BININT: signed 32-bit
        stack_.push_back(
            make(K::kInt, static_cast<int32_t>(static_cast<uint32_t>(take_unsigned(4)))));
        break;
      case 0x8a: {  // LONG1: n bytes, two's complement
        const auto n = static_cast<std::size_t>(take_unsigned(1));
        if (n > 8) {
          take(n);
          stack_.push_back(make(K::kOther));
          break;
        }
        uint64_t v = n == 0 ? 0 : take_unsigned(n);
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        stack_.push_back(make(K::kInt, static_cast<int64_t>(v)));
        break;
      }
      case 'G':  // BINFLOAT
        take(8);
        stack_.push_back(make(K::kOther));
        break;
      case 'X':  // BINUNICODE
        stack_.push_back(make(K::kStr, 0, take_counted(4)));
        break;
      case 0x8c:  // SHORT_BINUNICODE
        stack_.push_back(make(K::kStr, 0, take_counted(1)));
        break;
      case 'B':  // BINBYTES/STRING
      case 'T':
        take_counted(4);
        stack_.push_back(make(K::kOther));
        break;
      case 'C':
      case 'U':
        take_counted(1);
        stack_.push_back(make(K::kOther));
        break;     // SHORT_ forms
      case 'c': {  // GLOBAL
        std::string module = take_line();
        stack_.push_back(make(K::kGlobal, 0, module + " " + take_line()));
        break;
      }
      case 'R': {  // REDUCE
        const ValuePtr args = pop();
        const ValuePtr callable = pop();
        if (callable->kind == K::kGlobal && callable->text == "torch._utils _rebuild_tensor_v2")
          check_tensor(*args);
        stack_.push_back(make(K::kOther));
        break;
      }
      case 0x81:  // NEWOBJ
        pop();
        pop();
        stack_.push_back(make(K::kOther));
        break;
      case 'Q':  // BINPERSID
        stack_.push_back(storage(*pop()));
        break;
      case 'q':  // BINPUT
        memo_put(take_unsigned(1));
        break;
      case 'r':  // LONG_BINPUT
        memo_put(take_unsigned(4));
        break;
      case 0x94:  // MEMOIZE
        memo_put(memo_.size());
        break;
      case 'h':  // BINGET
        memo_get(take_unsigned(1));
        break;
      case 'j':  // LONG_BINGET
        memo_get(take_unsigned(4));
        break;
      default:
        refuse(fmt::format("opcode 0x{:02x} is not one pelab's checkpoints hold", op));
    }
  }

  // A persistent id: ('storage', torch.<Type>Storage, key, location, element count). The data
  // record must hold what the count claims, since LibTorch sizes the storage from the count.
  ValuePtr storage(const Value& pid) {
    using K = Value::Kind;
    const auto& it = pid.items;
    if (pid.kind != K::kTuple || it.size() != 5 || it[0]->kind != K::kStr ||
        it[0]->text != "storage" || it[1]->kind != K::kGlobal || it[2]->kind != K::kStr ||
        it[4]->kind != K::kInt)
      refuse("a persistent id is not ('storage', type, key, location, count)");
    const int64_t element = storage_element_size(it[1]->text);
    if (element == 0)
      refuse(fmt::format("storage type '{}' is not one LibTorch writes", it[1]->text));
    const int64_t count = it[4]->number;
    if (count < 0) refuse(fmt::format("a storage claims {} elements", count));
    if (count > 0) {
      const std::string name = storage_prefix_ + it[2]->text;
      const auto found = record_sizes_.find(name);
      if (found == record_sizes_.end())
        refuse(fmt::format("storage record '{}' is not in the archive", name));
      if (static_cast<uint64_t>(count) > found->second / static_cast<uint64_t>(element))
        refuse(fmt::format("storage '{}' claims {} elements of {} bytes, its record holds {} bytes",
                           name, count, element, found->second));
    }
    return make(K::kStorage, count);
  }

  // torch._utils._rebuild_tensor_v2(storage, offset, sizes, strides, ...): LibTorch sets the
  // sizes and strides on the storage unchecked, so the farthest element must lie inside it.
  void check_tensor(const Value& args) {
    using K = Value::Kind;
    const auto& it = args.items;
    auto ints = [](const Value& v) {
      if (v.kind != K::kTuple) return false;
      for (const auto& x : v.items)
        if (x->kind != K::kInt) return false;
      return true;
    };
    if (args.kind != K::kTuple || it.size() < 4 || it[0]->kind != K::kStorage ||
        it[1]->kind != K::kInt || !ints(*it[2]) || !ints(*it[3]) ||
        it[2]->items.size() != it[3]->items.size())
      refuse("a tensor's arguments are not (storage, offset, sizes, strides, ...) of one rank");
    const int64_t offset = it[1]->number;
    if (offset < 0) refuse(fmt::format("a tensor has storage offset {}", offset));
    unsigned __int128 last = static_cast<unsigned __int128>(offset);
    bool empty = false;
    for (std::size_t d = 0; d < it[2]->items.size(); ++d) {
      const int64_t size = it[2]->items[d]->number;
      const int64_t stride = it[3]->items[d]->number;
      if (size < 0 || stride < 0)
        refuse(fmt::format("a tensor has size {} and stride {} in dimension {}", size, stride, d));
      if (size == 0)
        empty = true;
      else
        last += static_cast<unsigned __int128>(size - 1) * static_cast<uint64_t>(stride);
      if (last >> 64) refuse("a tensor's sizes and strides overflow 64 bits");
    }
    if (!empty && last >= static_cast<unsigned __int128>(it[0]->number))
      refuse(fmt::format("a tensor reaches element {} of a storage of {}",
                         static_cast<uint64_t>(last), it[0]->number));
  }

  const std::filesystem::path& file_;
  const std::string& record_;
  std::string_view bytes_;
  const std::string& storage_prefix_;
  const std::map<std::string, std::size_t>& record_sizes_;
  std::size_t pos_ = 0;
  std::size_t op_at_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<std::size_t> marks_;
  std::vector<ValuePtr> memo_;
};

}  // namespace

void check_pickle(const std::filesystem::path& file, const std::string& record,
                  std::string_view bytes, const std::string& storage_prefix,
                  const std::map<std::string, std::size_t>& record_sizes) {
  PickleWalker(file, record, bytes, storage_prefix, record_sizes).walk();
}

}  // namespace pelab
