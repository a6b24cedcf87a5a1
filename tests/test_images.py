"""Unit tests of the Pillow conversions alone (the whole-bridge proof is in
tests/test_matrix_media.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from msnbridge.matrix.images import ImageRefused, display_picture, image_facts


def encoded(im: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def test_an_animated_gif_becomes_its_first_frame() -> None:
    frames = [Image.new("RGB", (60, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    with Image.open(io.BytesIO(display_picture(gif))) as im:
        assert (im.format, im.size) == ("PNG", (96, 96))
        r, _g, b = im.convert("RGB").getpixel((48, 48))
        assert r > 200 and b < 50


def test_transparency_is_kept() -> None:
    data = encoded(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), "PNG")
    with Image.open(io.BytesIO(display_picture(data))) as im:
        assert im.mode == "RGBA" and im.getpixel((5, 5))[3] == 0


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = encoded(Image.new("1", (8_000, 8_000)), "PNG")  # 64 Mpx in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(ImageRefused, match="pixels"):
        display_picture(bomb)
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    facts = image_facts(path)  # its size is known from the header; no thumbnail
    assert (facts.width, facts.height, facts.thumbnail) == (8_000, 8_000, None)
    # Past Pillow's own bound even the header is refused (the file is then posted as m.file).
    path.write_bytes(encoded(Image.new("1", (15_000, 15_000)), "PNG"))
    with pytest.raises(ImageRefused, match="pixels"):
        image_facts(path)


def test_not_an_image_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ImageRefused, match="not an image"):
        display_picture(b"hello")
    path = tmp_path / "cut.jpg"
    path.write_bytes(encoded(Image.new("RGB", (100, 100)), "JPEG")[:300])
    with pytest.raises(ImageRefused):
        image_facts(path)


def test_a_small_image_gets_a_thumbnail_of_its_own_size(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    path.write_bytes(encoded(Image.new("RGB", (40, 20), (1, 2, 3)), "PNG"))
    facts = image_facts(path)
    assert facts.thumbnail is not None
    assert (facts.width, facts.height) == (40, 20)
    assert (facts.thumbnail.mimetype, facts.thumbnail.width, facts.thumbnail.height) == (
        "image/jpeg",
        40,
        20,
    )
