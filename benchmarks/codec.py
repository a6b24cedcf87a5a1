"""Codec throughput: MSNP commands parsed and built per second on one core, beside a bare
``bytes.split`` loop over the same input in the same run. The reader is measured with the
C parser (puppets/_codec.c, when built) and with the pure-Python one, side by side.

    .venv/bin/python benchmarks/codec.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from puppets import command
from puppets.command import Command, CommandReader


class PurePythonReader(CommandReader):
    __slots__ = ()
    _c_drain = None


# A realistic notification-server mix: presence, list entries, a message with a payload.
_MSG_BODY = (
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    b"X-MMS-IM-Format: FN=Segoe%20UI; EF=B; CO=ff; CS=0; PF=22\r\n\r\nhello there \xc3\xb1"
)
SAMPLE = (
    b"NLN NLN bob@example.com Bob%20the%20Builder 1342177280 0\r\n"
    b"ILN 12 AWY carol@example.com Carol 536870948\r\n"
    b"LST N=dave@example.com F=Dave C=4f6b6a5e-1111-2222-3333-444455556666 11 1 "
    b"c4f1a1b2-aaaa-bbbb-cccc-ddddeeeeffff\r\n"
    b"FLN erin@example.com\r\n"
    b"MSG bob@example.com Bob " + str(len(_MSG_BODY)).encode() + b"\r\n" + _MSG_BODY + b"QNG 50\r\n"
    b"CHL 0 15570131571988941333\r\n"
    b"ADC 0 RL N=frank@example.com F=Frank\r\n"
)
COMMANDS_PER_SAMPLE = 8


def _rate(fn, seconds: float) -> float:
    """Commands per second of ``fn`` (which handles one SAMPLE) over ``seconds``."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        n += 200
        now = time.perf_counter()
        if now >= deadline:
            return n * COMMANDS_PER_SAMPLE / (now - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="per row, over all rounds")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    def baseline() -> None:
        for line in SAMPLE.split(b"\r\n"):
            line.split(b" ")

    # Feeding in 100-byte pieces, as a socket may deliver them.
    pieces = [SAMPLE[i : i + 100] for i in range(0, len(SAMPLE), 100)]

    def parsers(reader_class: type[CommandReader]) -> tuple:
        reader, chunked_reader = reader_class(), reader_class()

        def parse() -> None:
            reader.feed(SAMPLE)

        def parse_chunked() -> None:
            for piece in pieces:
                chunked_reader.feed(piece)

        return parse, parse_chunked

    commands = CommandReader().feed(SAMPLE)
    assert len(commands) == COMMANDS_PER_SAMPLE, commands
    outgoing = [
        Command("MSG", 7, ["A"], _MSG_BODY),
        Command("CHG", 8, ["NLN", "0"]),
        Command("ADC", 9, ["FL", "N=bob@example.com", "F=Bob"]),
        Command("PNG"),
        Command("QRY", 10, ["PROD0090YUAUV{2B"], b"0" * 32),
        Command("XFR", 11, ["SB"]),
        Command("UUX", 12, [], b"<Data><PSM>hi</PSM></Data>"),
        Command("REA", 13, ["alice@example.com", "Alice"]),
    ]

    def build() -> None:
        for cmd in outgoing:
            cmd.encode()

    # Interleaved rounds, best of each: other load on the machine hits every row alike.
    candidates = [("bytes.split baseline", baseline)]
    if command.ACCELERATED:
        parse, parse_chunked = parsers(CommandReader)
        assert CommandReader().feed(SAMPLE) == PurePythonReader().feed(SAMPLE)
        candidates += [
            ("CommandReader.feed (whole), C", parse),
            ("CommandReader.feed (100 B pieces), C", parse_chunked),
        ]
    else:
        print("(puppets._codec not built: the pure-Python parser only)")
    parse, parse_chunked = parsers(PurePythonReader)
    candidates += [
        ("CommandReader.feed (whole), Python", parse),
        ("CommandReader.feed (100 B pieces), Python", parse_chunked),
        ("Command.encode", build),
    ]
    best = dict.fromkeys((name for name, _ in candidates), 0.0)
    for _ in range(args.rounds):
        for name, fn in candidates:
            best[name] = max(best[name], _rate(fn, args.seconds / args.rounds))
    base = best["bytes.split baseline"]
    rows = list(best.items())
    print(f"{'what':42} {'commands/s':>12} {'vs baseline':>12}")
    for name, rate in rows:
        print(f"{name:42} {rate:12,.0f} {rate / base:11.2f}x")


if __name__ == "__main__":
    main()
