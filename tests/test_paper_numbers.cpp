// The paper column: the paper's numbers (report/paper_numbers.h) against PAPER.md section 7 as
// typed again here, on every claim in claims.json, and on the rendered page.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "report/claims.h"
#include "report/html.h"
#include "report/paper_numbers.h"
#include "test_files.h"

using namespace pelab;
namespace fs = std::filesystem;

using pelab::test_files::read_whole_file;

namespace {

Cell cell(const std::string& setup, const std::string& pe, const std::string& task,
          std::vector<double> finals, int64_t rotary_heads = -1) {
  Cell c;
  c.setup = setup;
  c.pe = pe;
  c.task = task;
  c.rotary_heads = rotary_heads;
  c.n_heads = 16;
  c.n_layers = 6;
  c.label_count = task == kTask1 ? 24 : 31;
  c.length_only_accuracy = task == kTask1 ? 0.161 : 1.0 / 31;
  for (size_t i = 0; i < finals.size(); ++i) {
    c.run_ids.push_back(int64_t(i + 1));
    c.seeds.push_back(int64_t(i));
    c.stop_reasons.push_back(i == 0 ? "ceiling" : "plateau");
  }
  c.final_accuracy = SeedStats::of(finals);
  c.curve_accuracy = SeedStats::of(finals);
  return c;
}

}  // namespace

TEST(PaperNumbers, MatchPaperSection7) {
  const auto at = [](const char* pe, const char* task, int64_t k = -1, int64_t heads = 16) {
    const PaperAccuracy* p = paper_accuracy(pe, task, k, heads);
    return p ? p->accuracy : -1.0;
  };
  EXPECT_DOUBLE_EQ(at("rope", kTask1), 0.9264);
  EXPECT_DOUBLE_EQ(at("nope", kTask1), 0.0351);
  EXPECT_DOUBLE_EQ(at("mla", kTask2), 0.9741);
  EXPECT_DOUBLE_EQ(at("alibi", kTask1), 0.274);
  EXPECT_DOUBLE_EQ(at("learned", kTask2), 0.280);
  EXPECT_DOUBLE_EQ(at("rope_abs", kTask1), 0.997);
  EXPECT_DOUBLE_EQ(at("rope", kTask1, 1), 0.52);
  EXPECT_DOUBLE_EQ(at("rope", kTask2, 8), 0.836);
  EXPECT_DOUBLE_EQ(at("rope", kTask1, 16), 0.9264);  // k = all 16 heads is the full model
  // k of 4 heads is not the paper's experiment.
  EXPECT_EQ(paper_accuracy("rope", kTask1, 1, 4), nullptr);
  EXPECT_EQ(paper_accuracy("xpos", kTask1, -1, 16), nullptr);
  const auto deposit = paper_for_claim("deposit_rope_task1_layer1");
  EXPECT_DOUBLE_EQ(deposit["numbers"]["accuracy_without_worst"].get<double>(), 0.47);
  EXPECT_DOUBLE_EQ(deposit["numbers"]["baseline"].get<double>(), 0.970);
  const auto removal = paper_for_claim("removal_absolute");
  EXPECT_DOUBLE_EQ(removal["numbers"]["without_position"][0].get<double>(), 0.107);
  EXPECT_DOUBLE_EQ(removal["numbers"]["without_random"][1].get<double>(), 0.546);
}

TEST(PaperNumbers, EveryClaimCarriesThePaperAndItsScale) {
  ReportData data;
  data.scale = "paper-shape";
  data.setups = {"standard"};
  data.cells = {cell("standard", "rope", kTask1, {0.9, 0.92})};
  const auto claims = evaluate_claims(data);
  const auto j = nlohmann::json::parse(claims_to_json(claims));
  ASSERT_EQ(j.size(), claims.size());
  for (const auto& c : j) {
    ASSERT_TRUE(c.contains("paper")) << c["id"];
    const std::string text = c["paper"]["text"];
    EXPECT_FALSE(text.empty()) << c["id"];
    EXPECT_EQ(text.find("no number in PAPER.md"), std::string::npos)
        << c["id"] << " has no entry in the paper table";
    EXPECT_EQ(c["scale"], "paper-shape");
  }
}

TEST(PaperNumbers, PageShowsThePaperColumnLengthOnlyRowAndConvergence) {
  ReportData data;
  data.scale = "paper-shape";
  data.setups = {"standard"};
  data.cells = {cell("standard", "rope", kTask1, {0.9, 0.92}),
                cell("standard", "nope", kTask1, {0.15, 0.16}),
                cell("standard", "rope", kTask1, {0.5, 0.55}, 1)};
  const fs::path out = fs::path(::testing::TempDir()) / "pelab_paper_column";
  fs::remove_all(out);
  write_report(data, evaluate_claims(data), out);
  const std::string html = read_whole_file(out / "index.html");
  EXPECT_NE(html.find("<th>paper</th>"), std::string::npos);
  EXPECT_NE(html.find("0.9264 <small>(Table)</small>"), std::string::npos);  // RoPE, Task 1
  EXPECT_NE(html.find("0.0351 <small>(Table)</small>"), std::string::npos);  // NoPE, Task 1
  EXPECT_NE(html.find("<em>length only</em>"), std::string::npos);
  EXPECT_NE(html.find("0.161"), std::string::npos);
  EXPECT_NE(html.find("not converged: 1 of 2 runs hit the ceiling"), std::string::npos);
  EXPECT_NE(html.find("0.520 <small>(Fig. 6 (fig))</small>"), std::string::npos);  // k = 1
  // The claims table's paper column: the deposit claim quotes Fig. 4.
  EXPECT_NE(html.find("head 2 -&gt; 0.47"), std::string::npos);
}
