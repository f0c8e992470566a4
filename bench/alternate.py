#!/usr/bin/env python3
"""Two pelab binaries side by side: alternates them (A B, then B A, ...) over `pelab bench` on the
paper preset and prints each one's median samples/s and the per-round ratios B/A. The machine's
speed drifts within minutes, so only a comparison measured this way means anything
(docs/PERFORMANCE.md).
Usage: bench/alternate.py ROUNDS PES PRECISIONS BINARY_A,BINARY_B [PHASES] [CONFIG]
  e.g. bench/alternate.py 3 rope,alibi bf16,fp32 /tmp/pelab-old,build/pelab train,eval"""
import json
import statistics
import subprocess
import sys


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    pes, precisions, binaries = (a.split(",") for a in sys.argv[2:5])
    phases = sys.argv[5] if len(sys.argv) > 5 else "train,eval"
    config = sys.argv[6] if len(sys.argv) > 6 else "configs/bench-paper.toml"
    if len(binaries) != 2:
        sys.exit("give exactly two binaries, comma-separated")
    results = {}
    for r in range(rounds):
        for pe in pes:
            for precision in precisions:
                for binary in binaries if r % 2 == 0 else binaries[::-1]:
                    out = subprocess.run(
                        [binary, "bench", "--config", config, f"model.pe={pe}",
                         f"train.precision={precision}", "--phases", phases, "--seconds", "3",
                         "--json"], capture_output=True, text=True, check=True).stdout
                    run = json.loads(out.strip().splitlines()[-1])
                    for phase in ("train", "eval"):
                        value = run.get(f"{phase}_samples_per_s", 0)
                        if value:
                            results.setdefault((pe, precision, phase, binary), []).append(value)
        print(f"round {r + 1} of {rounds} done", file=sys.stderr)
    a, b = binaries
    for pe in pes:
        for precision in precisions:
            for phase in ("train", "eval"):
                old, new = results.get((pe, precision, phase, a)), results.get((pe, precision, phase, b))
                if not old:
                    continue
                ratios = ", ".join(f"{y / x:.3f}" for x, y in zip(old, new))
                print(f"{pe} {precision} {phase}: A {statistics.median(old):.1f}  "
                      f"B {statistics.median(new):.1f}  B/A per round {ratios}")


if __name__ == "__main__":
    main()
