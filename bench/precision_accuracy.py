#!/usr/bin/env python3
"""bf16 against float32 accuracy (docs/PERFORMANCE.md, "bf16 accuracy"): compares the reported
test accuracies of two reproduce plans that differ only in train.precision, read from the
experiment store, cell by cell (setup, experiment, PE, task) over their seeds.

Train both first (each resumable; re-run the same command after an interruption):
    build/pelab reproduce --scale bench/precision/small-task1-fp32.toml
    build/pelab reproduce --scale bench/precision/small-task1-bf16.toml
then:
    bench/precision_accuracy.py [--store runs/pelab.db] [--fp32 small-task1-fp32]
                                [--bf16 small-task1-bf16]

A cell is "within spread" when the difference of the two precisions' seed means is no larger
than the larger of the two seed ranges (max - min over seeds). Welch's t (the difference of the
means over its standard error, each precision's own variance) says how far apart the two are in
units of their seed noise: |t| above about 2.1 is a difference at the 5% level for ten seeds each."""
import argparse
import collections
import sqlite3
import statistics
import sys


def accuracies(store, plan):
    """{(setup, experiment, pe, task): {seed: (accuracy, epochs)}} of a plan's finished runs."""
    cells = collections.defaultdict(dict)
    rows = store.execute(
        "SELECT sweep, pe, task, seed, final_test_accuracy, epochs_done FROM runs "
        "WHERE sweep LIKE ? AND status = 'finished'", (plan + "-%",))
    for sweep, pe, task, seed, accuracy, epochs in rows:
        setup, experiment = sweep[len(plan) + 1:].split("-", 1)
        cells[(setup, experiment, pe, task)][seed] = (accuracy, epochs)
    return cells


def welch_t(a, b):
    """(mean(b) - mean(a)) / sqrt(var(a)/n_a + var(b)/n_b), or "-" when both vary by nothing."""
    if len(a) < 2 or len(b) < 2:
        return "-"
    error = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    return f"{(statistics.mean(b) - statistics.mean(a)) / error:+.1f}" if error > 0 else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="runs/pelab.db")
    parser.add_argument("--fp32", default="small-task1-fp32")
    parser.add_argument("--bf16", default="small-task1-bf16")
    args = parser.parse_args()
    store = sqlite3.connect(f"file:{args.store}?mode=ro", uri=True)
    fp32, bf16 = accuracies(store, args.fp32), accuracies(store, args.bf16)
    if not fp32 or not bf16:
        sys.exit(f"precision_accuracy: no finished runs of plan '{args.fp32 if not fp32 else args.bf16}'"
                 f" in {args.store}; train both plans first (see --help)")
    print("| setup | experiment | pe | task | fp32 (seeds; epochs) | bf16 (seeds; epochs) "
          "| fp32 mean (sd) | bf16 mean (sd) | bf16 - fp32 (means) | larger seed range "
          "| within spread? | Welch t |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | ---: | ---: | --- | ---: |")
    within, differences = 0, []
    for cell in sorted(fp32):
        if cell not in bf16 or set(fp32[cell]) != set(bf16[cell]):
            print(f"| {' | '.join(cell)} | missing in one plan | | | | |")
            continue
        seeds = sorted(fp32[cell])
        a = [fp32[cell][s][0] for s in seeds]
        b = [bf16[cell][s][0] for s in seeds]
        diff = statistics.mean(b) - statistics.mean(a)
        spread = max(max(a) - min(a), max(b) - min(b))
        ok = abs(diff) <= spread
        within += ok
        differences.append(abs(diff))

        def show(runs):
            return ", ".join(f"{runs[s][0]:.3f}" for s in seeds) + "; " + "/".join(
                str(runs[s][1]) for s in seeds)

        def mean_sd(values):
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.3f} ({sd:.3f})"

        print(f"| {' | '.join(cell)} | {show(fp32[cell])} | {show(bf16[cell])} | {mean_sd(a)} "
              f"| {mean_sd(b)} | {diff:+.3f} | {spread:.3f} | {'yes' if ok else '**no**'} "
              f"| {welch_t(a, b)} |")
    print(f"\n{within} of {len(differences)} cells within spread; mean |bf16 - fp32| "
          f"{statistics.mean(differences):.3f}, largest {max(differences):.3f}")


if __name__ == "__main__":
    main()
