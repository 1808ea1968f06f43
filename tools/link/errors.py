"""Exceptions of the link layer: each says what happened and what to try next."""

from __future__ import annotations


class LinkError(Exception):
    """Base class of every link-layer failure."""


class PortGoneError(LinkError):
    """The port vanished (unplugged board, exited firmware process, closed socket)."""


class LinkTimeoutError(LinkError):
    """No valid answer in time, after every retry."""


class NackError(LinkError):
    """The device refused a request; `code_name` is the PROTOCOL.md §4 name."""

    def __init__(self, request: str, code: int, code_name: str, detail: int) -> None:
        super().__init__(
            f"device answered {request} with NACK {code_name} (code {code}, detail {detail})"
        )
        self.request = request
        self.code = code
        self.code_name = code_name
        self.detail = detail


class ProtocolError(LinkError):
    """The device answered with something the protocol does not allow here."""
