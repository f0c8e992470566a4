#!/usr/bin/env python3
"""Prints the table of `make bench` (scripts/bench.sh): per preset and PE the median samples/s
of pelab and of PyTorch eager, their ratios, and the training FLOP/s against the 1024^3
matrix product measured in the same runs. Input: one JSON object per line,
{"preset":..,"run":{...bench JSON...}}."""
import collections
import json
import statistics
import sys


def main():
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    order = []
    with open(sys.argv[1]) as f:
        for line in f:
            record = json.loads(line)
            key = (record["preset"], record["run"]["pe"])
            if key not in order:
                order.append(key)
            runs[key][record["run"]["implementation"]].append(record["run"])

    def median(items, field):
        return statistics.median(item[field] for item in items)

    print("| preset | pe | train pelab | train PyTorch | train ratio | eval pelab | eval PyTorch "
          "| eval ratio | pelab train GFLOP/s | matmul GFLOP/s | share |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in order:
        pelab, torch = runs[key]["pelab"], runs[key]["pytorch"]
        if not pelab or not torch:
            continue
        train_p, train_t = median(pelab, "train_samples_per_s"), median(torch, "train_samples_per_s")
        eval_p, eval_t = median(pelab, "eval_samples_per_s"), median(torch, "eval_samples_per_s")
        gflops, matmul = median(pelab, "gflop_per_s"), median(pelab + torch, "matmul_gflop_per_s")
        print(f"| {key[0]} | {key[1]} | {train_p:.1f} | {train_t:.1f} | {train_p / train_t:.2f}x "
              f"| {eval_p:.1f} | {eval_t:.1f} | {eval_p / eval_t:.2f}x | {gflops:.1f} "
              f"| {matmul:.1f} | {100 * gflops / matmul:.0f}% |")


if __name__ == "__main__":
    main()
