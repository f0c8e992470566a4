// The report from a fixture store written here with every record kind `pelab reproduce` writes:
// the data loads into the right cells, the page renders with its claims table and figures, and
// claims.json holds the expected verdicts. Also: missing data and bad stores give clear answers.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "analysis/ablation.h"
#include "analysis/removal.h"
#include "analysis/spectrum_study.h"
#include "config/config.h"
#include "pe/pe.h"
#include "report/claims.h"
#include "report/html.h"
#include "report/report_data.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace pelab;
using nlohmann::json;

using pelab::test_files::fresh_test_dir;
using pelab::test_files::read_whole_file;

namespace {

class Fixture {
 public:
  explicit Fixture(const fs::path& db) : store(db) {}
  Store store;

  // A finished run with a 3-epoch curve ending at `accuracy` (RoPE's rises sooner); its id.
  int64_t run(const std::string& setup, const std::string& experiment, const std::string& pe,
              const std::string& task, int64_t seed, double accuracy, int64_t rotary_heads = -1) {
    const std::vector<std::string> overrides = {
        "model.pe=" + pe, "task.name=" + task, "train.seed=" + std::to_string(seed),
        "model.rotary_heads=" + std::to_string(rotary_heads)};
    const Config config = load_config(fs::path(PELAB_SOURCE_DIR) / "configs/tiny.toml", overrides);
    RunRecord r;
    r.sweep = "tiny-" + setup + "-" + experiment;
    r.name = fmt::format("{}/{}-{}-k{}-s{}", r.sweep, pe, task, rotary_heads, seed);
    r.run_dir = "/tmp/" + r.name;
    r.setup = setup;
    r.config_toml = to_toml(config);
    r.pe = pe;
    r.task = task;
    r.seed = seed;
    const int64_t id = store.upsert_run(r);
    std::vector<EpochMetrics> metrics;
    for (int64_t e = 1; e <= 3; ++e) {
      EpochMetrics m;
      m.epoch = e;
      // RoPE reaches 0.9 x its final accuracy an epoch sooner than the others (speed rule).
      m.test_accuracy = pe == "rope" ? accuracy * (e == 1   ? 0.5
                                                   : e == 2 ? 0.95
                                                            : 1.0)
                                     : accuracy * double(e) / 3.0;
      m.train_accuracy = m.test_accuracy;
      m.seconds = 1.5;
      metrics.push_back(m);
    }
    store.finish_run(id, metrics);
    return id;
  }

  // Value ablation of a 2-layer, 4-head model; `deposit_layer` has one head that halves accuracy,
  // `broad` makes every head of layer 0 cost a little.
  void ablation(int64_t run_id, double baseline, int64_t deposit_layer, bool broad = false) {
    AblationRecord a;
    a.run_id = run_id;
    a.method = "value";
    a.split = "all";
    a.baseline_accuracy = baseline;
    a.samples = 100;
    a.accuracy = {{baseline, baseline, baseline, baseline},
                  {baseline, baseline, baseline, baseline}};
    if (broad) a.accuracy[0] = {baseline - 0.1, baseline - 0.1, baseline - 0.1, baseline - 0.1};
    if (deposit_layer >= 0) a.accuracy[deposit_layer][2] = baseline / 2;
    auto matrix = torch::zeros({2, 4}, torch::kDouble);
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 4; ++h) matrix[l][h] = a.accuracy[l][h];
    a.extra = json::array();
    for (const auto& d : summarise_deposits(baseline, matrix))
      a.extra.push_back({{"layer", d.layer},
                         {"worst_head", d.worst_head},
                         {"drop", d.drop},
                         {"share", d.share},
                         {"single_head_deposit", d.single_head_deposit}});
    store.put_ablation(a);
  }

  void removal(int64_t run_id, double without_position) {
    json layers = json::array();
    for (int l = 0; l < 2; ++l)
      layers.push_back({{"layer", l},
                        {"accuracy_without_position", without_position},
                        {"accuracy_without_random", {0.68, 0.69, 0.70}},
                        {"random_mean", 0.69},
                        {"random_std", 0.01}});
    store.put_result(
        {0,
         run_id,
         "removal",
         "all",
         {{"split", "all"}, {"samples", 100}, {"baseline_accuracy", 0.7}, {"layers", layers}},
         ""});
  }

