#include "report/zoo_section.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report/claims.h"
#include "report/report_figures.h"
#include "reproduce/zoo.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

std::string mean_std(const SeedStats& s) {
  if (!s.measured()) return "<span class=\"missing\">not measured</span>";
  return fmt::format("{:.3f} &plusmn; {:.3f} <small>(n={})</small>", s.mean, s.std, s.n);
}

// Median kappa(coupled) / kappa(A) and how many checks contract and hold their bound.
std::string contraction_text(const SpectrumData* s) {
  if (!s) return "<span class=\"missing\">not measured</span>";
  if (s->checks.empty())
    return s->kernels.empty() ? "no fixed kernel" : "<span class=\"missing\">no checks</span>";
  std::vector<double> ratios;
  int64_t holding = 0;
  for (const auto& c : s->checks) {
    holding += c.bound_holds;
    if (c.contraction_ratio) ratios.push_back(*c.contraction_ratio);
  }
  std::sort(ratios.begin(), ratios.end());
  const auto contract = std::count_if(ratios.begin(), ratios.end(),
                                      [](double r) { return r <= 1 + kSpectralTolerance; });
  return fmt::format("{} {}: median ratio {}, contracts {}/{}, bound holds {}/{}",
                     html_escaped(s->checks.front().kind), s->checks.size(),
                     ratios.empty() ? "&ndash;" : fmt::format("{:.3g}", ratios[ratios.size() / 2]),
                     contract, ratios.size(), holding, s->checks.size());
}

// Mean over a run study's heads of the trained logits' log10 condition number.
std::string logit_condition_text(const std::vector<const SpectrumData*>& studies) {
  double sum = 0;
  int64_t n = 0;
  for (const auto* s : studies)
    for (const auto& l : s->logit_spectra) {
      sum += l.mean_log10_condition;
      ++n;
    }
  return n == 0 ? "<span class=\"missing\">not measured</span>"
                : fmt::format("{:.2f} <small>({} heads)</small>", sum / double(n), n);
}

// "seed s: layer l head h (share x)" for every single-head deposit of the cell, or "none".
std::string deposit_text(const Cell& c, int64_t& seeds_with_deposit) {
  std::string out;
  seeds_with_deposit = 0;
  for (const auto& a : c.ablations) {
    bool any = false;
    for (const auto& d : a.deposits)
      if (d.single_head_deposit) {
        out += fmt::format("{}seed {}: layer {} head {} (drop {:.3f}, share {:.2f})",
                           out.empty() ? "" : "<br>", a.seed, d.layer + 1, d.worst_head, d.drop,
                           d.share);
        any = true;
      }
    seeds_with_deposit += any;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

std::string zoo_section_html(const ReportData& data, const fs::path& dir, ReportFiles& files) {
  bool any_zoo = false;
  for (const auto& c : data.cells)
    any_zoo |=
        c.pe != "rope" && std::find(zoo_pes().begin(), zoo_pes().end(), c.pe) != zoo_pes().end();
  if (!any_zoo) return "";
  std::string html =
      "<h2 id=\"zoo\">PE zoo</h2>\n<p>Encodings proposed since the study (docs/PE.md: xpos, "
      "prope, kerple, fire, cope) beside RoPE, trained as the study's runs and analysed the "
      "same way. Final test accuracy, mean &plusmn; std over seeds.</p>\n<table><tr><th>PE"
      "</th><th>task</th>";
  for (const auto& setup : data.setups) html += "<th>" + html_escaped(setup) + "</th>";
  html += "</tr>\n";
  for (const auto& pe : zoo_pes())
    for (const auto& task : {kTask1, kTask2}) {
      std::string row = fmt::format("<tr><td>{}</td><td>{}</td>", pe, task);
      bool any = false;
      for (const auto& setup : data.setups) {
        const Cell* c = data.find(setup, pe, task);
        any |= c != nullptr;
        row += c ? "<td class=num>" + mean_std(c->final_accuracy) + "</td>"
                 : "<td class=\"missing\">not measured</td>";
      }
      if (any) html += row + "</tr>\n";
    }
  html += "</table>\n";

  html +=
      "<h3>Task 1 deposits and spectra beside RoPE's</h3>\n<p>Single-head deposits by the "
      "ablation section's rule; kernel checks on random PSD Gram matrices (Schur for the "
      "rotary PEs, Weyl for the additive ones: a ratio below 1 contracts); trained logits' mean "
      "log10 condition number over the first seed's heads.</p>\n<table><tr><th>setup</th>"
      "<th>PE</th><th>seeds with a single-head deposit</th><th>deposits</th><th>kernel checks"
      "</th><th>trained logits log10 cond</th></tr>\n";
  for (const auto& setup : data.setups)
    for (const auto& pe : zoo_pes()) {
      const Cell* c = data.find(setup, pe, kTask1);
      if (!c) continue;
      int64_t seeds_with_deposit = 0;
      const std::string deposits = deposit_text(*c, seeds_with_deposit);
      html += fmt::format(
          "<tr><td>{}</td><td>{}</td><td class=num>{}/{}</td><td>{}</td><td>{}</td><td "
          "class=num>{}</td></tr>\n",
          html_escaped(setup), pe, seeds_with_deposit, c->ablations.size(), deposits,
          contraction_text(data.kernel_spectrum(setup, pe)),
          logit_condition_text(data.run_spectra(setup, pe)));
    }
  html += "</table>\n";

  for (const auto& setup : data.setups)
    for (const auto& pe : zoo_pes()) {
      const Cell* c = data.find(setup, pe, kTask1);
      if (!c || c->ablations.empty()) continue;
      const auto& first = c->ablations.front();
      const std::string file = fmt::format("zoo-ablation-{}-{}.svg", setup, pe);
      const std::string caption =
          fmt::format("{} on {}, seed {}, {} setup: accuracy with one head removed", pe, kTask1,
                      first.seed, setup);
      try {
        write_ablation_svg(dir / file, *c, first);
        files.figures.push_back(dir / file);
        html += fmt::format(
            "<figure><img src=\"{0}\" alt=\"{1}\"><figcaption>{1}</figcaption></figure>\n",
            html_escaped(file), html_escaped(caption));
      } catch (const std::exception& e) {
        files.figure_errors.push_back(file + ": " + e.what());
        html += fmt::format("<p class=\"missing\">Figure {} not drawn: {}</p>\n",
                            html_escaped(file), html_escaped(e.what()));
      }
    }
  return html;
}

}  // namespace pelab
