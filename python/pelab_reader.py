#!/usr/bin/env python3
"""pelab_reader: pelab's models and data in plain numpy (no torch, no safetensors package).

Loads the weights `pelab export RUN --out model.safetensors` writes and the configuration stored
in them (or a run's config.toml), rebuilds the forward pass in float64 for every positional
encoding pelab has (nope, sinusoidal, learned, relative, t5, alibi, rope, rope_abs, mla) and every
setup (model.mask, model.kv_source, model.pooling, model.alibi_slopes, ...), and returns the class
logits and each layer's attention logits. Reads the files of `pelab data` (safetensors or JSON
lines). Usage: docs/CHECKPOINTS.md ("Python"); the equations: docs/PE.md.

    import pelab_reader as pr
    model = pr.load_model("model.safetensors")          # or config="runs/x/config.toml"
    data = pr.load_data("test.safetensors")             # tokens, lengths, labels (, split)
    logits = model.forward(data["tokens"], data["lengths"])             # [N, classes]
    logits, attention = model.forward(data["tokens"], data["lengths"], return_attention=True)
    attention[layer]                                    # [N, heads, L, L], before the mask

Needs Python >= 3.11 (tomllib) and numpy. The C++ model is the reference: src/model, src/pe.
"""

import json
import math
import sys
import tomllib

import numpy as np

IMPLEMENTED_PES = ("nope", "sinusoidal", "learned", "relative", "t5", "alibi", "rope",
                   "rope_abs", "mla")
# Options of newer pelab versions that change the forward pass: refused unless at this value.
UNIMPLEMENTED_OPTIONS = {"rope_scaling": "none"}
LAYER_NORM_EPS = 1e-5  # torch::nn::LayerNorm's default
RMS_NORM_EPS = 1e-6    # src/model/mla.h

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "BOOL": "?", "BF16": "<u2"}


class ReaderError(Exception):
    """A file or configuration the reader cannot use; the message names it and what is accepted."""


# ----------------------------------------------------------------------------------------------
# Files


def read_safetensors(path):
    """Returns ({name: ndarray}, {metadata key: str}) of a safetensors file, parsed by hand:
    an 8-byte little-endian header length, a JSON header, raw little-endian row-major buffers."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ReaderError(f"{path}: {len(blob)} bytes, too short for a safetensors file")
    header_len = int.from_bytes(blob[:8], "little")
    if header_len > len(blob) - 8:
        raise ReaderError(f"{path}: header length {header_len} runs beyond the file "
                          f"({len(blob)} bytes); truncated or not safetensors")
    try:
        header = json.loads(blob[8:8 + header_len])
    except ValueError as e:
        raise ReaderError(f"{path}: header is not valid JSON ({e})") from e
    data = memoryview(blob)[8 + header_len:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, entry in header.items():
        dtype = entry.get("dtype")
        if dtype not in _DTYPES:
            raise ReaderError(f"{path}: tensor '{name}' has dtype {dtype!r}; accepted: "
                              + ", ".join(_DTYPES))
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(o) for o in entry["data_offsets"])
        item = np.dtype(_DTYPES[dtype]).itemsize
        if not 0 <= begin <= end <= len(data) or end - begin != item * math.prod(shape):
            raise ReaderError(f"{path}: tensor '{name}': data_offsets [{begin}, {end}] do not fit "
                              f"dtype {dtype} shape {list(shape)} in {len(data)} data bytes")
        array = np.frombuffer(data[begin:end], dtype=_DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":  # the upper half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array.copy()
    return tensors, metadata


def load_data(path):
    """The rows of a `pelab data` file (.safetensors or .jsonl) as a dict of int64 arrays:
    tokens [N, L], lengths [N], and labels [N] and split [N] (0 train, 1 test) when present."""
    path = str(path)
    if path.endswith(".safetensors"):
        tensors, _ = read_safetensors(path)
        rows = {k: v.astype(np.int64) for k, v in tensors.items()}
    elif path.endswith(".jsonl"):
        lines = [json.loads(text) for text in open(path, encoding="utf-8") if text.strip()]
        rows = {"tokens": np.array([r["tokens"] for r in lines], dtype=np.int64),
                "lengths": np.array([r.get("length", len(r["tokens"])) for r in lines], np.int64)}
        if lines and "label" in lines[0]:
            rows["labels"] = np.array([r["label"] for r in lines], dtype=np.int64)
        if lines and "split" in lines[0]:
            rows["split"] = np.array([r["split"] == "test" for r in lines], dtype=np.int64)
    else:
        raise ReaderError(f"{path}: unknown extension; accepted: .safetensors, .jsonl")
    if "tokens" not in rows or rows["tokens"].ndim != 2:
        raise ReaderError(f"{path}: no tokens [N, L]")
    rows.setdefault("lengths", np.full(len(rows["tokens"]), rows["tokens"].shape[1], np.int64))
    return rows


# ----------------------------------------------------------------------------------------------
# Positional encodings (docs/PE.md; each function mirrors one src/pe file)


def sinusoidal_table(length, d_model, base):
    """P[i, 2t] = sin(i / base^(2t/d)), P[i, 2t+1] = cos(i / base^(2t/d)) (interleaved)."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    t = np.arange((d_model + 1) // 2, dtype=np.float64)[None, :]
    angle = pos * np.power(base, -2.0 * t / d_model)
    return np.stack([np.sin(angle), np.cos(angle)], -1).reshape(length, -1)[:, :d_model]


