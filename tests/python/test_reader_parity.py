#!/usr/bin/env python3
"""Parity of python/pelab_reader.py with pelab itself (CTest: python_reader_parity).

For every PE in both setups of the study (faithful: the authors' quirks; standard; the keys of
src/reproduce/plan.cpp setup_overrides) plus a few option variants, trains a tiny run, exports its
weights (`pelab export`) and its test split (`pelab data`), and checks that the reader's class
logits match `pelab predict --json` and its attention logits match `pelab logits --json
--matrices` within TOLERANCE. Also: the JSON-lines format, --split all, --config without a run,
the reader's T5 buckets and ALiBi slopes against docs/PE.md, and its refusal of an unknown PE.

    python3 tests/python/test_reader_parity.py --pelab build/pelab [--work DIR]

Fails (exit 1) when numpy is missing: the test must not pass by skipping.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:
    print("FAIL: numpy is missing; install Debian's python3-numpy (scripts/install-deps.sh does)")
    sys.exit(1)

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE_DIR, "python"))
import pelab_reader  # noqa: E402

TOLERANCE = 1e-4
SETUPS = {  # src/reproduce/plan.cpp setup_overrides
    "faithful": ["model.mask=none", "model.kv_source=embedding", "model.alibi_slopes=paper",
                 "model.pooling=all", "task.fillers_may_be_triggers=true"],
    "standard": ["model.mask=padding", "model.kv_source=residual", "model.alibi_slopes=standard",
                 "model.pooling=valid", "task.fillers_may_be_triggers=false"],
}
PES = ["nope", "sinusoidal", "learned", "relative", "t5", "alibi", "rope", "rope_abs", "mla"]
VARIANTS = [  # (name, pe, setup, extra overrides): options the plain cases leave at defaults
    ("rope-partial", "rope", "faithful", ["model.rotary_heads=2", "model.rotary_fraction=0.5"]),
    ("rope_abs-partial", "rope_abs", "standard", ["model.rotary_heads=3",
                                                  "model.rotary_fraction=0.5"]),
    ("mla-shared-q", "mla", "faithful", ["model.mla_shared_rotary_query=true",
                                         "model.mla_q_latent=0"]),
    ("t5-causal-gelu", "t5", "standard", ["model.mask=causal", "model.activation=gelu",
                                          "model.final_norm=false", "model.t5_num_buckets=8",
                                          "model.t5_max_distance=20"]),
    ("alibi-6-heads", "alibi", "standard", ["model.d_model=24", "model.n_heads=6"]),
]
# A few optimiser steps with a large learning rate, so that learned tables (relative, t5,
# learned) move away from their initial values and a wrong lookup would show.
TRAIN = ["task.samples=40", "train.epochs=1", "train.batch_size=4", "train.lr=0.01",
         "train.threads=1"]


def pelab(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pelab {' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r.stdout


def check_case(binary, work, index, name, overrides):
    run = os.path.join(work, name)
    shutil.rmtree(run, ignore_errors=True)
    pelab(binary, "train", "--config", os.path.join(SOURCE_DIR, "configs", "tiny.toml"),
          *overrides, *TRAIN, "--no-progress", "--out", run)
    export = os.path.join(run, "model.safetensors")
    test_rows = os.path.join(run, "test.safetensors")
    pelab(binary, "export", run, "--out", export)
    pelab(binary, "data", run, "--split", "test", "--out", test_rows)
    predicted = json.loads(pelab(binary, "predict", run, "--input", test_rows, "--json"))

    model = pelab_reader.load_model(export)
    data = pelab_reader.load_data(test_rows)
    logits, attention = model.forward(data["tokens"], data["lengths"], return_attention=True)
    pelab_logits = np.array(predicted["logits"])
    assert pelab_logits.shape == logits.shape, (pelab_logits.shape, logits.shape)
    class_error = float(np.max(np.abs(logits - pelab_logits)))

    attention_error = 0.0
    sample = index % len(data["tokens"])
    for layer in range(model.layers):
        head = (index + layer) % model.heads
        j = json.loads(pelab(binary, "logits", run, "--layer", str(layer), "--head", str(head),
                             "--sample", str(sample), "--positions", "all", "--json",
                             "--matrices", "--figure", "none"))
        matrix = np.array(j["logits"]["matrix"])
        mine = attention[layer][sample, head]
        assert matrix.shape == mine.shape, (matrix.shape, mine.shape)
        attention_error = max(attention_error, float(np.max(np.abs(matrix - mine))))
    scale = float(np.max(np.abs(logits)))
    return name, class_error, attention_error, scale


def check_formats(binary, work):
    """JSON lines and --split all give the same rows and logits; --config without a run too."""
    run = os.path.join(work, "sinusoidal-faithful")
    all_rows = os.path.join(work, "all.jsonl")
    pelab(binary, "data", run, "--split", "all", "--out", all_rows)
    rows = pelab_reader.load_data(all_rows)
    test = pelab_reader.load_data(os.path.join(run, "test.safetensors"))
    assert np.array_equal(rows["tokens"][rows["split"] == 1], test["tokens"]), "--split all"
    assert np.array_equal(rows["labels"][rows["split"] == 1], test["labels"])
    predicted = json.loads(pelab(binary, "predict", run, "--input", all_rows, "--json"))
    model = pelab_reader.load_model(os.path.join(run, "model.safetensors"),
                                    config=os.path.join(run, "config.toml"))
    error = np.max(np.abs(model.forward(rows["tokens"], rows["lengths"])
                          - np.array(predicted["logits"])))
    assert error < TOLERANCE, f"predict on JSON lines: {error}"
    from_config = os.path.join(work, "from-config.safetensors")
    pelab(binary, "data", "--config", os.path.join(SOURCE_DIR, "configs", "tiny.toml"),
          "model.pe=sinusoidal", *SETUPS["faithful"], *TRAIN, "--split", "test", "--out",
          from_config)
    again = pelab_reader.load_data(from_config)
    assert all(np.array_equal(again[k], test[k]) for k in ("tokens", "lengths", "labels"))


def check_definitions(work):
    """The reader's own tables against docs/PE.md, and its refusal of a PE it does not know."""
    buckets = [pelab_reader.t5_bucket(r, True, 32, 128) for r in (0, -1, 1, -7, -8, -16, -20,
                                                                   -200, 200)]
    assert buckets == [0, 1, 17, 7, 8, 10, 10, 15, 31], buckets
    slopes = pelab_reader.alibi_slopes(12, "standard")
    expected = [2.0 ** -k for k in range(1, 9)] + [2.0 ** -k for k in (0.5, 1.5, 2.5, 3.5)]
    assert np.allclose(slopes, expected, rtol=0, atol=1e-15), slopes
    assert np.allclose(pelab_reader.alibi_slopes(16, "paper")[[0, 15]], [1.0, np.exp(-15 / 16)])
    export = os.path.join(work, "nope-standard", "model.safetensors")
    weights, metadata = pelab_reader.read_safetensors(export)
    import tomllib
    config = tomllib.loads(metadata["config_toml"])
    config["model"]["pe"] = "xpos"
    try:
        pelab_reader.Model(weights, config)
    except NotImplementedError as e:
        assert "pelab_reader does not implement PE 'xpos'" in str(e), str(e)
    else:
        raise AssertionError("an unknown PE was accepted")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pelab", required=True, help="the pelab binary")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="pelab_reader_parity_")
    os.makedirs(work, exist_ok=True)
    cases = [(f"{pe}-{setup}", [f"model.pe={pe}", *SETUPS[setup]])
             for pe in PES for setup in SETUPS]
    cases += [(name, [f"model.pe={pe}", *SETUPS[setup], *extra])
              for name, pe, setup, extra in VARIANTS]
    start = time.time()
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(check_case, args.pelab, work, i, name, overrides)
                   for i, (name, overrides) in enumerate(cases)]
        for future in futures:
            name, class_error, attention_error, scale = future.result()
            ok = class_error < TOLERANCE and attention_error < TOLERANCE
            print(f"{'ok  ' if ok else 'FAIL'} {name:<22} class logits max |diff| "
                  f"{class_error:.2e} (max |logit| {scale:.2f}), attention logits "
                  f"{attention_error:.2e}")
            if not ok:
                failures.append(name)
    check_formats(args.pelab, work)
    check_definitions(work)
    print(f"{len(cases) - len(failures)} passed, {len(failures)} failed "
          f"(tolerance {TOLERANCE}; {time.time() - start:.1f} s)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
