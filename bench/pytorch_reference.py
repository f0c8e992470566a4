#!/usr/bin/env python3
"""The model `pelab bench` times, in PyTorch eager, timed the same way: the yardstick of
docs/PERFORMANCE.md. Reads the same TOML config (with the same key=value overrides), builds the
same architecture (pre-LN blocks, the PE, the mask, the pooling; MLA with decoupled RoPE), trains
it with AdamW on batches of train.batch_size and evaluates it without gradients, then prints

  {"train_samples_per_s":..,"eval_samples_per_s":..,"model_gflop_per_sample":..,"gflop_per_s":..,
   "eval_gflop_per_s":..,"matmul_gflop_per_s":..,"pe":..,"threads":..,"implementation":"pytorch"}

Run it with Debian's python3-torch: /usr/bin/python3 bench/pytorch_reference.py --config F
[key=value ...]. It uses as many intra-op threads as pelab would (train.threads; 0 = all cores),
whereas Debian's PyTorch starts with one. PEs: nope, sinusoidal, learned, relative, t5, alibi,
rope, rope_abs, mla. train.precision=bf16 runs PyTorch's mixed precision as a user would switch
it on: forward and loss under torch.autocast("cpu", dtype=torch.bfloat16), float32 weights and
AdamW (the JSON then says "precision": "bf16").
"""
import contextlib
import argparse
import json
import math
import os
import sys
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULTS = {
    "model": dict(pe="rope", d_model=256, n_heads=16, n_layers=6, d_ff=512, dropout=0.1,
                  attention_dropout=0.1, activation="relu", final_norm=True, mask="padding",
                  kv_source="residual", pooling="valid", sinusoidal_base=10000.0,
                  rope_base=10000.0, rotary_heads=-1, rotary_fraction=1.0,
                  alibi_slopes="standard", t5_num_buckets=32, t5_max_distance=128,
                  mla_kv_latent=128, mla_q_latent=128, mla_rope_dim=16,
                  mla_shared_rotary_query=False, fused_attention=True, onednn_linear=True),
    "task": dict(name="distance", vocab_size=1000, samples=20000, seq_len=128, seed=0,
                 distance_left_min=1, distance_left_max=25, distance_between_min=1,
                 distance_between_max=70, distance_right_min=1, distance_right_max=25,
                 count_min=0, count_max=100, count_length=120),
    "train": dict(batch_size=512, eval_batch_size=0, lr=1e-4, weight_decay=1e-5, beta1=0.98,
                  beta2=0.9, grad_clip=0.0, seed=0, threads=0, precision="fp32"),
}


def load_config(path, overrides):
    config = {section: dict(values) for section, values in DEFAULTS.items()}
    if path:
        with open(path, "rb") as f:
            for section, values in tomllib.load(f).items():
                config[section].update(values)
    for item in overrides:
        key, _, text = item.partition("=")
        section, _, name = key.partition(".")
        if section not in config or name not in config[section]:
            sys.exit(f"pytorch_reference: unknown key '{key}'")
        old = config[section][name]
        if isinstance(old, bool):
            value = text == "true"
        elif isinstance(old, int):
            value = int(text)
        elif isinstance(old, float):
            value = float(text)
        else:
            value = text
        config[section][name] = value
    return config


def num_classes(task):  # as pelab's num_classes (src/config/config.cpp)
    if task["name"] == "count":
        return task["count_max"] + 1
    return task["distance_between_max"] + 2


# ---- positional encodings (docs/PE.md) -------------------------------------------------------

