#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>

#include "cli/commands.h"
#include "report/claims.h"
#include "report/html.h"
#include "report/report_data.h"
#include "store/store.h"
#include "sweep/sweep_spec.h"

namespace pelab::cli {

void write_scale_report(const Store& store, const std::string& scale, const std::string& out) {
  const ReportData data = load_report_data(store, scale);
  const auto claims = evaluate_claims(data);
  const ReportFiles files = write_report(data, claims, out);
  for (const auto& warning : data.warnings) fmt::print(stderr, "pelab report: {}\n", warning);
  for (const auto& error : files.figure_errors)
    fmt::print(stderr, "pelab report: figure not drawn: {}\n", error);
  std::map<std::string, int> counts;
  for (const auto& c : claims) ++counts[verdict_name(c.verdict)];
  std::vector<std::string> tally;
  for (const auto& [verdict, n] : counts) tally.push_back(fmt::format("{} {}", n, verdict));
  fmt::print("report: {} ({} figures)\nclaims: {} ({} verdicts: {})\n", files.index_html.string(),
             files.figures.size(), files.claims_json.string(), claims.size(),
             fmt::join(tally, ", "));
  for (const auto& c : claims)
    fmt::print("  [{:<13}] {:<9} {}\n", verdict_name(c.verdict), c.setup, c.claim);
}

void add_report(CLI::App& app) {
  struct Args {
    std::string store_path = kDefaultStorePath, scale = "small", out_dir;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "report",
      "Write the study's report from the experiment store: DIR/index.html (tables, SVG figures, "
      "claim-by-claim verdicts) and DIR/claims.json");
  cmd->add_option("--store", args->store_path, "experiment store")->capture_default_str();
  cmd->add_option("--scale", args->scale, "which reproduction to report (its sweeps' prefix)")
      ->capture_default_str();
  cmd->add_option("--out", args->out_dir, "output folder (default: reports/<scale>)");
  cmd->callback([args] {
    const Store store(args->store_path, Store::Mode::kExisting);
    write_scale_report(store, args->scale,
                       args->out_dir.empty() ? "reports/" + args->scale : args->out_dir);
  });
}

}  // namespace pelab::cli
