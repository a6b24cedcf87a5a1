"""X-MMS-IM-Format: the font, effects and colour of an MSN text message."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

__all__ = ["TextFormat"]

_EFFECTS = "BIUS"
_MAX_FONT = 64  # LF_FACESIZE is 32; a little slack, but no unbounded junk


def _bgr_to_rgb(value: int) -> int:
    return ((value & 0xFF) << 16) | (value & 0xFF00) | ((value >> 16) & 0xFF)


def _token(value: str, default: str) -> str:
    # CS and PF are small hex numbers; anything else is junk we do not repeat.
    value = value.strip()
    if value and len(value) <= 8 and value.isascii() and value.isalnum():
        return value
    return default


@dataclass(frozen=True)
class TextFormat:
    """Formatting of one text message. ``color`` is 0xRRGGBB (MSN sends BGR)."""

    font: str = "Segoe UI"
    bold: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False
    color: int = 0
    charset: str = "0"
    pitch: str = "0"
    rtl: bool = False

    @classmethod
    def parse(cls, header_value: str) -> TextFormat:
        """Parse an X-MMS-IM-Format value; missing or malformed fields keep their default."""
        if cls is TextFormat:  # one client sends the same few values again and again
            return _parsed(header_value)
        return cls._parse(header_value)

    @classmethod
    def _parse(cls, header_value: str) -> TextFormat:
        values: dict[str, str] = {}
        for part in header_value.split(";"):
            key, sep, value = part.partition("=")
            key = key.strip().upper()
            if sep and key and key not in values:
                values[key] = value.strip()
        kwargs: dict[str, object] = {}
        font = unquote(values.get("FN", ""), errors="replace").strip()
        font = "".join(ch for ch in font if ch.isprintable())[:_MAX_FONT]
        if font:
            kwargs["font"] = font
        effects = values.get("EF", "").upper()
        kwargs.update(
            bold="B" in effects,
            italic="I" in effects,
            underline="U" in effects,
            strike="S" in effects,
        )
        colour = values.get("CO", "")
        if colour[:2].lower() == "0x":
            colour = colour[2:]
        if 0 < len(colour) <= 8 and all(c in "0123456789abcdefABCDEF" for c in colour):
            kwargs["color"] = _bgr_to_rgb(int(colour, 16) & 0xFFFFFF)
        kwargs["charset"] = _token(values.get("CS", ""), "0")
        kwargs["pitch"] = _token(values.get("PF", ""), "0")
        kwargs["rtl"] = values.get("RL", "") == "1"
        return cls(**kwargs)  # type: ignore[arg-type]

    def header(self) -> str:
        """The canonical X-MMS-IM-Format value for this format."""
        return _header(self)

    def _header(self) -> str:
        effects = "".join(
            letter
            for letter, on in zip(
                _EFFECTS, (self.bold, self.italic, self.underline, self.strike), strict=True
            )
            if on
        )
        # Escape everything but unreserved characters: ';' and '=' would break the field list.
        font = quote(self.font, safe="")
        bgr = _bgr_to_rgb(self.color & 0xFFFFFF)  # the swap is its own inverse
        charset, pitch = _token(self.charset, "0"), _token(self.pitch, "0")
        value = f"FN={font}; EF={effects}; CO={bgr:x}; CS={charset}; PF={pitch}"
        if self.rtl:
            value += "; RL=1"
        return value


# Per message, both ways: the values repeat, and a TextFormat is immutable.
@lru_cache(maxsize=256)
def _parsed(header_value: str) -> TextFormat:
    return TextFormat._parse(header_value)


@lru_cache(maxsize=256)
def _header(fmt: TextFormat) -> str:
    return fmt._header()
