"""ports/common/link_log.c, the path every port diagnostic takes to the link (the ESP32 port's
ESP-IDF logs and TFLM DebugLog, the host port's messages), compiled with the host gcc under
ASan/UBSan and fed what the ESP32 port feeds it. The host board runs the same file end to end
(tests/firmware/test_boot.py)."""

from __future__ import annotations

from tests.support.cbuild import REPO, build_c_program, run_c_program

HERE = REPO / "tests" / "firmware"
COMMON = REPO / "firmware" / "ports" / "common"
LINE_MAX = 200


def test_log_text_becomes_one_clean_log_frame_per_line_and_nothing_leaks() -> None:
    exe = build_c_program(
        "link_log_driver",
        [HERE / "link_log_driver.c", COMMON / "link_log.c"],
        [COMMON, REPO / "firmware" / "lib" / "fedcore" / "include"],
    )
    lines = run_c_program(exe).decode().splitlines()
    assert lines == [
        "LOG 2 link_log: 2 log texts dropped before the link was ready",
        "LOG 2 W (312) spi_flash: Detected size(4096k) larger",  # ANSI colours removed
        "LOG 3 E (400) nvs: ESP_ERR_NVS_NOT_FOUND",
        "LOG 1 I (401) main_task: Calling app_main()",
        "LOG 0 D (402) uart: debug",
        "LOG 1 Failed to allocate 100 bytes",  # MicroPrintf's two calls, one frame
        "LOG 1 outer",  # the text logged while it was being sent is dropped
        "LOG 1 " + "x" * LINE_MAX,  # a long line goes out in pieces
        "LOG 1 " + "x" * 49,
        "dropped 4",  # 2 before start, 1 inside the UART write, 1 nested
    ]
