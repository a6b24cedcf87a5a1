"""Coverage-guided fuzzing (atheris) of the MSNP codec, the payload parsers and the P2P
parsers (MSNC frames v1/v2, MSNSLP, the file context, MSNObjects) for a fixed budget.
Prints executions, coverage and any crash; exit status 1 on a crash.

    .venv/bin/pip install atheris
    .venv/bin/python benchmarks/fuzz_codec.py [--seconds 60]

A "crash" is any exception other than ProtocolError escaping the reader, any exception
from the payload parsers, any exception but its own error class from a P2P parser, or the
reader buffering more than its bounds allow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import atheris
except ImportError:  # pragma: no cover - a benchmark script, not a test
    raise SystemExit("atheris is not installed: .venv/bin/pip install atheris") from None

with atheris.instrument_imports():
    from puppets.command import CLIENT_NO_TRID, CLIENT_PAYLOAD_COMMANDS, CommandReader
    from puppets.errors import ProtocolError
    from puppets.message import ChunkAssembler, parse_payload
    from puppets.msnobject import InvalidMSNObject
    from puppets.msnobject import parse as parse_msnobject
    from puppets.p2p.filecontext import FileContext, FileContextError
    from puppets.p2p.header import P2PFormatError, parse_frame, parse_frame_v2
    from puppets.p2p.slp import SLPError, parse_slp

SEEDS = [
    b"VER 1 MSNP8 CVR0\r\n",
    b"MSG Hotmail Hotmail 40\r\nMIME-Version: 1.0\r\nContent-Type: text/x\r\n\r\n",
    b"LST N=a@b.c F=A C=1-2-3 11 1 g1,g2\r\nILN 5 NLN a@b.c A 0\r\n",
    b"911 7\r\n241 8 5\r\nhello",
]
P2P_SEEDS = [
    b"\xff\x00"
    + bytes(8)
    + (1).to_bytes(4, "little")
    + bytes(8)
    + (3).to_bytes(8, "little")
    + (3).to_bytes(4, "little")
    + bytes(16)
    + b"abc"
    + bytes(4),
    b"\xff\x02INVITE MSNMSGR:b@c.d MSNSLP/1.0\r\nCall-ID: {x}\r\nContent-Length: 3\r\n\r\nA: \x00",
    b'\xff\x04<msnobj Creator="a@b.c" Size="1" Type="3" Location="0" SHA1D="AAAA"/>',
]


P2P_PARSERS = [
    (parse_frame, P2PFormatError),
    (parse_frame_v2, P2PFormatError),
    (parse_slp, SLPError),
    (FileContext.parse, FileContextError),
    (lambda raw: parse_msnobject(raw.decode("utf-8", "replace")), InvalidMSNObject),
]


def one_input(data: bytes) -> None:
    if data[:1] == b"\xff" and len(data) > 1:  # the P2P parsers, one per second byte
        parser, error = P2P_PARSERS[data[1] % len(P2P_PARSERS)]
        try:
            parser(data[2:])
        except error:
            pass
        return
    fdp = atheris.FuzzedDataProvider(data)
    split = fdp.ConsumeIntInRange(1, 64)
    client_side = fdp.ConsumeBool()
    raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    reader = (
        CommandReader(
            payload_commands=CLIENT_PAYLOAD_COMMANDS,
            no_trid=CLIENT_NO_TRID,
            max_line=1024,
            max_payload=4096,
        )
        if client_side
        else CommandReader(max_line=1024, max_payload=4096)
    )
    chunks = ChunkAssembler()
    try:
        for i in range(0, len(raw), split):
            for cmd in reader.feed(raw[i : i + split]):
                cmd.encode()
                if cmd.payload is not None:
                    parse_payload(cmd.payload, sender="x@y.z", assembler=chunks)
            if reader.buffered > reader.max_line + reader.max_payload:
                raise AssertionError(f"reader buffered {reader.buffered} bytes")
    except ProtocolError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    args, rest = ap.parse_known_args()
    corpus = Path(__file__).resolve().parent / ".fuzz-corpus"
    corpus.mkdir(exist_ok=True)
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed{i}").write_bytes(b"\x08\x00" + seed)
    for i, seed in enumerate(P2P_SEEDS):
        (corpus / f"p2p-seed{i}").write_bytes(seed)
    atheris.Setup(
        [
            sys.argv[0],
            f"-max_total_time={args.seconds}",
            "-print_final_stats=1",
            str(corpus),
            *rest,
        ],
        one_input,
    )
    atheris.Fuzz()


if __name__ == "__main__":
    main()
