#!/usr/bin/python3
"""safetensors reference for mtt's io tests (tests/lua/test_io.lua).

Debian's python3-torch has no safetensors package, so this is a small reader and writer written
from the format's description (struct + json + torch.frombuffer), following what the reference
writer (Hugging Face's safetensors) does: tensors sorted by dtype alignment, largest first, then
by name; packed without gaps; compact JSON header with "__metadata__" first; header padded with
spaces to a multiple of 8 bytes. Metadata keys are written sorted (the reference's order is a
hash map's, i.e. unspecified).

usage: safetensors_io.py COMMAND ARGS [COMMAND ARGS...]
  safetensors_io.py make DIR        write reference files into DIR (+ DIR/expected.json)
  safetensors_io.py check FILE REF  FILE (written by mtt) must be laid out as the reference
                                    writer lays it out and hold REF's tensors bit for bit
  safetensors_io.py dump FILE OUT   the raw bytes (hex) of every tensor of FILE, as JSON
Exits non-zero, with a message, on any mismatch.
"""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}
# The reference's dtype order (increasing alignment); writers sort by it, descending.
RANK = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
        "I64", "U64"]


def fail(msg):
    print("safetensors_io.py: " + msg, file=sys.stderr)
    sys.exit(1)


def tensor_bytes(t):
    t = t.contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def serialize(tensors, metadata=None):
    items = sorted(tensors.items(), key=lambda kv: (-RANK.index(NAMES[kv[1].dtype]), kv[0].encode()))
    header, offset, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = dict(sorted(metadata.items(), key=lambda kv: kv[0].encode()))
    for name, t in items:
        b = tensor_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def read(path, strict_layout=False):
    """-> (tensors, metadata, header bytes). strict_layout: also require the reference writer's
    layout (order, padding, alignment), as mtt promises to write it."""
    data = open(path, "rb").read()
    if len(data) < 8:
        fail(f"{path}: too short")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        fail(f"{path}: header length past the end")
    raw = data[8:8 + n]
    header = json.loads(raw.decode("utf-8"))
    metadata = header.pop("__metadata__", None)
    body = data[8 + n:]
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    at, tensors = 0, {}
    for name, info in entries:
        b, e = info["data_offsets"]
        if b != at:
            fail(f"{path}: tensor {name} starts at {b}, expected {at}")
        dt = DTYPES[info["dtype"]]
        count = math.prod(info["shape"])
        size = torch.empty((), dtype=dt).element_size()
        if e - b != count * size:
            fail(f"{path}: tensor {name}: size mismatch")
        buf = bytearray(body[b:e])
        t = torch.frombuffer(buf, dtype=dt) if count else torch.empty(0, dtype=dt)
        tensors[name] = t.reshape(info["shape"])
        at = e
        if strict_layout and (8 + n + b) % size != 0:
            fail(f"{path}: tensor {name} is not aligned for {info['dtype']}")
    if at != len(body):
        fail(f"{path}: {len(body) - at} bytes after the last tensor")
    if strict_layout:
        stripped = raw.rstrip(b" ")
        if n % 8 != 0 or len(raw) - len(stripped) >= 8 or not stripped.endswith(b"}"):
            fail(f"{path}: header not padded with spaces to a multiple of 8 (length {n})")
        order = [name for name, _ in entries]
        want = [name for name, _ in sorted(header.items(), key=lambda kv: (-RANK.index(kv[1]["dtype"]), kv[0].encode()))]
        if order != want:
            fail(f"{path}: tensors in the order {order}, the reference writer's is {want}")
        keys = list(json.loads(raw.decode("utf-8")).keys())
        if metadata is not None and keys[0] != "__metadata__":
            fail(f"{path}: __metadata__ is not the header's first key")
        if keys[1 if metadata is not None else 0:] != want:
            fail(f"{path}: header keys {keys} are not in data order")
    return tensors, metadata, raw


def bits(t):
    """Integer view of a tensor's bits, for bitwise comparison (NaNs included)."""
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.contiguous().view(ints[t.element_size()]) if t.dtype != torch.bool else t.to(torch.uint8)


