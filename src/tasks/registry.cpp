// The task registry: adding a task or probe is one new file plus one line here.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tasks/task.h"

namespace pelab {

const std::vector<TaskInfo>& task_list() {
  static const std::vector<TaskInfo> tasks = {
      distance_task(), count_task(), recall_task(), first_task(), order_task(), offset_task(),
  };
  return tasks;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& t : task_list()) names.push_back(t.name);
  return names;
}

const TaskInfo& task_info(const std::string& name) {
  for (const auto& t : task_list())
    if (t.name == name) return t;
  throw ConfigError(fmt::format("task.name: unknown task '{}'; accepted: {}", name,
                                fmt::join(task_names(), ", ")));
}

std::vector<int64_t> trigger_tokens(const TaskConfig& task) {
  return task_info(task.name).triggers(task);
}

int64_t num_classes(const TaskConfig& task) { return task_info(task.name).classes(task); }

Dataset generate_task(const TaskConfig& task) {
  if (task.samples < 1) {
    throw ConfigError("task.samples: invalid value " + std::to_string(task.samples) +
                      "; accepted: an integer >= 1");
  }
  if (task.seq_len < 1) {
    throw ConfigError("task.seq_len: invalid value " + std::to_string(task.seq_len) +
                      "; accepted: an integer >= 1");
  }
  return task_info(task.name).generate(task);
}

TaskConfig lengthen_task(const TaskConfig& task, int64_t seq_len) {
  return task_info(task.name).lengthen(task, seq_len);
}

void require_task_key(bool ok, const std::string& key, int64_t value, const std::string& accepted) {
  if (!ok) {
    throw ConfigError("task." + key + ": invalid value " + std::to_string(value) +
                      "; accepted: " + accepted);
  }
}

int64_t extra_length(const TaskConfig& task, int64_t seq_len) {
  if (seq_len < task.seq_len)
    throw ConfigError(fmt::format(
        "evaluation length {} is shorter than the training length task.seq_len = {}; accepted: "
        "lengths >= {}",
        seq_len, task.seq_len, task.seq_len));
  return seq_len - task.seq_len;
}

}  // namespace pelab
