#!/usr/bin/python3
"""Reference for tests/lua/test_tokenizer.lua: GPT-2's pre-tokenization with the Python `regex`
module, as GPT-2's encoder.py does it (Debian's python3-regex), and the character classes the
pattern uses.

usage: tokenizer_pretok_reference.py pieces STRINGS.json OUT.json
         OUT: for each string, the end offsets (in UTF-8 bytes) of its pieces
       tokenizer_pretok_reference.py classes OUT.txt
         OUT: one line "lo hi class" per maximal range of code points of one class
         (L letter, N number, S space, O other), surrogates counted as other
"""
import json
import sys

import regex

PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
CLASS = regex.compile(r"(\p{L})|(\p{N})|(\s)")


def pieces(inp, out):
    with open(inp, encoding="utf-8") as f:
        strings = json.load(f)
    result = []
    for s in strings:
        ends, pos = [], 0
        for piece in PATTERN.findall(s):
            pos += len(piece.encode("utf-8"))
            ends.append(pos)
        result.append(ends)
    with open(out, "w") as f:
        json.dump(result, f)


def classes(out):
    names = {1: "L", 2: "N", 3: "S"}
    ranges = []
    for cp in range(0x110000):
        m = None if 0xD800 <= cp <= 0xDFFF else CLASS.match(chr(cp))
        c = names[m.lastindex] if m else "O"
        if ranges and ranges[-1][2] == c:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, c])
    with open(out, "w") as f:
        for lo, hi, c in ranges:
            f.write(f"{lo} {hi} {c}\n")


if __name__ == "__main__":
    if sys.argv[1] == "pieces":
        pieces(sys.argv[2], sys.argv[3])
    else:
        classes(sys.argv[2])
