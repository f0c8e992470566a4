#!/usr/bin/env python3
"""bf16 against float32 accuracy (docs/PERFORMANCE.md): trains the small reproduction's runs
(configs/reproduce/small.toml: its base config, its [set] overrides, its seeds) for a choice of
PEs, tasks and setups, once with train.precision=fp32 and once with bf16, and prints the final
test accuracies, their difference and the spread between the seeds. Resumable: finished runs
are read back, unfinished ones resumed.

Usage: bench/precision_accuracy.py [build/pelab] [--out DIR] [--pes rope alibi] [--tasks ...]
[--setups standard faithful]"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tomllib

SETUPS = {  # src/reproduce/plan.cpp setup_overrides
    "faithful": ["model.mask=none", "model.kv_source=embedding", "model.alibi_slopes=paper",
                 "model.pooling=all", "task.fillers_may_be_triggers=true"],
    "standard": ["model.mask=padding", "model.kv_source=residual", "model.alibi_slopes=standard",
                 "model.pooling=valid", "task.fillers_may_be_triggers=false"],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pelab", nargs="?", default="build/pelab")
    parser.add_argument("--plan", default="configs/reproduce/small.toml")
    parser.add_argument("--out", default="runs/precision_accuracy")
    parser.add_argument("--pes", nargs="+", default=["rope", "alibi"])
    parser.add_argument("--tasks", nargs="+", default=["distance", "count"])
    parser.add_argument("--setups", nargs="+", default=["standard", "faithful"])
    args = parser.parse_args()
    with open(args.plan, "rb") as f:
        plan = tomllib.load(f)
    base = os.path.normpath(os.path.join(os.path.dirname(args.plan), plan["base"]))
    fixed = [f"{k}={json.dumps(v) if isinstance(v, bool) else v}".replace('"', "")
             for k, v in plan.get("set", {}).items()]
    seeds = plan.get("seeds", [0])
    cells = [(s, t, p) for s in args.setups for t in args.tasks for p in args.pes]
    runs = [(c, seed, precision) for c in cells for seed in seeds for precision in ("fp32", "bf16")]
    accuracy = {}
    for i, ((setup, task, pe), seed, precision) in enumerate(runs):
        folder = os.path.join(args.out, f"{setup}-{task}-{pe}-seed{seed}-{precision}")
        metrics = os.path.join(folder, "metrics.json")
        epochs = int(dict(item.split("=", 1) for item in fixed).get("train.epochs", 0)) or None
        history = json.load(open(metrics)) if os.path.exists(metrics) else []
        if not history or (epochs and len(history) < epochs):
            print(f"precision_accuracy: run {i + 1}/{len(runs)}: {folder}", file=sys.stderr)
            if os.path.exists(os.path.join(folder, "checkpoint.pt")):
                command = [args.pelab, "train", "--resume", folder, "--no-progress"]
            else:
                command = [args.pelab, "train", "--config", base, "--out", folder, "--no-progress",
                           *fixed, *SETUPS[setup], f"task.name={task}", f"model.pe={pe}",
                           f"train.seed={seed}", f"train.precision={precision}"]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            history = json.load(open(metrics))
        accuracy[(setup, task, pe, seed, precision)] = history[-1]["test_accuracy"]

    print("| setup | task | pe | fp32 accuracy (seeds) | bf16 accuracy (seeds) "
          "| mean bf16 - fp32 | fp32 seed spread | within spread? |")
    print("| --- | --- | --- | --- | --- | ---: | ---: | --- |")
    for setup, task, pe in cells:
        fp32 = [accuracy[(setup, task, pe, s, "fp32")] for s in seeds]
        bf16 = [accuracy[(setup, task, pe, s, "bf16")] for s in seeds]
        diff = statistics.mean(bf16) - statistics.mean(fp32)
        spread = max(fp32) - min(fp32)
        print(f"| {setup} | {task} | {pe} | {', '.join(f'{a:.3f}' for a in fp32)} "
              f"| {', '.join(f'{a:.3f}' for a in bf16)} | {diff:+.3f} | {spread:.3f} "
              f"| {'yes' if abs(diff) <= spread else 'no'} |")


if __name__ == "__main__":
    main()
