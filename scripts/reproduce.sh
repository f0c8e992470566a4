#!/usr/bin/env bash
# The README's main job, for now: train RoPE and NoPE on Task 1 (trigger distance) at a small
# scale and print both test accuracies. The reproduction issue grows this into the whole study.
set -euo pipefail
pelab=${1:-build/pelab}
root=runs/reproduce
config=configs/small.toml
mkdir -p "$root"
declare -A accuracy
for pe in rope nope; do
  dir="$root/distance-$pe"
  if [ -f "$dir/checkpoint.pt" ]; then
    echo "== $pe: continuing the run in $dir"
    "$pelab" train --resume "$dir"
  else
    echo "== $pe: training on Task 1 (distance) into $dir"
    "$pelab" train --config "$config" model.pe="$pe" task.name=distance --out "$dir"
  fi
  accuracy[$pe]=$("$pelab" eval "$dir" --split test --json)
done
echo
echo "Task 1 (trigger distance), test split, $config:"
for pe in rope nope; do
  printf '  %-5s %s\n' "$pe" "${accuracy[$pe]}"
done
