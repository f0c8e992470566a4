// pelab: positional-encoding lab. Entry point; every subcommand lives in its own file.
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "cli/commands.h"
#include "cli/openmp_env.h"
#include "config/config.h"
#include "store/store.h"
#include "train/allocator.h"
#include "train/checkpoint.h"
#include "train/interrupt.h"

int main(int argc, char** argv) {
  pelab::cli::restart_with_short_openmp_spin(argv);
  pelab::keep_freed_memory_for_reuse();
  CLI::App app{
      "pelab: train Transformers with any positional encoding on content/position tasks, and see "
      "why each encoding works.\nRun `pelab COMMAND --help` for a command's options."};
  app.require_subcommand(1);
  pelab::cli::add_train(app);
  pelab::cli::add_eval(app);
  pelab::cli::add_export(app);
  pelab::cli::add_data(app);
  pelab::cli::add_predict(app);
  pelab::cli::add_ablate(app);
  pelab::cli::add_logits(app);
  pelab::cli::add_spectrum(app);
  pelab::cli::add_removal(app);
  pelab::cli::add_reproduce(app);
  pelab::cli::add_pe(app);
  pelab::cli::add_config(app);
  pelab::cli::add_sweep(app);
  pelab::cli::add_runs(app);
  pelab::cli::add_report(app);
  pelab::cli::add_bench(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const pelab::TrainingInterrupted& e) {
    fmt::print(stderr, "pelab: {}\n", e.what());
    return pelab::kExitInterrupted;
  } catch (const pelab::ConfigError& e) {
    fmt::print(stderr, "pelab: config error: {}\n", e.what());
    return 2;
  } catch (const pelab::CheckpointError& e) {
    fmt::print(stderr, "pelab: checkpoint error: {}\n", e.what());
    return 3;
  } catch (const pelab::StoreError& e) {
    fmt::print(stderr, "pelab: store error: {}\n", e.what());
    return 4;
  } catch (const c10::Error& e) {
    // LibTorch's own checks: the message without its C++ backtrace.
    fmt::print(stderr, "pelab: error: {}\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "pelab: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
