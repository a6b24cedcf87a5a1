"""CHL/QRY challenge answers: the MD5 algorithm of MSNP6-10 and the one of MSNP11+."""

from __future__ import annotations

import hashlib
import struct

__all__ = ["PRODUCT_KEYS", "answer", "default_product"]

# (product id, product key) pairs by protocol range, in the order PROTOCOL.md lists them.
PRODUCT_KEYS: dict[tuple[int, int], list[tuple[str, str]]] = {
    (6, 10): [
        ("msmsgs@msnmsgr.com", "Q1P7W2E4J9R8U3S5"),
        ("PROD0038W!61ZTF9", "VT6PX?UQTM4WM%YR"),
        ("PROD0058#7IL2{QD", "QHDCY@7R1TB6W?5B"),
        ("PROD0061VRRZH@4F", "JXQ6J@TUOGYV@N0M"),
    ],
    (11, 12): [
        ("PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL"),
        ("PROD0101{0RM?UBW", "CFHUR$52U_{VIX5T"),
    ],
    (13, 14): [
        ("PROD01065C%ZFN6F", "O4BG@C7BWLYQX?5G"),
        ("PROD0112J1LW7%NB", "RH96F{PHI8PPX_TJ"),
    ],
    (15, 99): [
        ("PROD0113H11T8$X_", "RG@XY*28Q5QHS%Q5"),
        ("PROD0114ES4Z%Q5W", "PK}_A_0N_K%O?A9S"),
        ("PROD0120PW!CCV9@", "C1BX{V4W}Q3*10SM"),
    ],
}

_M = 0x7FFFFFFF


def default_product(protocol: int) -> tuple[str, str]:
    """The first product id/key pair listed for ``protocol`` (MSNP2-5 use the 6-10 pair)."""
    for (low, high), pairs in PRODUCT_KEYS.items():
        if low <= protocol <= high:
            return pairs[0]
    return PRODUCT_KEYS[(6, 10)][0]


def _md5_answer(challenge: str, product_key: str) -> str:
    return hashlib.md5((challenge + product_key).encode("ascii")).hexdigest()


def _msnp11_answer(challenge: str, product_id: str, product_key: str) -> str:
    digest = hashlib.md5((challenge + product_key).encode("ascii")).digest()
    h = struct.unpack("<4I", digest)
    k0, k1, k2, k3 = (x & _M for x in h)
    s = (challenge + product_id).encode("ascii")
    s += b"0" * (-len(s) % 8)
    words = struct.unpack(f"<{len(s) // 4}I", s)
    hi = lo = 0
    for i in range(0, len(words), 2):
        t = (0x0E79A9C1 * words[i]) % _M + hi
        t = (k0 * t + k1) % _M
        hi = (k2 * ((words[i + 1] + t) % _M) + k3) % _M
        lo += hi + t
    hi = (hi + k1) % _M
    lo = (lo + k3) % _M
    out = struct.pack("<4I", h[0] ^ hi, h[1] ^ lo, h[2] ^ hi, h[3] ^ lo)
    return out.hex()


def answer(
    challenge: str,
    protocol: int,
    product_id: str | None = None,
    product_key: str | None = None,
) -> str:
    """The 32-hex-digit QRY answer to ``CHL 0 <challenge>`` for protocol version ``protocol``."""
    default_id, default_key = default_product(protocol)
    product_id = product_id or default_id
    product_key = product_key or default_key
    if protocol >= 11:
        return _msnp11_answer(challenge, product_id, product_key)
    return _md5_answer(challenge, product_key)
