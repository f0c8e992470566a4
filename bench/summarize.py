#!/usr/bin/env python3
"""Prints the tables of `make bench` (scripts/bench.sh): per preset and PE the median samples/s
of pelab and of PyTorch eager in float32, their ratios, pelab's training FLOP/s against the
fastest float32 1024^3 product measured in the same runs (oneDNN), then the same for bf16
(pelab's train.precision=bf16 against PyTorch under torch.autocast), and every target of
docs/PERFORMANCE.md with the value reached. Input: one JSON object per line,
{"preset":..,"run":{...bench JSON...}}."""
import collections
import json
import math
import statistics
import sys


def main():
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    order = []
    with open(sys.argv[1]) as f:
        for line in f:
            record = json.loads(line)
            run = record["run"]
            key = (record["preset"], run["pe"])
            if key not in order:
                order.append(key)
            runs[key][(run["implementation"], run.get("precision", "fp32"))].append(run)

    def median(items, field):
        return statistics.median(item[field] for item in items)

    targets = []  # (target text, value, threshold)
    print("float32, side by side (pelab / PyTorch eager)\n")
    print("| preset | pe | train pelab | train PyTorch | train ratio | eval pelab | eval PyTorch "
          "| eval ratio | pelab train GFLOP/s | oneDNN fp32 GFLOP/s | share | OpenBLAS GFLOP/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    fp32 = {}
    for key in order:
        pelab, torch = runs[key][("pelab", "fp32")], runs[key][("pytorch", "fp32")]
        if not pelab or not torch:
            continue
        train_p, train_t = median(pelab, "train_samples_per_s"), median(torch, "train_samples_per_s")
        eval_p, eval_t = median(pelab, "eval_samples_per_s"), median(torch, "eval_samples_per_s")
        gflops, matmul = median(pelab, "gflop_per_s"), median(pelab, "matmul_gflop_per_s")
        openblas = median(pelab, "openblas_matmul_gflop_per_s") if "openblas_matmul_gflop_per_s" \
            in pelab[0] else median(torch, "matmul_gflop_per_s")
        fp32[key] = train_p
        print(f"| {key[0]} | {key[1]} | {train_p:.1f} | {train_t:.1f} | {train_p / train_t:.2f}x "
              f"| {eval_p:.1f} | {eval_t:.1f} | {eval_p / eval_t:.2f}x | {gflops:.1f} "
              f"| {matmul:.1f} | {100 * gflops / matmul:.0f}% | {openblas:.1f} |")
        preset, pe = key
        need = (8.0 if preset == "small" else 6.0) if pe in ("rope", "alibi") else 5.0
        targets.append((f"train fp32 {preset} {pe} vs PyTorch >= {need:g}x", train_p / train_t, need))
        targets.append((f"eval fp32 {preset} {pe} vs PyTorch >= 2.5x", eval_p / eval_t, 2.5))
        if preset == "paper":
            targets.append((f"train GFLOP/s {preset} {pe} >= 60% of oneDNN fp32",
                            gflops / matmul, 0.6))

    bf16_rows = [key for key in order if runs[key][("pelab", "bf16")]]
    if bf16_rows:
        print("\nbf16 (pelab train.precision=bf16 / PyTorch torch.autocast bf16)\n")
        print("| preset | pe | train pelab | train PyTorch | train ratio | eval pelab "
              "| eval PyTorch | eval ratio | pelab bf16 / fp32 train | oneDNN bf16 GFLOP/s |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in bf16_rows:
        pelab, torch = runs[key][("pelab", "bf16")], runs[key][("pytorch", "bf16")]
        if not torch:
            continue
        train_p, train_t = median(pelab, "train_samples_per_s"), median(torch, "train_samples_per_s")
        eval_p, eval_t = median(pelab, "eval_samples_per_s"), median(torch, "eval_samples_per_s")
        own = train_p / fp32[key] if key in fp32 else float("nan")
        print(f"| {key[0]} | {key[1]} | {train_p:.1f} | {train_t:.1f} | {train_p / train_t:.2f}x "
              f"| {eval_p:.1f} | {eval_t:.1f} | {eval_p / eval_t:.2f}x | {own:.2f}x "
              f"| {median(pelab, 'matmul_bf16_gflop_per_s'):.1f} |")
        targets.append((f"train bf16 {key[0]} {key[1]} vs PyTorch autocast >= 2x",
                        train_p / train_t, 2.0))
        targets.append((f"eval bf16 {key[0]} {key[1]} vs PyTorch autocast >= 2x",
                        eval_p / eval_t, 2.0))
        if key[0] == "paper":
            targets.append((f"train bf16 / fp32 {key[1]} paper >= 1.6x", own, 1.6))

    print("\n| target | reached | met? |")
    print("| --- | ---: | --- |")
    for text, value, need in targets:
        shown = f"{100 * value:.0f}%" if need < 1 else f"{value:.2f}x"
        if need >= 1 and (round(value, 2) >= need) != (value >= need):
            # Rounding would show a miss as the target itself: truncate to four decimals.
            shown = f"{math.floor(value * 10000) / 10000:.4f}x"
        print(f"| {text} | {shown} | {'yes' if value >= need else 'no'} |")


if __name__ == "__main__":
    main()