  // A spectrum payload as spectrum_to_json writes it, with `checks` checks of one ratio.
  static json spectrum(const std::string& pe, const std::string& kind, double ratio) {
    json checks = json::array();
    for (int i = 0; i < 3; ++i)
      checks.push_back({{"source", "random draw"},
                        {"kind", kind},
                        {"kernel", "K"},
                        {"rank", 8},
                        {"lambda_min_a", 0.1},
                        {"lambda_max_a", 1.0},
                        {"lambda_min_coupled", 0.1},
                        {"lambda_max_coupled", 1.0},
                        {"bound_low", 0.0},
                        {"bound_high", 1.0},
                        {"bound_holds", true},
                        {"condition_a", 10.0},
                        {"condition_coupled", 10.0 * ratio},
                        {"contraction_ratio", ratio}});
    json kernels = json::array();
    kernels.push_back({{"name", kind == "schur" ? "T" : "B"},
                       {"layer", 0},
                       {"index", 0},
                       {"symmetric", true},
                       {"eigenvalues", {-1.0, 0.5, 2.0, 4.0}},
                       {"condition_number", nullptr},
                       {"min_diagonal", 1.0},
                       {"max_diagonal", 1.0},
                       {"toeplitz_distance", 0.0}});
    return {{"pe", pe},
            {"positions", 4},
            {"kernels", kernels},
            {"coupling_checks", checks},
            {"summary", {{"checks", 3}}},
            {"logit_spectra", json::array()}};
  }
};

// The faithful setup has every record kind, shaped so each claim that 2 layers allow holds; the
// standard setup has only the main Task 1 runs, with sinusoidal ahead of RoPE.
fs::path write_fixture_store(const std::string& name) {
  const fs::path db = fresh_test_dir(std::string("report_") + name) / "pelab.db";
  Fixture f(db);
  const std::map<std::string, std::pair<double, double>> main = {
      {"rope", {0.90, 0.85}},     {"sinusoidal", {0.70, 0.90}}, {"learned", {0.68, 0.90}},
      {"relative", {0.10, 0.94}}, {"alibi", {0.06, 0.50}},      {"nope", {0.02, 0.95}}};
  for (const auto& [pe, accuracy] : main)
    for (int64_t seed = 0; seed < 3; ++seed) {
      const double jitter = 0.005 * double(seed);
      const int64_t t1 = f.run("faithful", "main", pe, "distance", seed, accuracy.first + jitter);
      const int64_t t2 = f.run("faithful", "main", pe, "count", seed, accuracy.second + jitter);
      const bool absolute = pe == "sinusoidal" || pe == "learned";
      f.ablation(t1, accuracy.first + jitter, pe == "rope" ? 0 : -1, absolute);
      f.ablation(t2, accuracy.second + jitter, -1);
      if (absolute) f.removal(t1, 0.1);
      if (pe == "rope" && seed == 0) {
        json payload = Fixture::spectrum("rope", "schur", 0.7);
        payload["logit_spectra"] = {{{"layer", 0},
                                     {"head", 1},
                                     {"mean_log10_condition", 3.2},
                                     {"mean_effective_rank", 5.5},
                                     {"mean_top_share", 0.4},
                                     {"mean_normalised_singular_values", {1.0, 0.5}}}};
        f.store.put_result({0, t1, "run_spectrum", "test", payload, ""});
      }
      const double other = 0.5 + 0.005 * double(seed);
      f.run("standard", "main", pe, "distance", seed, pe == "sinusoidal" ? 0.95 : other);
    }
  for (int64_t seed = 0; seed < 3; ++seed) {
    const int64_t abs1 = f.run("faithful", "rope_abs", "rope_abs", "distance", seed, 0.85);
    f.ablation(abs1, 0.85, 1);
    f.removal(abs1, 0.1);
    f.run("faithful", "rope_abs", "rope_abs", "count", seed, 0.85);
    for (const auto& [k, accuracy] :
         std::map<int64_t, double>{{0, 0.02}, {1, 0.45}, {2, 0.86}, {3, 0.88}, {4, 0.90}})
      f.run("faithful", "k_heads", "rope", "distance", seed, accuracy, k);
    f.ablation(f.run("faithful", "mla", "mla", "distance", seed, 0.88), 0.88, -1);
    f.ablation(f.run("faithful", "mla", "mla", "count", seed, 0.97), 0.97, -1);
  }
  // A failed run: counted, not averaged.
  RunRecord failed;
  failed.name = "tiny-faithful-main/failed";
  failed.sweep = "tiny-faithful-main";
  failed.setup = "faithful";
  failed.config_toml = to_toml(load_config(fs::path(PELAB_SOURCE_DIR) / "configs/tiny.toml", {}));
  failed.status = RunStatus::kFailed;
  f.store.upsert_run(failed);
  f.store.put_result({0, std::nullopt, "kernel_spectrum", "faithful/rope",
                      Fixture::spectrum("rope", "schur", 0.6), ""});
  f.store.put_result({0, std::nullopt, "kernel_spectrum", "faithful/alibi",
                      Fixture::spectrum("alibi", "weyl", 2.5), ""});
  return db;
}

