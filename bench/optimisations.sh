#!/usr/bin/env bash
# What each optimisation buys (docs/PERFORMANCE.md): pelab with one optimisation turned off at a
# time (and bf16 turned on), the variants run alternately REPEATS times on one preset and PE;
# prints median samples/s.
# Usage: bench/optimisations.sh [build/pelab] (PRESET=small PE=rope REPEATS=3 BENCH_SECONDS=6)
set -euo pipefail
cd "$(dirname "$0")/.."
PELAB=${1:-build/pelab}
PRESET=${PRESET:-small}
PE=${PE:-rope}
REPEATS=${REPEATS:-3}
BENCH_SECONDS=${BENCH_SECONDS:-6}
variants=(
  "all optimisations|"
  "LibTorch linear layers (model.onednn_linear=false)|model.onednn_linear=false"
  "LibTorch AdamW (PELAB_LIBTORCH_ADAMW=1)|PELAB_LIBTORCH_ADAMW=1"
  "explicit attention (model.fused_attention=false)|model.fused_attention=false"
  "AVX2 kernels instead of AVX-512|PELAB_KERNEL_ISA=avx2"
  "generic (scalar) kernels|PELAB_KERNEL_ISA=generic"
  "libgomp's default spinning|PELAB_KEEP_OPENMP_ENV=1"
  "one thread (train.threads=1)|train.threads=1"
)
# Not an optimisation turned off but one turned on, where the CPU has bf16 dot products.
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then
  variants+=("bf16 mixed precision (train.precision=bf16)|train.precision=bf16")
  variants+=("bf16, float32 attention (PELAB_FLOAT32_ATTENTION=1)|train.precision=bf16 PELAB_FLOAT32_ATTENTION=1")
fi
# ... and on AMX tiles where the CPU has them (the bf16 line above uses them).
if grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null; then
  variants+=("bf16, attention products without AMX (PELAB_BF16_ATTENTION_TILES=0)|train.precision=bf16 PELAB_BF16_ATTENTION_TILES=0")
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for repeat in $(seq "$REPEATS"); do
  for v in "${variants[@]}"; do
    name=${v%%|*}
    setting=${v#*|}
    env_args=()
    overrides=()
    for s in $setting; do
      if [[ $s == *.* ]]; then overrides+=("$s"); else env_args+=("$s"); fi
    done
    echo "optimisations: $name ($repeat/$REPEATS)" >&2
    json=$(env "${env_args[@]}" "$PELAB" bench --config "configs/bench-$PRESET.toml" "model.pe=$PE" \
      "${overrides[@]}" --seconds "$BENCH_SECONDS" --json)
    echo "$name|$json" >>"$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, _, text = line.partition("|")
    rows.setdefault(name, []).append(json.loads(text))
base = rows[next(iter(rows))]
bt = statistics.median(r["train_samples_per_s"] for r in base)
be = statistics.median(r["eval_samples_per_s"] for r in base)
print("| variant | train samples/s | vs all | eval samples/s | vs all |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, runs in rows.items():
    t = statistics.median(r["train_samples_per_s"] for r in runs)
    e = statistics.median(r["eval_samples_per_s"] for r in runs)
    print(f"| {name} | {t:.1f} | {t / bt:.2f} | {e:.1f} | {e / be:.2f} |")
PY
