"""What an ESP32 prints on its link UART besides frames, for the decoders' resync tests.

Shapes follow what ESP-IDF emits on UART0: the ROM's boot banner, ESP-IDF log lines (with ANSI
colours), and a panic dump (register dump, backtrace, reboot). The dump is longer than a frame
(MAX_ENCODED), as the one that once locked the host decoder; a variant carries 0x00 bytes, as
a corrupted print or a binary core dump on the console would.
"""

from __future__ import annotations

from tools.link.frame import MAX_ENCODED

ROM_BOOT = (
    b"ets Jun  8 2016 00:22:57\r\n\r\n"
    b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
    b"configsip: 0, SPIWP:0xee\r\n"
    b"clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00\r\n"
    b"mode:DIO, clock div:2\r\nload:0x3fff0030,len:7104\r\nload:0x40078000,len:15576\r\n"
    b"load:0x40080400,len:4\r\nho 8 tail 4 room 4\r\nload:0x40080404,len:3876\r\n"
    b"entry 0x4008064c\r\n"
)

LOG_LINES = (
    b"\x1b[0;33mW (312) spi_flash: Detected size(4096k) larger than the size in the binary "
    b"image header(2048k). Using the size in the binary image header.\x1b[0m\r\n"
    b"\x1b[0;32mI (342) main_task: Calling app_main()\x1b[0m\r\n"
)


def panic_dump(min_len: int = 2 * MAX_ENCODED) -> bytes:
    """A Guru Meditation dump padded with backtrace lines to at least min_len bytes."""
    registers = b"".join(
        b"A%-2d     : 0x%08x  " % (i, 0x3FFB0000 + 0x44 * i) + (b"\r\n" if i % 4 == 3 else b"")
        for i in range(16)
    )
    dump = (
        b"Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.\r\n"
        b"\r\nCore  0 register dump:\r\nPC      : 0x400d3a5c  PS      : 0x00060330  "
        + registers
        + b"EXCCAUSE: 0x0000001c  EXCVADDR: 0x00000000\r\n\r\nBacktrace:"
    )
    frame_no = 0
    while len(dump) < min_len:
        dump += b" 0x%08x:0x%08x" % (0x400D0000 + 0x31 * frame_no, 0x3FFB5000 + 0x20 * frame_no)
        frame_no += 1
    return dump + b"\r\n\r\nELF file SHA256: 6a0b4c1d\r\n\r\nRebooting...\r\n"


def with_zero_bytes(text: bytes, every: int = 97) -> bytes:
    """The same text with a 0x00 every `every` bytes (binary noise between the lines)."""
    return b"\x00".join(text[i : i + every] for i in range(0, len(text), every))
