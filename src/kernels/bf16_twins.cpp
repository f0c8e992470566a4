#include "kernels/bf16_twins.h"

#include <algorithm>
#include <mutex>
#include <vector>

namespace pelab {
namespace {

// A twin is found by the float32 tensor's storage (held weakly, so remembering does not keep it
// alive) and by what says its values are the same: data pointer, shape, strides and version.
struct Twin {
  c10::weak_intrusive_ptr<c10::StorageImpl> storage;
  const void* data;
  std::vector<int64_t> sizes, strides;
  int64_t version;
  torch::Tensor bf16;

  bool is_of(const torch::Tensor& x) const {
    return !storage.expired() && data == x.data_ptr() && version == x._version() &&
           x.sizes().equals(sizes) && x.strides().equals(strides);
  }
};

// At most this many twins; the oldest go first. A model's forward remembers a few per layer.
constexpr size_t kMostTwins = 64;

std::mutex twins_mutex;
std::vector<Twin>& twins() {
  static std::vector<Twin> all;
  return all;
}

bool can_have_twin(const torch::Tensor& x) {
  return x.defined() && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
         x.has_storage() && x.numel() > 0;
}

// Drops the twins whose tensors have died (their bf16 copies go with them).
void forget_dead_twins(std::vector<Twin>& all) {
  all.erase(std::remove_if(all.begin(), all.end(),
                           [](const Twin& t) { return t.storage.expired(); }),
            all.end());
}

}  // namespace

torch::Tensor find_bf16_twin(const torch::Tensor& x) {
  if (!can_have_twin(x)) return {};
  const std::lock_guard<std::mutex> lock(twins_mutex);
  auto& all = twins();
  forget_dead_twins(all);
  for (const auto& twin : all)
    if (twin.is_of(x)) return twin.bf16;
  return {};
}

void remember_bf16_twin(const torch::Tensor& x, const torch::Tensor& twin) {
  if (!can_have_twin(x)) return;
  TORCH_CHECK(twin.scalar_type() == torch::kBFloat16 && twin.numel() == x.numel(),
              "a bf16 twin must hold x's values as bf16");
  const std::lock_guard<std::mutex> lock(twins_mutex);
  auto& all = twins();
  forget_dead_twins(all);
  all.erase(std::remove_if(all.begin(), all.end(), [&](const Twin& t) { return t.is_of(x); }),
            all.end());
  if (all.size() >= kMostTwins) all.erase(all.begin());
  all.push_back({x.storage().getWeakStorageImpl(), x.data_ptr(), x.sizes().vec(),
                 x.strides().vec(), x._version(), twin});
}

int64_t remembered_bf16_twins() {
  const std::lock_guard<std::mutex> lock(twins_mutex);
  auto& all = twins();
  forget_dead_twins(all);
  return static_cast<int64_t>(all.size());
}

}  // namespace pelab
