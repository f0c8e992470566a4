#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets of tests/fuzz (clang-14, ASan + UBSan) against the main
# build's libpelab_core.a and runs each for FUZZ_SECONDS (default 60). New inputs go to
# $FUZZ_BUILD_DIR/corpus/<target> (seeded from tests/fuzz/corpus/<target>); a crash, hang, leak or
# sanitizer report leaves its input in $FUZZ_BUILD_DIR/artifacts and fails the run.
# Usage: scripts/fuzz.sh [target ...]   (targets: config checkpoint safetensors sweep plan)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
build=${BUILD_DIR:-build}
fuzz_build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${JOBS:-$(nproc)}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(config checkpoint safetensors sweep plan); fi

bash scripts/install-deps.sh --fuzz
test -f "$build/build.ninja" || cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs" --target pelab_core
test -f "$fuzz_build/build.ninja" ||
  CC=clang-14 CXX=clang++-14 cmake -S tests/fuzz -B "$fuzz_build" -G Ninja \
    -DPELAB_CORE_LIB="$(realpath "$build")/libpelab_core.a"
# Only the targets asked for.
build_targets=()
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$fuzz_build" -j "$jobs" --target "${build_targets[@]}"

artifacts="$(realpath "$fuzz_build")/artifacts"
# Leaks inside LibTorch's own error paths are suppressed (tests/fuzz/lsan.supp says which and why).
export LSAN_OPTIONS="suppressions=$(realpath tests/fuzz/lsan.supp)${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
mkdir -p "$artifacts"
failed=()
for t in "${targets[@]}"; do
  corpus="$fuzz_build/corpus/$t"
  mkdir -p "$corpus"
  echo "pelab fuzz: $t for ${seconds} s"
  if ! "$fuzz_build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$corpus" "tests/fuzz/corpus/$t"; then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "pelab fuzz: FAILED: ${failed[*]}; inputs in $artifacts (replay: $fuzz_build/fuzz_TARGET FILE)" >&2
  exit 1
fi
echo "pelab fuzz: ${targets[*]}: no crash, hang, leak or sanitizer report in ${seconds} s each"