def sinusoidal_table(length, d, base):
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    i = torch.arange((d + 1) // 2, dtype=torch.float64).unsqueeze(0)
    angle = position * torch.pow(base, -2.0 * i / d)
    return torch.stack([angle.sin(), angle.cos()], -1).flatten(1)[:, :d].float().contiguous()


def rope_frequencies(rotary_dims, base):
    t = torch.arange(rotary_dims // 2, dtype=torch.float64)
    return torch.pow(base, -2.0 * t / rotary_dims)


def apply_rotary(x, cos, sin):
    """Pairs (2t, 2t+1) of the first 2 * cos.size(-1) dims rotate by the position's angle."""
    pairs = cos.size(-1)
    rotary = 2 * pairs
    pair_view = x[..., :rotary].reshape(*x.shape[:-1], pairs, 2)
    x0, x1 = pair_view[..., 0], pair_view[..., 1]
    y = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)
    return y if rotary == x.size(-1) else torch.cat([y, x[..., rotary:]], -1)


def alibi_slopes(heads, rule):
    if rule == "paper":
        return [math.exp(-h / heads) for h in range(heads)]
    def power_of_two(n):
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]
    n = 1
    while n * 2 <= heads:
        n *= 2
    slopes, extra = power_of_two(n), power_of_two(2 * n)
    slopes += extra[0::2][: heads - n]
    return slopes


def t5_bucket(relative, bidirectional, buckets, max_distance):
    bucket = 0
    if bidirectional:
        buckets //= 2
        bucket = buckets if relative > 0 else 0
        n = abs(relative)
    else:
        n = max(-relative, 0)
    exact = buckets // 2
    if n < exact:
        return bucket + n
    scaled = math.log(n / exact) / math.log(max_distance / exact) * (buckets - exact)
    return bucket + min(exact + int(scaled), buckets - 1)


class PositionalEncoding(nn.Module):
    def __init__(self, m, max_len):
        super().__init__()
        self.name = m["pe"]
        heads, d = m["n_heads"], m["d_model"]
        head_dim = d // heads
        self.embedding_table = None
        if self.name in ("sinusoidal", "rope_abs"):
            self.register_buffer("embedding_table", sinusoidal_table(max_len, d,
                                                                     m["sinusoidal_base"]))
        elif self.name == "learned":
            self.embedding_table = nn.Parameter(torch.randn(max_len, d) * 0.02)
        self.rotated_heads = 0
        if self.name in ("rope", "rope_abs"):
            self.rotated_heads = heads if m["rotary_heads"] < 0 else m["rotary_heads"]
            dims = int(head_dim * m["rotary_fraction"]) // 2 * 2
            self.theta = rope_frequencies(dims, m["rope_base"])
        elif self.name == "mla":
            self.theta = rope_frequencies(m["mla_rope_dim"], m["rope_base"])
        if self.name == "alibi":
            self.register_buffer("slopes", torch.tensor(alibi_slopes(heads, m["alibi_slopes"])))
        elif self.name == "relative":
            self.max_len = max_len
            self.table = nn.Parameter(torch.zeros(m["n_layers"], heads, 2 * max_len - 1))
        elif self.name == "t5":
            bidirectional = m["mask"] != "causal"
            index = [[t5_bucket(j - i, bidirectional, m["t5_num_buckets"],
                                m["t5_max_distance"]) for j in range(max_len)]
                     for i in range(max_len)]
            self.register_buffer("bucket_index", torch.tensor(index))
            self.table = nn.Parameter(torch.zeros(m["n_layers"], heads, m["t5_num_buckets"]))

    def embedding(self, length):
        return None if self.embedding_table is None else self.embedding_table[:length]

    def rotate(self, q, k, positions):
        if self.name not in ("rope", "rope_abs", "mla"):
            return q, k
        angles = positions.double().unsqueeze(1) * self.theta.unsqueeze(0)
        cos, sin = angles.cos().float(), angles.sin().float()
        def one(x):
            r = min(self.rotated_heads, x.size(1)) if self.name != "mla" else x.size(1)
            if r == x.size(1):
                return apply_rotary(x, cos, sin)
            return torch.cat([apply_rotary(x[:, :r], cos, sin), x[:, r:]], 1)
        return one(q), one(k)

    def bias(self, length, layer):
        if self.name == "alibi":
            pos = torch.arange(length, dtype=torch.float32)
            distance = (pos.unsqueeze(1) - pos.unsqueeze(0)).abs()
            return -self.slopes.view(-1, 1, 1) * distance
        if self.name == "relative":
            pos = torch.arange(length)
            index = pos.unsqueeze(1) - pos.unsqueeze(0) + self.max_len - 1
            return self.table[layer][:, index]
        if self.name == "t5":
            return self.table[layer][:, self.bucket_index[:length, :length]]
        return None


