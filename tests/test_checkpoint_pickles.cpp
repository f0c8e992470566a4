// The pickle check run before LibTorch's unpickler (src/train/checkpoint_pickles.h): hand-built
// pickles in the opcodes LibTorch writes, each refused for the one number that is wrong, and the
// same pickle accepted when that number is right. Checkpoints LibTorch writes pass it in every
// resume and checkpoint test; the fuzzer's 25 GB input is in test_fuzz_regressions.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "train/checkpoint_pickles.h"

namespace pelab {
namespace {

// A pickle, written opcode by opcode (protocol 2, as LibTorch's pickler writes them).
class Pickle {
 public:
  Pickle() { bytes_ = "\x80\x02"; }
  Pickle& op(char c) { return raw(std::string(1, c)); }
  Pickle& raw(const std::string& b) {
    bytes_ += b;
    return *this;
  }
  Pickle& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_ += static_cast<char>((v >> (8 * i)) & 0xff);
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  Pickle& str(const std::string& s) { return op('X').le(s.size(), 4).raw(s); }
  Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').le(static_cast<uint64_t>(v), 1);
    return op('\x8a').le(8, 1).le(static_cast<uint64_t>(v), 8);  // LONG1, 8 bytes
  }
  Pickle& ints(const std::vector<int64_t>& values) {
    op('(');
    for (const int64_t v : values) integer(v);
    return op('t');
  }
  // torch._utils._rebuild_tensor_v2(storage('storage', FloatStorage, key, 'cpu', count),
  //                                 offset, sizes, strides, False, OrderedDict())
  Pickle& tensor(const std::string& key, int64_t count, int64_t offset,
                 const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides,
                 const std::string& storage_type = "FloatStorage") {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", storage_type).str(key).str("cpu").integer(count);
    op('t').op('Q');
    integer(offset).ints(sizes).ints(strides).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  std::string done() const { return bytes_ + "."; }
  std::string unfinished() const { return bytes_; }

 private:
  std::string bytes_;
};

// The refusal check_pickle gives, or "(accepted)".
std::string verdict(const std::string& bytes,
                    const std::map<std::string, std::size_t>& sizes = {{"data/0", 24}}) {
  try {
    check_pickle("run/checkpoint.pt", "data.pkl", bytes, "data/", sizes);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "(accepted)";
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(CheckpointPickles, ATensorInsideItsStorageIsAccepted) {
  // 2 x 3 floats, row-major, on a 6-float (24-byte) storage: the farthest element is 5.
  EXPECT_EQ(verdict(Pickle().tensor("0", 6, 0, {2, 3}, {3, 1}).done()), "(accepted)");
  // A transposed view of the same storage.
  EXPECT_EQ(verdict(Pickle().tensor("0", 6, 0, {3, 2}, {1, 3}).done()), "(accepted)");
  // An empty tensor needs no data record at all.
  EXPECT_EQ(verdict(Pickle().tensor("9", 0, 0, {0, 3}, {3, 1}).done(), {}), "(accepted)");
  // Memo entries set in order and read back.
  EXPECT_EQ(verdict(Pickle().str("a").op('q').le(0, 1).op('h').le(0, 1).op('0').op('0').done()),
            "(accepted)");
}

TEST(CheckpointPickles, AStorageClaimingMoreThanItsRecordHoldsIsRefused) {
  const std::string e =
      verdict(Pickle().tensor("0", 6, 0, {2, 3}, {3, 1}).done(), {{"data/0", 20}});
  EXPECT_TRUE(has(e, "storage 'data/0' claims 6 elements of 4 bytes, its record holds 20 bytes"))
      << e;
  EXPECT_TRUE(has(e, "checkpoint 'run/checkpoint.pt' is corrupt or not a pelab checkpoint")) << e;
  EXPECT_TRUE(has(e, "pickle record 'data.pkl' byte ")) << e;
  // 2^61 doubles: the byte count overflows 64 bits, and must still be refused.
  EXPECT_TRUE(
      has(verdict(Pickle().tensor("0", int64_t{1} << 61, 0, {1}, {1}, "DoubleStorage").done()),
          "claims 2305843009213693952 elements of 8 bytes"));
  EXPECT_TRUE(has(verdict(Pickle().tensor("7", 6, 0, {6}, {1}).done()),
                  "storage record 'data/7' is not in the archive"));
  EXPECT_TRUE(
      has(verdict(Pickle().tensor("0", -1, 0, {1}, {1}).done()), "a storage claims -1 elements"));
  EXPECT_TRUE(has(verdict(Pickle().tensor("0", 6, 0, {6}, {1}, "QInt8Storage").done()),
                  "storage type 'torch QInt8Storage' is not one LibTorch writes"));
}

TEST(CheckpointPickles, ATensorReachingPastItsStorageIsRefused) {
  // 2 x 4 with row stride 4 reaches element 7 of 6.
  std::string e = verdict(Pickle().tensor("0", 6, 0, {2, 4}, {4, 1}).done());
  EXPECT_TRUE(has(e, "a tensor reaches element 7 of a storage of 6")) << e;
  // The offset counts: offset 1 moves the last element of a 2 x 3 tensor to 6.
  e = verdict(Pickle().tensor("0", 6, 1, {2, 3}, {3, 1}).done());
  EXPECT_TRUE(has(e, "a tensor reaches element 6 of a storage of 6")) << e;
  e = verdict(Pickle().tensor("0", 6, 0, {int64_t{1} << 62, 8}, {int64_t{1} << 62, 1}).done());
  EXPECT_TRUE(has(e, "overflow 64 bits")) << e;
  e = verdict(Pickle().tensor("0", 6, 0, {2, 3}, {3}).done());
  EXPECT_TRUE(has(e, "are not (storage, offset, sizes, strides, ...) of one rank")) << e;
  e = verdict(Pickle().tensor("0", 6, 0, {2, 3}, {-3, 1}).done());
  EXPECT_TRUE(has(e, "size 2 and stride -3 in dimension 0")) << e;
}

TEST(CheckpointPickles, LengthsAndMemoIndicesBeyondTheRecordAreRefused) {
  // A string claiming 2 GB in a record of a few bytes.
  std::string e = verdict(Pickle().op('X').le(0x7fffffff, 4).raw("abc").done());
  EXPECT_TRUE(has(e, "a string claims 2147483647 bytes")) << e;
  // The fuzzer's case: LONG_BINPUT with a huge index (LibTorch resizes its memo table to it).
  e = verdict(Pickle().str("a").op('r').le(1601071457, 4).done());
  EXPECT_TRUE(has(e, "memo index 1601071457 skips ahead (the next one is 0)")) << e;
  e = verdict(Pickle().op('h').le(3, 1).done());
  EXPECT_TRUE(has(e, "memo index 3 was never set (0 are)")) << e;
  // Cut off inside an opcode's argument, and an opcode LibTorch's pickler never writes.
  e = verdict(Pickle().op('J').raw("\x01\x02").unfinished());
  EXPECT_TRUE(has(e, "needs 4 more bytes, the record ends after 2")) << e;
  e = verdict(Pickle().raw("i").done());
  EXPECT_TRUE(has(e, "opcode 0x69 is not one pelab's checkpoints hold")) << e;
  e = verdict(Pickle().op('t').done());
  EXPECT_TRUE(has(e, "needs a MARK and there is none")) << e;
  e = verdict(Pickle().op('0').done());
  EXPECT_TRUE(has(e, "pops from an empty stack")) << e;
}

}  // namespace
}  // namespace pelab