std::string verdict_of(const json& claims, const std::string& id, const std::string& setup) {
  for (const auto& c : claims)
    if (c["id"] == id && c["setup"] == setup) return c["verdict"];
  return "absent";
}

}  // namespace

TEST(ReportData, LoadsCellsFromTheStore) {
  const Store store(write_fixture_store("load"), Store::Mode::kExisting);
  const ReportData data = load_report_data(store, "tiny");
  EXPECT_EQ(data.setups, (std::vector<std::string>{"faithful", "standard"}));
  const Cell* rope = data.find("faithful", "rope", "distance");
  ASSERT_NE(rope, nullptr);
  // The k-heads "all heads" runs (k = 4 of 4) repeat the main RoPE runs: not extra seeds.
  EXPECT_EQ(rope->final_accuracy.n, 3);
  EXPECT_NEAR(rope->final_accuracy.mean, 0.905, 1e-9);
  EXPECT_NEAR(rope->final_accuracy.min, 0.90, 1e-9);
  ASSERT_EQ(rope->curve_mean.size(), 3u);
  EXPECT_NEAR(rope->curve_mean[2], 0.905, 1e-9);
  EXPECT_EQ(rope->label_count, 14);  // tiny: 1..14 fillers between
  ASSERT_EQ(rope->ablations.size(), 3u);
  EXPECT_TRUE(rope->ablations[0].deposits[0].single_head_deposit);
  EXPECT_EQ(rope->ablations[0].split, "all");
  ASSERT_NE(data.find("faithful", "rope", "distance", 1), nullptr);
  EXPECT_NEAR(data.find("faithful", "rope", "distance", 1)->final_accuracy.mean, 0.45, 1e-9);
  ASSERT_EQ(data.find("faithful", "sinusoidal", "distance")->removals.size(), 3u);
  EXPECT_EQ(data.find("faithful", "sinusoidal", "distance")->removals[0].layers.size(), 2u);
  ASSERT_NE(data.kernel_spectrum("faithful", "alibi"), nullptr);
  EXPECT_EQ(data.kernel_spectrum("faithful", "alibi")->checks.size(), 3u);
  ASSERT_EQ(data.run_spectra("faithful", "rope").size(), 1u);
  EXPECT_EQ(data.run_spectra("faithful", "rope")[0]->logit_spectra.size(), 1u);
  EXPECT_EQ(data.setup_summaries[0].failed, 1);
  EXPECT_EQ(data.find("faithful", "rope", "distance", -1)->unfinished_runs, 1);  // the failed run
  EXPECT_EQ(data.setup_summaries[1].runs, 18);
  EXPECT_EQ(data.find("standard", "rope", "count"), nullptr);
}

