"""Cutting long text into parts: MB/s of puppets.message.split_text (MSN payloads) and
msnbridge.irc.lines.split_utf8 (IRC lines), grapheme-cluster aware, beside the code-point
cutters they replaced (kept here as the baseline), over the same text in the same run.

    .venv/bin/python benchmarks/text_cut.py [--seconds 1]
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msnbridge.irc import lines
from puppets import message

SAMPLES = {
    "words": "The quick brown fox jumps over the lazy dog. " * 400,
    "emoji, no spaces": "👩\u200d💻🇫🇷e\u0301한" * 800,
}


def _old_cut(text: str, start: int, budget: int) -> int:
    """The MSN cutter before grapheme clusters: newline, space, else a code point."""
    used, end, size = 0, start, len(text)
    while end < size:
        cost = message._wire_size(text[end])
        if used + cost > budget:
            break
        used += cost
        end += 1
    if end == size:
        return end
    span = end - start
    newline = text.rfind("\n", start, end)
    if newline >= start + span // 4:
        return newline + 1
    for i in range(end - 1, start + span // 2 - 1, -1):
        if text[i].isspace():
            return i + 1
    hard = end
    while hard > start + 1 and unicodedata.combining(text[hard]):
        hard -= 1
    return hard


def _old_split_utf8(line: str, max_bytes: int) -> list[str]:
    chunks, rest = [], line
    while lines.utf8_len(rest) > max_bytes:
        cut = len(rest.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
        space = next((i for i in range(cut, 0, -1) if rest[i].isspace()), -1)
        if space > cut // 2:
            chunks.append(rest[:space])
            rest = rest[space + 1 :]
            continue
        chunks.append(rest[:cut])
        rest = rest[cut:]
    return [*chunks, rest] if rest else chunks


def _rate(fn: Callable[[], object], size: int, seconds: float) -> float:
    """MB of text per second, best of three rounds."""
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            fn()
            n += 1
        best = max(best, n * size / (time.perf_counter() - start) / 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    print(f"{'text':18} {'cutter':28} {'MB/s':>8}  vs baseline")
    for name, text in SAMPLES.items():
        size = len(text.encode())
        original = message._cut
        message._cut = _old_cut
        try:
            base_msn = _rate(lambda t=text: message.split_text(t), size, args.seconds)
        finally:
            message._cut = original
        new_msn = _rate(lambda t=text: message.split_text(t), size, args.seconds)
        base_irc = _rate(lambda t=text: _old_split_utf8(t, 400), size, args.seconds)
        new_irc = _rate(lambda t=text: lines.split_utf8(t, 400), size, args.seconds)
        for cutter, rate, base in (
            ("split_text, code points", base_msn, base_msn),
            ("split_text, clusters", new_msn, base_msn),
            ("split_utf8, code points", base_irc, base_irc),
            ("split_utf8, clusters", new_irc, base_irc),
        ):
            print(f"{name:18} {cutter:28} {rate:8.2f}  {rate / base:.2f}x")


if __name__ == "__main__":
    main()
