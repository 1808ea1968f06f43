"""Byte transports opened by pyserial URL: tty path, pty path, socket://, rfc2217://, loop://.

Every device, real or virtual, goes through `serial.serial_for_url`, so the same code path serves
a USB board, a host-firmware pty and a QEMU socket. Transport errors become `PortGoneError`.
"""

from __future__ import annotations

import contextlib
import time

import serial

from tools.link.errors import PortGoneError

DEFAULT_BAUD = 115200


class Transport:
    """Minimal byte pipe: `write`, `read` (returns b"" on timeout), `close`."""

    url: str = ""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, timeout: float) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialTransport(Transport):
    """A pyserial port. `url` is anything `serial.serial_for_url` accepts.

    Counts the bytes it moved (`bytes_written` host→device, `bytes_read` device→host), which
    is what the demo and the link benchmark report as bytes on the wire."""

    def __init__(self, url: str, baudrate: int = DEFAULT_BAUD, open_timeout: float = 5.0) -> None:
        self.url = url
        self.bytes_written = 0
        self.bytes_read = 0
        self._port = _open_with_retry(url, baudrate, open_timeout)

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
            self.bytes_written += len(data)
        except (serial.SerialException, OSError) as exc:
            raise PortGoneError(
                f"{self.url}: write failed ({exc}); is the device still there?"
            ) from exc

    def read(self, timeout: float) -> bytes:
        """Wait up to `timeout` s for at least one byte, then return what is buffered."""
        try:
            self._port.timeout = max(timeout, 0.0)
            first = self._port.read(1)
            if not first:
                return b""
            waiting = self._port.in_waiting
            data = first + (self._port.read(waiting) if waiting else b"")
            self.bytes_read += len(data)
            return data
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # pyserial's socket backend raises TypeError/AttributeError once closed under it.
            raise PortGoneError(
                f"{self.url}: read failed ({exc}); is the device still there?"
            ) from exc

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()


def _open_with_retry(url: str, baudrate: int, open_timeout: float) -> serial.SerialBase:
    """Open the port, retrying briefly: a QEMU socket or a fresh pty may not be ready yet."""
    deadline = time.monotonic() + open_timeout
    while True:
        try:
            return serial.serial_for_url(url, baudrate=baudrate, timeout=0.1, write_timeout=5.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise PortGoneError(
                    f"cannot open {url!r}: {exc}. Check the path/URL and that no "
                    "other program holds the port."
                ) from exc
            time.sleep(0.1)


def open_transport(url: str, baudrate: int = DEFAULT_BAUD, open_timeout: float = 5.0) -> Transport:
    """Open a device by pyserial URL (`/dev/ttyUSB0`, `/dev/pts/3`, `socket://127.0.0.1:5555`)."""
    return SerialTransport(url, baudrate, open_timeout)