TEST(Report, RendersFromAFixtureStore) {
  const Store store(write_fixture_store("render"), Store::Mode::kExisting);
  const ReportData data = load_report_data(store, "tiny");
  const auto claims = evaluate_claims(data);
  const fs::path out = fresh_test_dir("report_render_out") / "reports" / "tiny";
  const ReportFiles files = write_report(data, claims, out);
  EXPECT_TRUE(files.figure_errors.empty()) << files.figure_errors.front();
  const std::string html = read_whole_file(out / "index.html");
  EXPECT_NE(html.find("<!DOCTYPE html>"), std::string::npos);
  EXPECT_NE(html.find("<table class=\"claims\">"), std::string::npos);
  for (const auto& c : claims) {
    EXPECT_NE(html.find("id=\"claim-" + c.id + "\""), std::string::npos) << c.id;
    EXPECT_NE(html.find(html_escaped(c.rule)), std::string::npos) << c.id;
  }
  EXPECT_NE(html.find("<span class=\"verdict holds\">holds</span>"), std::string::npos);
  EXPECT_NE(html.find("<span class=\"verdict not-measured\">"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);  // nothing remote: opens offline
  // Every figure the page shows exists beside it and is an SVG.
  const std::regex image("<img src=\"([^\"]+)\"");
  int64_t images = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), image);
       it != std::sregex_iterator(); ++it) {
    const fs::path svg = out / (*it)[1].str();
    ASSERT_TRUE(fs::exists(svg)) << svg;
    EXPECT_NE(read_whole_file(svg).find("<svg"), std::string::npos) << svg;
    ++images;
  }
  EXPECT_EQ(images, int64_t(files.figures.size()));
  for (const char* name : {"accuracy-faithful.svg", "curves-faithful-distance.svg",
                           "ablation-faithful-rope-distance.svg", "rotary-heads.svg",
                           "contraction-faithful.svg", "removal-faithful-sinusoidal-distance.svg"})
    EXPECT_NE(html.find(std::string("src=\"") + name + "\""), std::string::npos) << name;
  for (const auto& entry : fs::directory_iterator(out))
    EXPECT_EQ(entry.path().extension() == ".tmp", false) << entry.path();

  const json j = json::parse(read_whole_file(out / "claims.json"));
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), claims.size());
  for (const auto& c : j)
    for (const char* key : {"id", "claim", "setup", "verdict", "rule", "evidence"})
      EXPECT_TRUE(c.contains(key)) << key;
  for (const char* id :
       {"task1_rope_fastest_best", "task1_absolute_follow", "task1_bias_pes_fail",
        "task1_nope_at_chance", "task2_every_pe_counts", "task2_nope_relative_best_alibi_worst",
        "task2_rope_not_best", "deposit_rope_task1_layer1", "no_deposit_nope_task1_rope_task2",
        "absolute_broad_dependence", "rope_abs_deposit_layer2", "rope_heads", "mla",
        "removal_absolute", "spectral_contraction"})
    EXPECT_EQ(verdict_of(j, id, "faithful"), "holds") << id;
  // Two layers: nothing after layer 2 to check.
  EXPECT_EQ(verdict_of(j, "removal_rope_abs", "faithful"), "not measured");
  EXPECT_EQ(verdict_of(j, "task1_rope_fastest_best", "standard"), "does not hold");
  EXPECT_EQ(verdict_of(j, "deposit_rope_task1_layer1", "standard"), "not measured");
  EXPECT_EQ(verdict_of(j, "spectral_contraction", "standard"), "not measured");
}

TEST(Report, NamesTheScalesAStoreHolds) {
  const Store store(write_fixture_store("scales"), Store::Mode::kExisting);
  EXPECT_EQ(scales_in_store(store), std::vector<std::string>{"tiny"});
  try {
    load_report_data(store, "paper");
    FAIL() << "expected a StoreError";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("scales present: tiny"), std::string::npos) << e.what();
  }
}

TEST(Report, CommandLine) {
  const fs::path db = write_fixture_store("cli");
  const fs::path out = fresh_test_dir("report_cli_out");
  auto run = [](const std::string& args) {
    const std::string command = std::string(PELAB_BINARY) + " report " + args + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    char buffer[4096];
    while (fgets(buffer, sizeof buffer, pipe)) output += buffer;
    return std::pair(WEXITSTATUS(pclose(pipe)), output);
  };
  auto [status, output] = run("--store " + db.string() + " --scale tiny --out " + out.string());
  ASSERT_EQ(status, 0) << output;
  EXPECT_TRUE(fs::exists(out / "index.html"));
  EXPECT_TRUE(fs::exists(out / "claims.json"));
  EXPECT_NE(output.find("holds"), std::string::npos) << output;
  std::tie(status, output) = run("--store " + (out / "nothing.db").string());
  EXPECT_EQ(status, 4) << output;
  EXPECT_NE(output.find("nothing.db"), std::string::npos) << output;
  std::tie(status, output) = run("--store " + db.string() + " --scale small");
  EXPECT_EQ(status, 4) << output;
  EXPECT_NE(output.find("scales present: tiny"), std::string::npos) << output;
}

