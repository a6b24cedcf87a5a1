"""MSNC binary headers: v1 (48 bytes, little-endian, MSNP9–15) and the MSNP16+ v2 form.

A P2P frame inside an ``application/x-msnmsgrp2p`` payload is the binary header, the
chunk of data and a 4-byte big-endian footer (the application id: 1 pictures, 2 files).
Parsing raises :class:`P2PFormatError` on anything malformed; it never trusts a length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "FOOTER_SIZE",
    "HEADER_SIZE",
    "PEER_INFO",
    "TF",
    "Flags",
    "Frame",
    "FrameV2",
    "Header",
    "OpCode",
    "P2PFormatError",
    "parse_frame",
    "parse_frame_v2",
]

HEADER_SIZE = 48
FOOTER_SIZE = 4
_V1 = struct.Struct("<IIQQIIIIQ")
_FOOTER = struct.Struct(">I")


class P2PFormatError(ValueError):
    """A P2P frame that cannot be read."""


class Flags:
    NONE = 0x0
    ACK = 0x2
    WAIT = 0x4
    ERROR = 0x8
    MSNOBJ_DATA = 0x20  # display picture / emoticon data
    BYE_ACK = 0x40
    CLOSING = 0x80
    FILE_DATA = 0x01000030  # WLM 2009 compatible file data


@dataclass(slots=True)
class Header:
    """The MSNC v1 header. ``id`` is shared by every chunk of one message."""

    session_id: int = 0
    id: int = 0
    offset: int = 0
    total_size: int = 0
    length: int = 0
    flags: int = 0
    ack_id: int = 0  # on data: a unique id; on an ACK: the acked message's id
    ack_uid: int = 0  # on an ACK: the acked message's ack_id
    ack_size: int = 0  # on an ACK: the acked message's total size

    def pack(self) -> bytes:
        return _V1.pack(
            self.session_id,
            self.id,
            self.offset,
            self.total_size,
            self.length,
            self.flags,
            self.ack_id,
            self.ack_uid,
            self.ack_size,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        if len(data) < HEADER_SIZE:
            raise P2PFormatError(f"a P2P header needs 48 bytes, got {len(data)}")
        return cls(*_V1.unpack_from(data))

    @property
    def is_ack(self) -> bool:
        return bool(self.flags & Flags.ACK) and self.length == 0

    @property
    def last_chunk(self) -> bool:
        return self.offset + self.length >= self.total_size


@dataclass(slots=True)
class Frame:
    header: Header
    data: bytes
    app_id: int = 0

    def build(self) -> bytes:
        if self.header.length != len(self.data):
            raise ValueError("header length does not match the data")
        return self.header.pack() + self.data + _FOOTER.pack(self.app_id)


def parse_frame(body: bytes) -> Frame:
    """A v1 frame: header, exactly ``length`` bytes of data, footer (may be absent)."""
    header = Header.unpack(body)
    rest = len(body) - HEADER_SIZE
    if header.length > rest:
        raise P2PFormatError(f"header announces {header.length} bytes, {rest} follow")
    if header.offset + header.length > header.total_size:
        raise P2PFormatError("chunk ends past the message's total size")
    data = body[HEADER_SIZE : HEADER_SIZE + header.length]
    tail = body[HEADER_SIZE + header.length :]
    if len(tail) not in (0, FOOTER_SIZE):
        raise P2PFormatError(f"{len(tail)} stray bytes after the data")
    app_id = _FOOTER.unpack(tail)[0] if tail else 0
    return Frame(header, data, app_id)


# --- v2 (MSNP16+) -------------------------------------------------------------------------

_V2_FIXED = struct.Struct(">BBHI")  # header length, opcode, message size, sequence (base id)
_V2_DATA = struct.Struct(">BBHI")  # data header length, TF combination, package no, session


class TF:
    """v2 data header "TF combination" values."""

    NONE = 0x0
    FIRST = 0x1  # first chunk of an SLP message
    MSNOBJ = 0x4
    FILE = 0x6


class OpCode:
    NONE = 0x0
    SYN = 0x1  # first message to a peer: carries our peer info (TLV 1)
    RAK = 0x2  # request an acknowledgement


# Transport header TLVs: peer info (12 bytes), ACK and NAK (the 32-bit sequence number
# after the acknowledged message). Data header TLV: bytes of the message still to come.
TLV_PEER_INFO = 0x1
TLV_ACK = 0x2
TLV_NAK = 0x3
DTLV_REMAINING = 0x1
# Peer info as Messenger 2009 sends it (little-endian): protocol version 0x200,
# implementation 0, peer info version 0xE00, reserved 0, capabilities 0x10F.
PEER_INFO = struct.pack("<HHHHI", 0x200, 0, 0xE00, 0, 0x10F)
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def _tlvs(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        kind = data[pos]
        if kind == 0:  # padding
            break
        if pos + 2 > len(data):
            raise P2PFormatError("truncated TLV")
        size = data[pos + 1]
        end = pos + 2 + size
        if end > len(data):
            raise P2PFormatError("TLV runs past its header")
        out.append((kind, data[pos + 2 : end]))
        pos = end
    return out


def _pack_tlvs(tlvs: list[tuple[int, bytes]]) -> bytes:
    raw = b"".join(bytes([k, len(v)]) + v for k, v in tlvs)
    return raw + b"\x00" * (-len(raw) % 4)


@dataclass(slots=True)
class FrameV2:
    """A v2 frame: transport header (+TLVs), optional data header (+TLVs), data."""

    sequence: int = 0  # base id plus bytes sent so far
    opcode: int = OpCode.NONE
    tlvs: list[tuple[int, bytes]] = field(default_factory=list)  # 1 caps, 2 ACK, 3 NAK
    tf: int = TF.NONE
    package: int = 0
    session_id: int = 0
    data_tlvs: list[tuple[int, bytes]] = field(default_factory=list)  # 1: bytes remaining
    data: bytes = b""
    has_data_header: bool = True
    app_id: int = 0
    wire_size: int | None = field(default=None, compare=False)  # as parsed

    @property
    def message_size(self) -> int:
        """The transport header's message size: data header and data (what the
        sequence number advances by)."""
        if self.wire_size is not None:
            return self.wire_size
        if not self.has_data_header:
            return 0
        return 8 + len(_pack_tlvs(self.data_tlvs)) + len(self.data)

    def tlv(self, kind: int) -> bytes | None:
        return next((v for k, v in self.tlvs if k == kind), None)

    @property
    def ack_of(self) -> int | None:
        """On an ACK: the sequence number just past the acknowledged message."""
        value = self.tlv(TLV_ACK)
        return _U32.unpack(value)[0] if value is not None and len(value) == 4 else None

    @property
    def remaining(self) -> int:
        """Bytes of this message still to come after this chunk (0: the last chunk)."""
        for kind, value in self.data_tlvs:
            if kind == DTLV_REMAINING and len(value) == 8:
                return _U64.unpack(value)[0]
        return 0

    def build(self) -> bytes:
        tlv = _pack_tlvs(self.tlvs)
        body = b""
        if self.has_data_header:
            dtlv = _pack_tlvs(self.data_tlvs)
            body = _V2_DATA.pack(8 + len(dtlv), self.tf, self.package, self.session_id)
            body += dtlv + self.data
        if len(body) > 0xFFFF or 8 + len(tlv) > 0xFF:
            raise ValueError("a v2 frame this large cannot be encoded")
        head = _V2_FIXED.pack(8 + len(tlv), self.opcode, len(body), self.sequence)
        return head + tlv + body + _FOOTER.pack(self.app_id)


def parse_frame_v2(body: bytes) -> FrameV2:
    if len(body) < 8:
        raise P2PFormatError("a v2 header needs at least 8 bytes")
    hlen, opcode, size, seq = _V2_FIXED.unpack_from(body)
    if hlen < 8 or hlen > len(body):
        raise P2PFormatError(f"bad v2 header length {hlen}")
    tlvs = _tlvs(body[8:hlen])
    rest = body[hlen:]
    if size > len(rest):
        raise P2PFormatError(f"v2 message size {size}, {len(rest)} bytes follow")
    frame = FrameV2(seq, opcode, tlvs, has_data_header=size > 0, wire_size=size)
    if size:
        if size < 8:
            raise P2PFormatError("v2 data header shorter than 8 bytes")
        dlen, tf, package, session = _V2_DATA.unpack_from(rest)
        if dlen < 8 or dlen > size:
            raise P2PFormatError(f"bad v2 data header length {dlen}")
        frame.tf, frame.package, frame.session_id = tf, package, session
        frame.data_tlvs = _tlvs(rest[8:dlen])
        frame.data = rest[dlen:size]
    tail = rest[size:]
    if len(tail) not in (0, FOOTER_SIZE):
        raise P2PFormatError(f"{len(tail)} stray bytes after the v2 frame")
    frame.app_id = _FOOTER.unpack(tail)[0] if tail else 0
    return frame
