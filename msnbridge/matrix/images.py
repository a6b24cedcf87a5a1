"""Image work done with Pillow: owners' avatars made into Messenger display pictures, and
the dimensions and thumbnail of an image file received from MSN.

Everything here is blocking (decoding is CPU work): callers run it with
``asyncio.to_thread``. ``puppets`` never imports this; converting is the bridge's job.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

# Messenger 6-8 show and store display pictures as 96x96 PNG; its picture dialog crops the
# chosen image to a square (the centre by default) before scaling.
PICTURE_SIZE = 96
# No image of more pixels is decoded (a decompression bomb: a small file that expands to
# gigabytes). 40 megapixels is a large camera photo; its RGBA decode is 160 MB.
MAX_PIXELS = 40_000_000
THUMBNAIL_SIZE = 320


class ImageRefused(ValueError):
    """An image that cannot be read, or one too large to decode (``size`` then known)."""

    def __init__(self, reason: str, size: tuple[int, int] | None = None) -> None:
        super().__init__(reason)
        self.size = size


def _open(source: bytes | Path) -> Image.Image:
    """The image's header only (Pillow decodes lazily), refused past MAX_PIXELS."""
    stream: IO[bytes] | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its own bound refuses); ours is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(stream)
    except Image.DecompressionBombError as e:
        raise ImageRefused(f"too many pixels to decode ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageRefused("not an image format Pillow reads") from e
    except OSError as e:
        raise ImageRefused(f"not a readable image ({e})") from e
    width, height = im.size
    if width * height > MAX_PIXELS:
        im.close()
        raise ImageRefused(
            f"{width}x{height} is over {MAX_PIXELS:,} pixels (a decompression bomb?)",
            (width, height),
        )
    return im


def _decoded(im: Image.Image) -> Image.Image:
    """The first frame (animated GIF/PNG/WebP), upright (EXIF), in RGB or RGBA."""
    try:
        im.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
            upright = ImageOps.exif_transpose(im) or im
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageRefused(f"the image is damaged ({e})") from e
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    return upright.convert("RGBA" if has_alpha else "RGB")


def display_picture(data: bytes) -> bytes:
    """``data`` (any format Pillow reads) as a 96x96 PNG: centre square, then scaled."""
    with _open(data) as im:
        frame = _decoded(im)
    square = ImageOps.fit(frame, (PICTURE_SIZE, PICTURE_SIZE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    square.save(out, "PNG", optimize=True)
    return out.getvalue()


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    mimetype: str
    width: int
    height: int


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    thumbnail: Thumbnail | None  # None when the image is too large to decode


def image_facts(path: Path) -> ImageFacts:
    """Dimensions and a thumbnail (at most 320 px a side; JPEG, or PNG when transparent)
    of the image at ``path``. Raises ImageRefused if it cannot be decoded; an image with
    too many pixels to decode safely keeps its dimensions and gets no thumbnail."""
    try:
        im = _open(path)
    except ImageRefused as e:
        if e.size is not None:
            return ImageFacts(e.size[0], e.size[1], None)
        raise
    with im:
        frame = _decoded(im)
    width, height = frame.size  # upright, as clients show it
    frame.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if frame.mode == "RGBA":
        frame.save(out, "PNG", optimize=True)
        mime = "image/png"
    else:
        frame.save(out, "JPEG", quality=85)
        mime = "image/jpeg"
    return ImageFacts(width, height, Thumbnail(out.getvalue(), mime, frame.width, frame.height))
