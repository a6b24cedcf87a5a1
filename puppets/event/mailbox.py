"""Hotmail notifications the notification server forwards."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    inbox_unread: int
    folders_unread: int


@dataclass(frozen=True, slots=True)
class NewMail:
    sender: str
    address: str
    subject: str
    folder: str
