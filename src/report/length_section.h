// The length-generalization figure (pelab eval --lengths) and the report's sections for the
// `length` and `probes` experiments (docs/REPORT.md, docs/CLAIMS.md "Length generalization").
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "analysis/length_generalization.h"
#include "report/claims.h"
#include "report/html.h"
#include "report/report_data.h"

namespace pelab {

// Accuracy against evaluation length, one line per named result (x: length).
void write_length_figure(const std::filesystem::path& svg,
                         const std::vector<std::pair<std::string, LengthResult>>& results,
                         const std::string& title);

// One run of the length or probes experiment, as the sections use it.
struct LengthRun {
  std::string setup, pe, task;
  int64_t run_id = 0, seed = 0;
  LengthResult lengths;
  bool has_ablation = false;
  double layer1_share = 0;          // worst head's share of layer 1's ablation drop
  bool layer1_single_head = false;  // the deposit rule's verdict on layer 1
  bool any_single_head = false;     // ... on any layer
  // accuracy at factor x / accuracy at 1x; NaN when not evaluated there or accuracy at 1x is 0.
  double kept(double factor) const;
};

// The verdict on "a single-head deposit in layer 1 predicts poor length generalization" over
// `runs` (the rule: docs/CLAIMS.md, "Length generalization").
struct DepositLengthVerdict {
  Verdict verdict = Verdict::kNotMeasured;
  int64_t with_deposit = 0, without_deposit = 0;  // runs that learned the task, per group
  double kept_with = 0, kept_without = 0;         // mean accuracy kept at 2x per group
  double spearman = 0;  // rank correlation of layer-1 share and accuracy kept at 2x
  std::string rule, evidence;
};
DepositLengthVerdict deposit_length_verdict(const std::vector<LengthRun>& runs);

// Spearman's rank correlation (ties get their mean rank); NaN for fewer than 3 pairs or a
// constant input.
double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y);

// Every run of `data` with a stored length result, joined with its layer-1 deposit.
std::vector<LengthRun> load_length_runs(const ReportData& data);

// The HTML of the length and probe sections (empty when `runs` is), drawing their figures into
// out_dir and noting them in files.
std::string length_sections_html(const ReportData& data, const std::vector<LengthRun>& runs,
                                 const std::filesystem::path& out_dir, ReportFiles& files);

}  // namespace pelab