def make(folder):
    g = torch.Generator().manual_seed(1234)
    special = [0.0, -0.0, 1.0, -1.5, float("inf"), float("-inf"), float("nan"), 1e-40, -3e-39, 3.4e38, 65504.0,
               6e-8, 1e-3, 2.0 ** -14, 123456.789]
    tensors = {
        "transformer.wte.weight": torch.randn(7, 5, generator=g),
        "transformer.h.0.attn.c_attn.bias": torch.randn(12, generator=g),
        "f64.values": torch.cat([torch.randn(9, generator=g, dtype=torch.float64),
                                 torch.tensor(special + [1e-310, 5e-324, 1.7e308], dtype=torch.float64)]),
        "f32.special": torch.tensor(special, dtype=torch.float32),
        "bf16.values": torch.cat([torch.randn(6, generator=g), torch.tensor(special)]).to(torch.bfloat16),
        "f16.values": torch.cat([torch.randn(6, generator=g), torch.tensor(special)]).to(torch.float16),
        "i32.values": torch.tensor([0, 1, -1, 2 ** 31 - 1, -2 ** 31, 12345], dtype=torch.int32).reshape(2, 3),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "a.1x1x1": torch.ones(1, 1, 1, dtype=torch.float64),
        "b.odd_f16": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float16),
    }
    # names that need escaping in JSON, and non-ASCII ones
    tensors['quote"and\\backslash'] = torch.arange(3, dtype=torch.int32)
    tensors["caf\u00e9.\u03bb"] = torch.arange(4, dtype=torch.float32)
    metadata = {"format": "pt", "note": "line\nbreak \"quoted\" \u00e9\u20ac \t tab", "empty": ""}
    with open(os.path.join(folder, "ref.safetensors"), "wb") as f:
        f.write(serialize(tensors, metadata))
    expected = {}
    for name, t in tensors.items():
        expected[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "hex": tensor_bytes(t).hex(),
                          "f64hex": tensor_bytes(t.to(torch.float64)).hex(),
                          "f32hex": tensor_bytes(t.to(torch.float32)).hex()}
    # integer and bool dtypes mtt reads as i32
    ints = {"i64": torch.tensor([[-5, 7], [2 ** 31 - 1, -2 ** 31]], dtype=torch.int64),
            "i16": torch.tensor([-32768, 32767, 0], dtype=torch.int16), "i8": torch.tensor([-128, 5], dtype=torch.int8),
            "u8": torch.tensor([0, 200, 255], dtype=torch.uint8), "bool": torch.tensor([True, False, True])}
    with open(os.path.join(folder, "ints.safetensors"), "wb") as f:
        f.write(serialize(ints))
    for name, t in ints.items():
        expected["ints/" + name] = {"shape": list(t.shape), "values": t.to(torch.int64).reshape(-1).tolist()}
    with open(os.path.join(folder, "i64_range.safetensors"), "wb") as f:
        f.write(serialize({"big": torch.tensor([1, 2 ** 31], dtype=torch.int64)}))
    # a writer that does not align: an f16 tensor of 3 elements before an f32 one
    h = json.dumps({"x": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]},
                    "y": {"dtype": "F32", "shape": [2], "data_offsets": [6, 14]}}, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    body = tensor_bytes(torch.tensor([1, 2, 3], dtype=torch.float16)) + tensor_bytes(torch.tensor([0.5, -7.25]))
    with open(os.path.join(folder, "unaligned.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + body)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f)


def check(path, ref_path):
    got, got_md, _ = read(path, strict_layout=True)
    ref, ref_md, _ = read(ref_path)
    if sorted(got) != sorted(ref):
        fail(f"{path}: tensor names {sorted(got)} != {sorted(ref)}")
    for name, t in ref.items():
        u = got[name]
        if u.dtype != t.dtype or list(u.shape) != list(t.shape):
            fail(f"{path}: {name}: {u.dtype} {list(u.shape)} != {t.dtype} {list(t.shape)}")
        if not torch.equal(bits(u), bits(t)):
            fail(f"{path}: {name}: values differ from the reference")
    if got_md != ref_md:
        fail(f"{path}: metadata {got_md} != {ref_md}")
    if open(path, "rb").read() != serialize(ref, ref_md):
        fail(f"{path}: the bytes differ from the reference writer's for the same tensors")


def dump(path, out):
    tensors, metadata, _ = read(path, strict_layout=True)
    result = {"metadata": metadata, "tensors": {}}
    for name, t in tensors.items():
        result["tensors"][name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "hex": tensor_bytes(t).hex()}
    with open(out, "w") as f:
        json.dump(result, f)
    # and the reference writer's bytes for the same content must equal the file
    if open(path, "rb").read() != serialize(tensors, metadata):
        fail(f"{path}: the bytes differ from the reference writer's for the same tensors")


if __name__ == "__main__":
    # several commands may follow each other (one interpreter start: importing torch is slow)
    args, arity = sys.argv[1:], {"make": 1, "check": 2, "dump": 2}
    if not args:
        fail(__doc__)
    while args:
        cmd = args[0]
        if cmd not in arity or len(args) < 1 + arity[cmd]:
            fail(__doc__)
        {"make": make, "check": check, "dump": dump}[cmd](*args[1:1 + arity[cmd]])
        args = args[1 + arity[cmd]:]
