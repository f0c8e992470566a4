// Length-only Bayes accuracy of a task configuration: the best accuracy any classifier that sees
// nothing but the sequence length can reach,
//   A_len = sum over lengths l of  max over labels y of  P(length = l, label = y),
// computed exactly from the generator's distribution (no sampling). It is the floor a model
// without position information (NoPE) should be judged against: with pooling over pads (the
// authors' code) the pad count gives the length away, and with pooling over valid tokens the
// share of trigger tokens still does.
//   Task 1 (distance): left ~ U{left_min..left_max}, between ~ U{..}, right ~ U{..}, independent;
//     length = left + between + right + 2, label = between + 1; the fillers do not matter, so
//     both setups' generators (fillers may be triggers or not) give the same number.
//   Task 2 (count): every sequence has count_length tokens, so the length says nothing and
//     A_len = max_k P(k) = 1 / (count_max - count_min + 1).
#pragma once

#include "config/config.h"

namespace pelab {

// Throws ConfigError for a task whose length distribution is not known (an unknown task name).
double length_only_bayes_accuracy(const TaskConfig& task);

}  // namespace pelab
