#!/usr/bin/env bash
# `make bench`: pelab against the same model in PyTorch eager (bench/pytorch_reference.py),
# side by side: for each preset and PE the two run alternately, REPEATS times each, and the
# medians' ratios are printed (docs/PERFORMANCE.md). Both get the same threads (train.threads,
# 0 = all cores) and the same OpenMP setting pelab gives itself (GOMP_SPINCOUNT=10000), so the
# ratio measures the implementations, not the environment.
# Environment: PRESETS ("small paper"), PES ("nope alibi rope mla"), REPEATS (3),
# BENCH_SECONDS (8, timed seconds per phase and run), PYTHON (/usr/bin/python3),
# PRECISIONS ("fp32 bf16" where the CPU has AVX512_BF16, else "fp32"): train.precision for both
# sides (PyTorch's bf16 is torch.autocast("cpu", dtype=torch.bfloat16)).
# PYTORCH_AS_SHIPPED=1 runs PyTorch as Debian ships it instead: one intra-op thread and
# libgomp's default spinning (pelab keeps its own settings). BENCH_RUNS (build/bench-runs.jsonl)
# keeps every run's JSON, one per line, for the spread behind the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
PELAB=${1:-build/pelab}
PYTHON=${PYTHON:-/usr/bin/python3}
PRESETS=${PRESETS:-"small paper"}
PES=${PES:-"nope alibi rope mla"}
REPEATS=${REPEATS:-3}
if [ -z "${PRECISIONS:-}" ]; then
  PRECISIONS=fp32
  if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then PRECISIONS="fp32 bf16"; fi
fi
BENCH_SECONDS=${BENCH_SECONDS:-8}
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}

# Debian's PyTorch, only for benchmarking (never installed by `make test` or CI).
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "bench: installing python3-torch (Debian's PyTorch, for the reference)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3-torch
fi

results=${BENCH_RUNS:-build/bench-runs.jsonl}
mkdir -p "$(dirname "$results")"
: >"$results"
for preset in $PRESETS; do
  config=configs/bench-$preset.toml
  for pe in $PES; do
    for repeat in $(seq "$REPEATS"); do
      for precision in $PRECISIONS; do
        echo "bench: $preset $pe $precision run $repeat/$REPEATS" >&2
        echo "{\"preset\":\"$preset\",\"run\":$("$PELAB" bench --config "$config" \
          "model.pe=$pe" "train.precision=$precision" --seconds "$BENCH_SECONDS" --json)}" \
          >>"$results"
        if [ "${PYTORCH_AS_SHIPPED:-0}" = 1 ]; then
          torch_run=(env -u GOMP_SPINCOUNT "$PYTHON" bench/pytorch_reference.py train.threads=1)
        else
          torch_run=("$PYTHON" bench/pytorch_reference.py)
        fi
        echo "{\"preset\":\"$preset\",\"run\":$("${torch_run[@]}" --config "$config" \
          "model.pe=$pe" "train.precision=$precision" --seconds "$BENCH_SECONDS")}" >>"$results"
      done
    done
  done
done
"$PYTHON" bench/summarize.py "$results"
echo "bench: every run's numbers are in $results" >&2