# ---- the model ------------------------------------------------------------------------------

def split_heads(x, heads):
    b, l, d = x.shape
    return x.view(b, l, heads, d // heads).transpose(1, 2)


def attend(logits, values, mask, dropout, training):
    if mask is not None:
        logits = logits + mask
    probabilities = F.dropout(torch.softmax(logits, -1), dropout, training)
    mixed = probabilities @ values
    b, h, l, dv = mixed.shape
    return mixed.transpose(1, 2).reshape(b, l, h * dv)


class MultiHeadAttention(nn.Module):
    def __init__(self, m, pe):
        super().__init__()
        d = m["d_model"]
        self.heads, self.head_dim = m["n_heads"], d // m["n_heads"]
        self.dropout, self.pe = m["attention_dropout"], [pe]  # pe shared, not a submodule here
        self.query, self.key, self.value, self.output = (nn.Linear(d, d) for _ in range(4))

    def forward(self, queries_from, keys_from, mask, positions, layer):
        q = split_heads(self.query(queries_from), self.heads)
        k = split_heads(self.key(keys_from), self.heads)
        v = split_heads(self.value(keys_from), self.heads)
        q, k = self.pe[0].rotate(q, k, positions)
        logits = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        bias = self.pe[0].bias(q.size(2), layer)
        if bias is not None:
            logits = logits + bias
        return self.output(attend(logits, v, mask, self.dropout, self.training))


class RmsNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LatentAttention(nn.Module):
    def __init__(self, m, pe):
        super().__init__()
        d, heads = m["d_model"], m["n_heads"]
        self.heads, self.head_dim, self.rope_dim = heads, d // heads, m["mla_rope_dim"]
        self.shared = m["mla_shared_rotary_query"]
        self.dropout, self.pe = m["attention_dropout"], [pe]
        inner, c = heads * self.head_dim, m["mla_kv_latent"]
        self.kv_down, self.kv_norm = nn.Linear(d, c), RmsNorm(c)
        self.key_up = nn.Linear(c, inner, bias=False)
        self.value_up = nn.Linear(c, inner, bias=False)
        self.key_rope = nn.Linear(d, self.rope_dim, bias=False)
        query_in = d
        self.query_down = None
        if m["mla_q_latent"] > 0:
            self.query_down = nn.Linear(d, m["mla_q_latent"])
            self.query_norm = RmsNorm(m["mla_q_latent"])
            query_in = m["mla_q_latent"]
        self.query_up = nn.Linear(query_in, inner, bias=False)
        self.query_rope = nn.Linear(query_in, (1 if self.shared else heads) * self.rope_dim,
                                    bias=False)
        self.output = nn.Linear(inner, d)

    def forward(self, queries_from, keys_from, mask, positions, layer):
        latent = self.kv_norm(self.kv_down(keys_from))
        k_content = split_heads(self.key_up(latent), self.heads)
        v = split_heads(self.value_up(latent), self.heads)
        k_rotary = self.key_rope(keys_from).unsqueeze(1)
        source = queries_from
        if self.query_down is not None:
            source = self.query_norm(self.query_down(queries_from))
        q_content = split_heads(self.query_up(source), self.heads)
        q_rotary = split_heads(self.query_rope(source), 1 if self.shared else self.heads)
        q_rotary, k_rotary = self.pe[0].rotate(q_rotary, k_rotary, positions)
        logits = q_content @ k_content.transpose(-2, -1) + q_rotary @ k_rotary.transpose(-2, -1)
        logits = logits / math.sqrt(self.head_dim + self.rope_dim)
        return self.output(attend(logits, v, mask, self.dropout, self.training))


class Block(nn.Module):
    def __init__(self, m, pe):
        super().__init__()
        d = m["d_model"]
        self.attention_norm, self.ffn_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = (LatentAttention if m["pe"] == "mla" else MultiHeadAttention)(m, pe)
        self.ffn_in, self.ffn_out = nn.Linear(d, m["d_ff"]), nn.Linear(m["d_ff"], d)
        self.keys_from_embeddings = m["kv_source"] == "embedding"
        self.gelu, self.dropout = m["activation"] == "gelu", m["dropout"]

    def forward(self, x, embeddings, mask, positions, layer):
        normed = self.attention_norm(x)
        keys_from = embeddings if self.keys_from_embeddings else normed
        h = x + F.dropout(self.attention(normed, keys_from, mask, positions, layer), self.dropout,
                          self.training)
        f = self.ffn_in(self.ffn_norm(h))
        f = F.gelu(f) if self.gelu else F.relu(f)
        return h + F.dropout(self.ffn_out(f), self.dropout, self.training)


class Transformer(nn.Module):
    def __init__(self, m, vocab, classes, max_len):
        super().__init__()
        self.m = m
        self.pe = PositionalEncoding(m, max_len)
        self.token_embedding = nn.Embedding(vocab, m["d_model"])
        self.blocks = nn.ModuleList(Block(m, self.pe) for _ in range(m["n_layers"]))
        self.final_norm = nn.LayerNorm(m["d_model"]) if m["final_norm"] else None
        self.classifier = nn.Linear(m["d_model"], classes)

    def forward(self, tokens, lengths):
        b, length = tokens.shape
        x = self.token_embedding(tokens)
        absolute = self.pe.embedding(length)
        if absolute is not None:
            x = x + absolute.unsqueeze(0)
        x = F.dropout(x, self.m["dropout"], self.training)
        embeddings = x
        valid = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
        mask = None
        if self.m["mask"] == "padding":
            mask = torch.zeros(b, length).masked_fill(~valid, float("-inf")).view(b, 1, 1, length)
        elif self.m["mask"] == "causal":
            mask = torch.full((length, length), float("-inf")).triu(1).view(1, 1, length, length)
        positions = torch.arange(length)
        for layer, block in enumerate(self.blocks):
            x = block(x, embeddings, mask, positions, layer)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.m["pooling"] == "valid":
            weights = valid.float().unsqueeze(2)
            pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        else:
            pooled = x.mean(1)
        return self.classifier(pooled)


# ---- FLOPs and timing (as src/bench/bench.cpp) ----------------------------------------------

def model_forward_flops(config):
    m, L = config["model"], float(config["task"]["seq_len"])
    d, heads = float(m["d_model"]), float(m["n_heads"])
    head_dim = float(m["d_model"] // m["n_heads"])
    def linear(n_in, n_out):
        return 2.0 * L * n_in * n_out
    per_layer = linear(d, m["d_ff"]) + linear(m["d_ff"], d)
    if m["pe"] == "mla":
        inner, rope, c = heads * head_dim, float(m["mla_rope_dim"]), float(m["mla_kv_latent"])
        query_in = float(m["mla_q_latent"]) if m["mla_q_latent"] > 0 else d
        per_layer += linear(d, c) + 2 * linear(c, inner) + linear(d, rope)
        if m["mla_q_latent"] > 0:
            per_layer += linear(d, query_in)
        per_layer += (linear(query_in, inner) +
                      linear(query_in, (1.0 if m["mla_shared_rotary_query"] else heads) * rope) +
                      linear(inner, d))
        per_layer += 2.0 * heads * L * L * (head_dim + rope) + 2.0 * heads * L * L * head_dim
    else:
        per_layer += 4 * linear(d, d) + 2 * (2.0 * heads * L * L * head_dim)
    return m["n_layers"] * per_layer + 2.0 * d * num_classes(config["task"])


def samples_per_second(step, warmup, min_steps, min_seconds):
    for i in range(warmup):
        step(i)
    start, samples, steps = time.perf_counter(), 0, 0
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        samples += step(warmup + steps)
        steps += 1
    return samples / (time.perf_counter() - start)


def make_batches(config, count):
    """Token batches shaped like the distance task: right-padded sequences whose lengths follow
    the generator's (left + between + right + 2 triggers). The cost does not depend on the
    token values."""
    task = config["task"]
    g = torch.Generator().manual_seed(task["seed"])
    L = task["seq_len"]
    def uniform(lo, hi):
        return torch.randint(lo, hi + 1, (count,), generator=g)
    if task["name"] == "distance":
        lengths = (uniform(task["distance_left_min"], task["distance_left_max"]) +
                   uniform(task["distance_between_min"], task["distance_between_max"]) +
                   uniform(task["distance_right_min"], task["distance_right_max"]) + 2)
    else:
        lengths = torch.full((count,), task["count_length"])
    lengths = lengths.clamp(max=L)
    tokens = torch.randint(1, task["vocab_size"], (count, L), generator=g)
    tokens = tokens * (torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1))
    labels = torch.randint(0, num_classes(task), (count,), generator=g)
    return tokens, lengths, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--min-steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="(always JSON; accepted for symmetry)")
    args = parser.parse_intermixed_args()
    config = load_config(args.config, args.overrides)
    m, task, train = config["model"], config["task"], config["train"]
    threads = train["threads"] if train["threads"] > 0 else os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(train["seed"])
    batch_size = train["batch_size"]
    eval_batch = train["eval_batch_size"] or batch_size
    tokens, lengths, labels = make_batches(config, max(task["samples"], batch_size, eval_batch))
    n = tokens.size(0)
    def batch_at(step, size):
        rows = torch.arange(step * size, (step + 1) * size) % n
        return tokens[rows], lengths[rows], labels[rows]

    classes, gflop = num_classes(task), model_forward_flops(config) / 1e9
    model = Transformer(m, task["vocab_size"], classes, task["seq_len"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=train["lr"],
                                  betas=(train["beta1"], train["beta2"]),
                                  weight_decay=train["weight_decay"])
    model.train()
    bf16 = train["precision"] == "bf16"
    def precision():
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    def train_step(step):
        x, lens, y = batch_at(step, batch_size)
        optimizer.zero_grad()
        with precision():
            loss = F.cross_entropy(model(x, lens), y)
        loss.backward()
        if train["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train["grad_clip"])
        optimizer.step()
        loss.item()
        return x.size(0)
    train_rate = samples_per_second(train_step, args.warmup, args.min_steps, args.seconds)

    eval_model = Transformer(m, task["vocab_size"], classes, task["seq_len"]).eval()
    def eval_step(step):
        x, lens, y = batch_at(step, eval_batch)
        with torch.no_grad(), precision():
            eval_model(x, lens).argmax(1).eq(y).sum().item()
        return x.size(0)
    eval_rate = samples_per_second(eval_step, args.warmup, args.min_steps, args.seconds)

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    c = torch.empty(1024, 1024)
    for _ in range(3):
        torch.mm(a, b, out=c)
    start, products = time.perf_counter(), 0
    while products < 10 or time.perf_counter() - start < min(2.0, args.seconds):
        torch.mm(a, b, out=c)
        products += 1
    matmul = 2.0 * 1024 ** 3 * products / (time.perf_counter() - start) / 1e9

    print(json.dumps({"train_samples_per_s": train_rate, "eval_samples_per_s": eval_rate,
                      "model_gflop_per_sample": gflop, "gflop_per_s": 3 * gflop * train_rate,
                      "eval_gflop_per_s": gflop * eval_rate, "matmul_gflop_per_s": matmul,
                      "pe": m["pe"], "threads": threads, "implementation": "pytorch",
                      "precision": train["precision"]}))


if __name__ == "__main__":
    main()
