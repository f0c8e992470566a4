// Helpers shared by the claim files (claims.cpp, claims_mechanisms.cpp); not part of the API.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "report/claims.h"

namespace pelab::claims_detail {

ClaimVerdict start(const char* id, const char* claim, const std::string& setup, const char* rule);
// The verdict "not measured", with what was missing in the evidence.
ClaimVerdict not_measured(ClaimVerdict v, const std::string& missing);
// The cells of `pes` on `task` that have at least one finished run (rotary heads: all).
std::map<std::string, const Cell*> measured_cells(const ReportData& data, const std::string& setup,
                                                  const std::string& task,
                                                  const std::vector<std::string>& pes);
std::string missing_list(const std::map<std::string, const Cell*>& have,
                         const std::vector<std::string>& wanted, const std::string& task);
nlohmann::json accuracies_json(const std::map<std::string, const Cell*>& cells);
const Cell* best_of(const std::map<std::string, const Cell*>& cells);  // by mean final accuracy

}  // namespace pelab::claims_detail
