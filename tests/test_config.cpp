#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "config/config.h"
#include "config/suggest.h"

using namespace pelab;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, OverridesParseTypedValues) {
  Config c;
  apply_override(c, "model.d_model=64");
  apply_override(c, "train.lr=0.003");
  apply_override(c, "model.final_norm=false");
  apply_override(c, "model.pe=\"alibi\"");
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.003);
  EXPECT_FALSE(c.model.final_norm);
  EXPECT_EQ(c.model.pe, "alibi");
}

TEST(Config, UnknownKeyIsNamedWithSuggestion) {
  Config c;
  auto msg = error_of([&] { apply_override(c, "model.d_modle=3"); });
  EXPECT_NE(msg.find("model.d_modle"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'model.d_model'"), std::string::npos) << msg;
}

TEST(Config, BadValuesNameKeyValueAndAccepted) {
  Config c;
  auto msg = error_of([&] { apply_override(c, "model.n_layers=zero"); });
  EXPECT_NE(msg.find("model.n_layers"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'zero'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("integer"), std::string::npos) << msg;
  msg = error_of([&] { apply_override(c, "model.pe=ropee"); });
  EXPECT_NE(msg.find("did you mean 'rope'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("alibi"), std::string::npos) << msg;  // lists what is accepted
  msg = error_of([&] { apply_override(c, "train.lr=-1"); });
  EXPECT_NE(msg.find("train.lr"), std::string::npos) << msg;
  msg = error_of([&] { apply_override(c, "model.mask=maybe"); });
  EXPECT_NE(msg.find("none, padding, causal"), std::string::npos) << msg;
  EXPECT_FALSE(error_of([&] { apply_override(c, "nonsense"); }).empty());
}

TEST(Config, CrossKeyValidation) {
  EXPECT_NE(error_of([] {
              load_config({}, {"model.d_model=30", "model.n_heads=4"});
            }).find("model.n_heads"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config({}, {"model.rotary_heads=20"}); }).find("model.rotary_heads"),
            std::string::npos);
}

TEST(Config, TomlRoundTripKeepsEveryKey) {
  Config c = load_config({}, {"model.pe=t5", "task.name=count", "train.lr=0.00123",
                              "model.rotary_fraction=0.5", "task.samples=777"});
  Config back = config_from_toml(to_toml(c), "roundtrip");
  EXPECT_EQ(to_toml(back), to_toml(c));
  EXPECT_EQ(back.model.pe, "t5");
  EXPECT_EQ(back.task.samples, 777);
  EXPECT_DOUBLE_EQ(back.train.lr, 0.00123);
}

TEST(Config, TomlFileErrorsNameFileAndKey) {
  const std::string path = ::testing::TempDir() + "/bad.toml";
  std::ofstream(path) << "[model]\nd_model = 64\nheads = 4\n";
  auto msg = error_of([&] { load_config(path, {}); });
  EXPECT_NE(msg.find("bad.toml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.heads"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.n_heads"), std::string::npos) << msg;
  std::ofstream(path) << "[model\n";
  EXPECT_NE(error_of([&] { load_config(path, {}); }).find("syntax"), std::string::npos);
  EXPECT_NE(error_of([] { load_config("/nonexistent.toml", {}); }).find("/nonexistent.toml"),
            std::string::npos);
}

TEST(Config, PresetsLoad) {
  for (const char* name : {"tiny", "paper"}) {
    const std::string path = std::string(PELAB_SOURCE_DIR) + "/configs/" + name + ".toml";
    EXPECT_NO_THROW(load_config(path, {})) << path;
  }
  Config paper = load_config(std::string(PELAB_SOURCE_DIR) + "/configs/paper.toml", {});
  EXPECT_EQ(paper.model.mask, "none");
  EXPECT_EQ(paper.model.kv_source, "embedding");
  EXPECT_DOUBLE_EQ(paper.train.beta1, 0.98);
  EXPECT_EQ(paper.train.batch_size, 512);
}

TEST(Suggest, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(nearest("d_model", {"model.d_model", "model.d_ff"}), "model.d_model");
  EXPECT_EQ(nearest("zzzzzzzz", {"model.d_model"}), "");
}

// nearest() skips candidates whose length alone rules them out; it must still pick exactly what a
// plain scan of every candidate's edit distance picks (same threshold, first of equals wins).
TEST(Suggest, NearestMatchesAPlainScanOfEveryCandidate) {
  std::vector<std::string> keys;
  for (const auto& info : config_keys()) keys.push_back(info.key);
  auto plain_scan = [&](const std::string& word) {
    std::string best;
    std::size_t best_distance = std::max<std::size_t>(3, word.size() / 3) + 1;
    for (const auto& c : keys) {
      std::size_t d = edit_distance(word, c);
      auto dot = c.find('.');
      if (dot != std::string::npos && c.substr(dot + 1) == word) d = 1;
      if (d < best_distance) best_distance = d, best = c;
    }
    return best;
  };
  std::mt19937 rng(7);
  int suggested = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string word = keys[rng() % keys.size()];
    // Mutate a real key by a few edits, or drop its section, or make it much longer or shorter.
    const int edits = static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !word.empty(); ++e) {
      const std::size_t at = rng() % word.size();
      switch (rng() % 4) {
        case 0:
          word.erase(at, 1);
          break;
        case 1:
          word.insert(at, 1, static_cast<char>('a' + rng() % 26));
          break;
        case 2:
          word[at] = static_cast<char>('a' + rng() % 26);
          break;
        default:
          word = word.substr(word.find('.') + 1);
          break;
      }
    }
    if (trial % 10 == 0) word += std::string(rng() % 40, 'x');
    const std::string expected = plain_scan(word);
    EXPECT_EQ(nearest(word, keys), expected) << "word '" << word << "'";
    suggested += !expected.empty();
  }
  EXPECT_GT(suggested, 1000);  // the comparison covers words that do get a suggestion
  EXPECT_EQ(nearest(std::string(100000, 'q'), keys), "");
}

TEST(Config, KeyListingShowsOnlyTheChoices) {
  for (const auto& k : config_keys()) {
    EXPECT_EQ(k.accepted.find("did you mean"), std::string::npos) << k.key << ": " << k.accepted;
    if (k.key == "model.pe") {
      EXPECT_NE(k.accepted.find("rope_abs"), std::string::npos);
    }
  }
}
