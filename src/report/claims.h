// The study's claims (PAPER.md section 6), split into checkable statements, each with the
// evidence it reads from a ReportData, a written rule, and a verdict per setup. docs/CLAIMS.md
// holds the same rules in prose; the page prints each rule next to its verdict.
//
// Rules are deliberately mechanical so anyone can recompute a verdict from claims.json:
// - "A clearly beats B" when mean_A - mean_B > max(kMinMargin, std_A + std_B): a difference counts
//   only when it exceeds the seeds' spread (and 0.02 accuracy with a single seed).
// - Statements about every seed (deposits, removals) hold when every seed shows the pattern, do
//   not hold when none does, and are mixed otherwise.
// - A claim made of several parts holds when every part holds, does not hold when every part
//   fails, is mixed otherwise, and is not measured when a part lacks its data.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/report_data.h"

namespace pelab {

enum class Verdict { kHolds, kDoesNotHold, kMixed, kNotMeasured };
std::string verdict_name(Verdict verdict);  // "holds", "does not hold", "mixed", "not measured"

struct ClaimVerdict {
  std::string id;     // stable name, e.g. "task1_rope_fastest_best"
  std::string claim;  // the checkable statement
  std::string setup;
  Verdict verdict = Verdict::kNotMeasured;
  std::string rule;
  nlohmann::json evidence = nlohmann::json::object();  // the numbers the rule read
  nlohmann::json paper;  // the paper's numbers for the claim (report/paper_numbers.h)
  std::string scale;     // the scale whose runs decided the verdict
};

// Thresholds the rules use (docs/CLAIMS.md explains each choice).
inline constexpr double kMinMargin = 0.02;         // smallest accuracy difference that counts
inline constexpr double kChanceBand = 0.05;        // "at chance": within this of 1 / labels
inline constexpr double kFailShare = 0.5;          // "fails": below this share of the best PE
inline constexpr double kHalfShare = 0.75;         // "about half": at most this share of full
inline constexpr double kCloseShare = 0.1;         // "close to": within this share of the other
inline constexpr double kHeadMattersShare = 0.05;  // a head "matters": drop >= this x baseline
inline constexpr double kSpectralTolerance = 1e-9;

// Comparison of two seed distributions by the margin rule above.
enum class Order { kAbove, kBelow, kTied };
double margin(const SeedStats& a, const SeedStats& b);
Order compare(const SeedStats& a, const SeedStats& b);
// Seeds (or layers) showing a pattern: all -> holds, none -> does not hold, else mixed;
// total 0 -> not measured.
Verdict by_share(int64_t showing, int64_t total);
// Parts of one claim: all hold -> holds, all fail -> does not hold, any not measured -> not
// measured, otherwise mixed.
Verdict combine(const std::vector<Verdict>& parts);
nlohmann::json stats_json(const SeedStats& stats);

// One function per claim, evaluated for one setup.
ClaimVerdict claim_task1_rope_fastest_best(const ReportData& data, const std::string& setup);
ClaimVerdict claim_task1_absolute_follow(const ReportData& data, const std::string& setup);
ClaimVerdict claim_task1_bias_pes_fail(const ReportData& data, const std::string& setup);
ClaimVerdict claim_task1_nope_at_chance(const ReportData& data, const std::string& setup);
ClaimVerdict claim_task2_every_pe_counts(const ReportData& data, const std::string& setup);
ClaimVerdict claim_task2_nope_relative_best_alibi_worst(const ReportData& data,
                                                        const std::string& setup);
ClaimVerdict claim_task2_rope_not_best(const ReportData& data, const std::string& setup);
ClaimVerdict claim_deposit_rope_task1_layer1(const ReportData& data, const std::string& setup);
ClaimVerdict claim_no_deposit_nope_task1_rope_task2(const ReportData& data,
                                                    const std::string& setup);
ClaimVerdict claim_absolute_broad_dependence(const ReportData& data, const std::string& setup);
ClaimVerdict claim_rope_abs_deposit_layer2(const ReportData& data, const std::string& setup);
ClaimVerdict claim_rope_heads(const ReportData& data, const std::string& setup);
ClaimVerdict claim_mla(const ReportData& data, const std::string& setup);
ClaimVerdict claim_removal_absolute(const ReportData& data, const std::string& setup);
ClaimVerdict claim_removal_rope_abs(const ReportData& data, const std::string& setup);
ClaimVerdict claim_spectral_contraction(const ReportData& data, const std::string& setup);

// Every claim for every setup of the data, setups in data order.
std::vector<ClaimVerdict> evaluate_claims(const ReportData& data);
// [{"id", "claim", "setup", "scale", "verdict", "rule", "evidence", "paper"}], pretty-printed.
std::string claims_to_json(const std::vector<ClaimVerdict>& claims);

}  // namespace pelab
