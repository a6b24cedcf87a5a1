"""Private temporary files for transfers in either direction (MSN ↔ Matrix): one place
that knows where they live and how they are made, so both directions clean up alike."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def reserve(temp_dir: str, prefix: str) -> Path:
    """A new empty file only the bridge can read, in ``temp_dir`` (or the system's temp
    directory's msnbridge/ when empty). Small synchronous file-system calls."""
    directory = Path(temp_dir) if temp_dir else Path(tempfile.gettempdir()) / "msnbridge"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix=prefix, dir=directory)
    os.close(fd)
    return Path(name)


def remove(path: Path) -> None:
    """Removes a transfer's file; one already gone is no error."""
    with contextlib.suppress(OSError):
        os.unlink(path)
