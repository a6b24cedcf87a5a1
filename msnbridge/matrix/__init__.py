"""The Matrix side: a mautrix appservice, its bot, and (later) ghosts and portal rooms."""

from .appservice import MatrixSide

__all__ = ["MatrixSide"]