def alibi_slopes(heads, rule):
    """standard: 2^(-8(h+1)/H) (non-powers of two as in ALiBi's get_slopes); paper: exp(-h/H)."""
    if rule == "paper":
        return np.exp(-np.arange(heads, dtype=np.float64) / heads)
    if rule != "standard":
        raise ReaderError(f"model.alibi_slopes = {rule!r}; accepted: standard, paper")
    n = 1
    while n * 2 <= heads:
        n *= 2
    power = [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]
    extra = [2.0 ** (-8.0 * (h + 1) / (2 * n)) for h in range(2 * n)][0::2]
    return np.array(power + extra[:heads - n], dtype=np.float64)


def t5_bucket(relative_position, bidirectional, num_buckets, max_distance):
    """Hugging Face T5's bucket of r = j - i, in float32 like the reference (src/pe/t5.cpp)."""
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        if relative_position > 0:
            bucket += num_buckets
        n = abs(relative_position)
    else:
        n = max(-relative_position, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    f32 = np.float32
    scaled = (np.log(f32(n) / f32(max_exact)) / f32(math.log(max_distance / max_exact))
              * f32(num_buckets - max_exact))
    return bucket + min(max_exact + int(scaled), num_buckets - 1)


def rotary_dims(model):
    """2 floor(rotary_fraction d_h / 2), at most d_h (src/config/config.cpp rotary_dims)."""
    head_dim = model["d_model"] // model["n_heads"]
    pairs = math.floor(model["rotary_fraction"] * head_dim / 2.0 + 1e-9)
    return 2 * min(pairs, head_dim // 2)


def rotate(x, theta):
    """RoPE on x [..., L, D] at positions 0..L-1: pair t = dims (2t, 2t+1), angle i theta_t;
    only the first 2 len(theta) dims rotate."""
    pairs = len(theta)
    if pairs == 0:
        return x
    length = x.shape[-2]
    angle = np.arange(length, dtype=np.float64)[:, None] * theta[None, :]  # [L, pairs]
    cos, sin = np.cos(angle), np.sin(angle)
    x0, x1 = x[..., 0:2 * pairs:2], x[..., 1:2 * pairs:2]
    y = np.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).reshape(*x.shape[:-1], 2 * pairs)
    return np.concatenate([y, x[..., 2 * pairs:]], -1)


def rope_theta(rotary, base):
    return np.power(float(base), -2.0 * np.arange(rotary // 2, dtype=np.float64) / rotary)


# ----------------------------------------------------------------------------------------------
# The model (src/model/transformer.cpp, attention.cpp, mla.cpp)


def layer_norm(x, w, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * w + b


def rms_norm(x, w):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + RMS_NORM_EPS) * w


_erf = np.vectorize(math.erf, otypes=[np.float64])


def split_heads(x, heads):
    """[B, L, H D] -> [B, H, L, D]"""
    b, length, width = x.shape
    return x.reshape(b, length, heads, width // heads).transpose(0, 2, 1, 3)


def softmax(x):
    top = np.max(x, -1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(x - top)
    return e / e.sum(-1, keepdims=True)


class Model:
    """A pelab classifier in numpy float64. `config` is the run's configuration as a dict
    (sections model, task, train); `weights` the exported tensors by name."""

    def __init__(self, weights, config):
        self.config = config
        m, t = config["model"], config["task"]
        self.m = m
        self.pe = m["pe"]
        if self.pe not in IMPLEMENTED_PES:
            raise NotImplementedError(
                f"pelab_reader does not implement PE {self.pe!r}; implemented: "
                + ", ".join(IMPLEMENTED_PES) + " (src/pe has the C++ definition)")
        accepted = {"mask": ("none", "padding", "causal"), "kv_source": ("residual", "embedding"),
                    "pooling": ("valid", "all"), "activation": ("relu", "gelu")}
        for key, value in UNIMPLEMENTED_OPTIONS.items():
            if m.get(key, value) != value:
                raise NotImplementedError(f"pelab_reader does not implement model.{key} = "
                                          f"{m[key]!r}; implemented: {value!r}")
        for key, values in accepted.items():
            if m[key] not in values:
                raise NotImplementedError(f"pelab_reader does not implement model.{key} = "
                                          f"{m[key]!r}; implemented: {', '.join(values)}")
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.heads, self.layers = m["n_heads"], m["n_layers"]
        self.head_dim = m["d_model"] // self.heads
        self.max_len = t["seq_len"]
        self.vocab_size = t["vocab_size"]
        self._used = set()
        self._build_pe()
        # One forward pass on a single pad token reads every tensor the model uses; a tensor left
        # over belongs to something this reader does not know and would silently be ignored.
        self.forward(np.zeros((1, 1), np.int64), np.ones(1, np.int64))
        unused = sorted(set(self.w) - self._used)
        if unused:
            raise ReaderError("the export holds tensors pelab_reader does not use: "
                              + ", ".join(unused) + " (a newer pelab? the numbers would be wrong)")

    def _get(self, name):
        if name not in self.w:
            raise ReaderError(f"the export has no tensor '{name}' (model.pe = {self.pe})")
        self._used.add(name)
        return self.w[name]

    def _build_pe(self):
        m, pe = self.m, self.pe
        self.absolute = None  # [max_len, d] added to the embeddings
        self.theta = None     # RoPE frequencies of the rotated heads
        if pe in ("sinusoidal", "rope_abs"):
            self.absolute = sinusoidal_table(self.max_len, m["d_model"], m["sinusoidal_base"])
            self._check_buffer("pe.table", self.absolute, 1e-6)
        if pe == "learned":
            self.absolute = self._get("pe.table")
        if pe in ("rope", "rope_abs"):
            self.rotated_heads = self.heads if m["rotary_heads"] < 0 else m["rotary_heads"]
            self.theta = rope_theta(rotary_dims(m), m["rope_base"])
        if pe == "mla":
            self.theta = rope_theta(m["mla_rope_dim"], m["rope_base"])
        if pe == "alibi":
            self.slopes = alibi_slopes(self.heads, m["alibi_slopes"])
            self._check_buffer("pe.slopes", self.slopes, 1e-12)
        if pe in ("relative", "t5"):
            self.bias_table = self._get("pe.table")  # [layers, H, K]

    def _check_buffer(self, name, expected, tolerance):
        """A fixed table exported by pelab must equal the one rebuilt from the configuration."""
        if name in self.w:
            self._used.add(name)
            got = self.w[name]
            if got.shape != expected.shape or np.max(np.abs(got - expected)) > tolerance:
                raise ReaderError(f"exported {name} differs from the one model.* describes")

    def bias(self, length, layer):
        """[H, L, L] added to the logits of `layer`, or None."""
        i = np.arange(length)[:, None]
        j = np.arange(length)[None, :]
        if self.pe == "alibi":
            return -self.slopes[:, None, None] * np.abs(i - j)[None]
        if self.pe == "relative":
            return self.bias_table[layer][:, i - j + self.max_len - 1]
        if self.pe == "t5":
            m = self.m
            buckets = np.array([[t5_bucket(int(c - r), m["mask"] != "causal", m["t5_num_buckets"],
                                           m["t5_max_distance"]) for c in range(length)]
                                for r in range(length)])
            return self.bias_table[layer][:, buckets]
        return None

    def linear(self, x, name, bias=True):
        y = x @ self._get(name + ".weight").T
        return y + self._get(name + ".bias") if bias else y

    def _standard_attention(self, prefix, queries_from, keys_from, layer):
        q = split_heads(self.linear(queries_from, prefix + "query"), self.heads)
        k = split_heads(self.linear(keys_from, prefix + "key"), self.heads)
        v = split_heads(self.linear(keys_from, prefix + "value"), self.heads)
        if self.theta is not None and self.rotated_heads > 0:
            r = self.rotated_heads
            q = np.concatenate([rotate(q[:, :r], self.theta), q[:, r:]], 1)
            k = np.concatenate([rotate(k[:, :r], self.theta), k[:, r:]], 1)
        logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(self.head_dim)
        bias = self.bias(q.shape[2], layer)
        if bias is not None:
            logits = logits + bias[None]
        return logits, v

    def _latent_attention(self, prefix, queries_from, keys_from):
        m, heads = self.m, self.heads
        latent_kv = rms_norm(self.linear(keys_from, prefix + "kv_down"),
                             self._get(prefix + "kv_norm.weight"))
        k_content = split_heads(self.linear(latent_kv, prefix + "key_up", False), heads)
        v = split_heads(self.linear(latent_kv, prefix + "value_up", False), heads)
        k_rotary = rotate(self.linear(keys_from, prefix + "key_rope", False)[:, None], self.theta)
        source = queries_from
        if m["mla_q_latent"] > 0:
            source = rms_norm(self.linear(queries_from, prefix + "query_down"),
                              self._get(prefix + "query_norm.weight"))
        q_content = split_heads(self.linear(source, prefix + "query_up", False), heads)
        rotary_queries = 1 if m["mla_shared_rotary_query"] else heads
        q_rotary = rotate(split_heads(self.linear(source, prefix + "query_rope", False),
                                      rotary_queries), self.theta)
        logits = (q_content @ k_content.transpose(0, 1, 3, 2)
                  + q_rotary @ k_rotary.transpose(0, 1, 3, 2))
        return logits / math.sqrt(self.head_dim + m["mla_rope_dim"]), v

    def forward(self, tokens, lengths, return_attention=False):
        """Class logits [N, classes] (float64) for tokens [N, L] and lengths [N]; with
        return_attention also a list of each layer's attention logits [N, H, L, L]: scaled
        q.k plus the PE's bias, before the mask and softmax (what `pelab logits` shows)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if tokens.ndim != 2 or lengths.shape != (tokens.shape[0],):
            raise ReaderError(f"tokens must be [N, L] and lengths [N]; got {tokens.shape} and "
                              f"{lengths.shape}")
        n, length = tokens.shape
        if length > self.max_len:
            raise ReaderError(f"{length} positions; the model covers 1..{self.max_len}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ReaderError(f"token ids must be in 0..{self.vocab_size - 1}")
        m = self.m
        x = self._get("token_embedding.weight")[tokens]
        if self.absolute is not None:
            x = x + self.absolute[:length][None]
        embeddings = x
        valid = np.arange(length)[None, :] < lengths[:, None]  # [N, L]
        if m["mask"] == "padding":
            mask = np.where(valid, 0.0, -np.inf)[:, None, None, :]
        elif m["mask"] == "causal":
            mask = np.triu(np.full((length, length), -np.inf), 1)[None, None]
        else:
            mask = 0.0
        attention = []
        for layer in range(self.layers):
            p = f"blocks.{layer}."
            normed = layer_norm(x, self._get(p + "attention_norm.weight"),
                                self._get(p + "attention_norm.bias"))
            keys_from = embeddings if m["kv_source"] == "embedding" else normed
            if self.pe == "mla":
                logits, v = self._latent_attention(p + "attention.", normed, keys_from)
            else:
                logits, v = self._standard_attention(p + "attention.", normed, keys_from, layer)
            attention.append(logits)
            mixed = softmax(logits + mask) @ v  # [N, H, L, Dv]
            merged = mixed.transpose(0, 2, 1, 3).reshape(n, length, -1)
            h = x + self.linear(merged, p + "attention.output")
            f = self.linear(layer_norm(h, self._get(p + "ffn_norm.weight"),
                                       self._get(p + "ffn_norm.bias")), p + "ffn_in")
            f = 0.5 * f * (1.0 + _erf(f / math.sqrt(2.0))) if m["activation"] == "gelu" \
                else np.maximum(f, 0.0)
            x = h + self.linear(f, p + "ffn_out")
        if m["final_norm"]:
            x = layer_norm(x, self._get("final_norm.weight"), self._get("final_norm.bias"))
        if m["pooling"] == "valid":
            weights = valid.astype(np.float64)[:, :, None]
            pooled = (x * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
        else:
            pooled = x.mean(1)  # the authors' pooling: pads averaged in
        logits = self.linear(pooled, "classifier")
        return (logits, attention) if return_attention else logits

    def attention_logits(self, tokens, lengths, layer):
        """Layer `layer`'s attention logits [N, H, L, L] (before the mask and softmax)."""
        if not 0 <= layer < self.layers:
            raise ReaderError(f"layer {layer}; the model has layers 0..{self.layers - 1}")
        return self.forward(tokens, lengths, return_attention=True)[1][layer]


def load_model(export_path, config=None):
    """The model of `pelab export`'s file. config: a config.toml path, a dict, or None for the
    configuration stored in the export's metadata (config_toml)."""
    weights, metadata = read_safetensors(export_path)
    if config is None:
        if "config_toml" not in metadata:
            raise ReaderError(f"{export_path}: no config_toml in the metadata; pass config=")
        config = tomllib.loads(metadata["config_toml"])
    elif not isinstance(config, dict):
        with open(config, "rb") as f:
            config = tomllib.load(f)
    return Model(weights, config)


def main(argv):
    """python3 pelab_reader.py MODEL.safetensors DATA.{safetensors,jsonl}: prints JSON with the
    class logits and predictions, like `pelab predict --json`."""
    if len(argv) != 3:
        print(main.__doc__, file=sys.stderr)
        return 2
    model = load_model(argv[1])
    data = load_data(argv[2])
    logits = model.forward(data["tokens"], data["lengths"])
    out = {"samples": len(logits), "predictions": logits.argmax(1).tolist(),
           "logits": logits.tolist()}
    if "labels" in data:
        out["accuracy"] = float((logits.argmax(1) == data["labels"]).mean())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
