// The report page: DIR/index.html (one self-contained page, no scripts, no remote assets), the
// figures it shows as SVG files beside it (drawn by gnuplot) and DIR/claims.json. Every file is
// written atomically. A figure gnuplot cannot draw is named on the page instead of failing the
// report: the numbers are in the tables either way.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "report/claims.h"
#include "report/report_data.h"

namespace pelab {

struct ReportFiles {
  std::filesystem::path index_html, claims_json;
  std::vector<std::filesystem::path> figures;  // drawn
  std::vector<std::string> figure_errors;      // "<file>: why" for each figure not drawn
};

// Writes the page, its figures and claims.json into `out_dir` (created if missing).
ReportFiles write_report(const ReportData& data, const std::vector<ClaimVerdict>& claims,
                         const std::filesystem::path& out_dir);

// Text made safe for HTML element content and attribute values.
std::string html_escaped(const std::string& text);

}  // namespace pelab
