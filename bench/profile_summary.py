#!/usr/bin/env python3
"""Sums a LibTorch Chrome trace (pelab bench --profile FILE) by op: exclusive milliseconds per
training step (time in the op minus time in the ops it called), largest first.
Usage: bench/profile_summary.py FILE [steps=3] [top=30]"""
import collections
import json
import sys


def load_events(path):
    with open(path) as f:
        text = f.read().rstrip().rstrip(",")
    if not text.endswith("]"):
        text += "]"
    return [e for e in json.loads(text) if e.get("ph") == "X"]


def main():
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    by_thread = collections.defaultdict(list)
    for e in load_events(path):
        by_thread[e.get("tid")].append(e)
    exclusive, calls = collections.Counter(), collections.Counter()
    total = 0.0
    for events in by_thread.values():
        events.sort(key=lambda e: (e["ts"], -e["dur"]))
        child_time = [0.0] * len(events)
        stack = []  # indices of open events
        for i, e in enumerate(events):
            while stack and events[stack[-1]]["ts"] + events[stack[-1]]["dur"] <= e["ts"]:
                stack.pop()
            if stack:
                child_time[stack[-1]] += e["dur"]
            else:
                total += e["dur"]
            stack.append(i)
        for i, e in enumerate(events):
            exclusive[e["name"]] += e["dur"] - child_time[i]
            calls[e["name"]] += 1
    print(f"{'op':48} {'ms/step':>9} {'calls/step':>10} {'share':>6}")
    for name, us in exclusive.most_common(top):
        print(f"{name[:48]:48} {us / 1000 / steps:9.2f} {calls[name] / steps:10.1f} "
              f"{100 * us / max(total, 1e-9):5.1f}%")
    print(f"{'total (top-level ops)':48} {total / 1000 / steps:9.2f}")


if __name__ == "__main__":
    main()
