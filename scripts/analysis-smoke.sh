#!/usr/bin/env bash
# Every analysis command on a tiny run of every PE (issue 3's "done when"): trains each PE with
# configs/tiny.toml (per-epoch spectra and Hessian tracked), then runs ablate, logits, spectrum
# and, for absolute PEs, removal, checking that each writes its JSON and figures.
# Usage: scripts/analysis-smoke.sh [PELAB_BINARY] [OUT_DIR]
set -euo pipefail
PELAB=${1:-build/pelab}
OUT=${2:-runs/analysis-smoke}
mkdir -p "$OUT"
for pe in $("$PELAB" pe list | cut -d" " -f1); do
  run="$OUT/$pe"
  [ -f "$run/checkpoint.pt" ] || "$PELAB" train --config configs/tiny.toml --out "$run" \
    model.pe="$pe" train.track_spectra=true --no-progress > "$run.train.log"
  "$PELAB" ablate "$run" --json > "$run/ablation.json"
  "$PELAB" logits "$run" --layer 1 --head 0 --json > "$run/logits.json"
  "$PELAB" spectrum --run "$run" --n 16 --json > "$run/spectrum.json"
  "$PELAB" spectrum --pe "$pe" --n 32 --figure "$run/kernel" --json > "$run/kernel.json"
  case "$pe" in sinusoidal|learned|rope_abs)
    "$PELAB" removal "$run" --json > "$run/removal.json" ;;
  esac
  grep -q hessian_top_eigenvalue "$run/metrics.json"
  echo "$pe: $(ls "$run" | tr '\n' ' ')"
done