// The contract with `pelab reproduce`: records serialised by the analyses' own JSON writers load
// into the report's structs field by field.
TEST(ReportData, ReadsTheAnalysesOwnJson) {
  const fs::path db = fresh_test_dir("report_contract") / "pelab.db";
  Fixture f(db);
  const int64_t run = f.run("standard", "main", "sinusoidal", "distance", 0, 0.7);

  AblationResult ablation;
  ablation.baseline_accuracy = 0.7;
  ablation.samples = 10;
  ablation.accuracy = torch::tensor({{0.7, 0.3, 0.7, 0.7}, {0.69, 0.7, 0.7, 0.7}}, torch::kDouble);
  ablation.deposits = summarise_deposits(0.7, ablation.accuracy);
  const json written = ablation_to_json(ablation, "test");
  AblationRecord record;
  record.run_id = run;
  record.method = "value";
  record.split = "test";
  record.baseline_accuracy = 0.7;
  record.accuracy = written["accuracy"].get<std::vector<std::vector<double>>>();
  record.extra = written["deposits"];
  f.store.put_ablation(record);

  RemovalResult removal;
  removal.samples = 10;
  removal.baseline_accuracy = 0.7;
  removal.layers = {{0, 0.1, {0.6, 0.7}, 0.65, 0.07}, {1, 0.2, {0.68, 0.7}, 0.69, 0.014}};
  f.store.put_result({0, run, "removal", "test", removal_to_json(removal, "test"), ""});

  for (const std::string pe : {"rope", "alibi"}) {
    const Config config =
        load_config(fs::path(PELAB_SOURCE_DIR) / "configs/tiny.toml", {"model.pe=" + pe});
    SpectrumRequest request;
    request.positions = 8;
    request.draws = 2;
    const auto encoding = make_pe(PeOptions{config.model, 8});
    const auto study = run_spectrum_study(*encoding, config.model, request);
    f.store.put_result(
        {0, std::nullopt, "kernel_spectrum", "standard/" + pe, spectrum_to_json(study), ""});
  }

  const ReportData data = load_report_data(f.store, "tiny");
  const Cell* cell = data.find("standard", "sinusoidal", "distance");
  ASSERT_NE(cell, nullptr);
  ASSERT_EQ(cell->ablations.size(), 1u);
  ASSERT_EQ(cell->ablations[0].deposits.size(), 2u);
  EXPECT_TRUE(cell->ablations[0].deposits[0].single_head_deposit);
  EXPECT_EQ(cell->ablations[0].deposits[0].worst_head, 1);
  EXPECT_NEAR(cell->ablations[0].deposits[0].drop, 0.4, 1e-9);
  ASSERT_EQ(cell->removals.size(), 1u);
  ASSERT_EQ(cell->removals[0].layers.size(), 2u);
  EXPECT_EQ(cell->removals[0].layers[1].layer, 1);
  EXPECT_EQ(cell->removals[0].layers[1].accuracy_without_random.size(), 2u);
  EXPECT_NEAR(cell->removals[0].layers[1].random_std, 0.014, 1e-12);
  const SpectrumData* rope = data.kernel_spectrum("standard", "rope");
  const SpectrumData* alibi = data.kernel_spectrum("standard", "alibi");
  ASSERT_NE(rope, nullptr);
  ASSERT_NE(alibi, nullptr);
  EXPECT_EQ(rope->positions, 8);
  ASSERT_FALSE(rope->kernels.empty());
  EXPECT_EQ(rope->kernels[0].eigenvalues.size(), 8u);
  ASSERT_FALSE(rope->checks.empty());
  EXPECT_EQ(rope->checks[0].kind, "schur");
  ASSERT_FALSE(alibi->checks.empty());
  EXPECT_EQ(alibi->checks[0].kind, "weyl");
  const auto verdict = claim_spectral_contraction(data, "standard");
  EXPECT_NE(verdict.verdict, Verdict::kNotMeasured) << verdict.evidence.dump();
}
