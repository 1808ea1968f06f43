"""Static checks of the ESP32 port, which CI cannot compile (no Xtensa toolchain or ESP-IDF
here, DESIGN.md §7). They catch the mistakes issue 14 found by hand: a header whose component
is not in REQUIRES, a porting-contract function left out, raw text on the link UART, a wait
that rounds to 0 ticks, and build files that disagree on the supported ESP-IDF range. The port's
shared logic (ports/common/link_log.c, fedcore) is compiled and run on the host and QEMU boards.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORT = ROOT / "firmware" / "ports" / "esp32"
CONTRACT = ROOT / "firmware" / "lib" / "fedcore" / "include" / "fedcore" / "platform"
COMPONENT_CMAKE = ROOT / "firmware" / "CMakeLists.txt"

# ESP-IDF 5.3-5.5 header -> the component that provides it (checked in the v5.3 and v5.5 trees).
# Components every ESP-IDF component gets anyway (COMPONENT_REQUIRES_COMMON: freertos, log,
# esp_system, esp_hw_support, esp_common, ...) map to None.
IDF_HEADERS = {
    "driver/uart.h": "esp_driver_uart",
    "nvs.h": "nvs_flash",
    "nvs_flash.h": "nvs_flash",
    "esp_timer.h": "esp_timer",
    "bootloader_random.h": "bootloader_support",
    "esp_err.h": None,
    "esp_log.h": None,
    "esp_mac.h": None,
    "esp_random.h": None,
    "esp_system.h": None,
    "esp_task_wdt.h": None,
    "freertos/FreeRTOS.h": None,
    "freertos/task.h": None,
    "sdkconfig.h": None,
}


def _port_sources() -> str:
    return "\n".join(p.read_text() for p in sorted(PORT.glob("*.c")))


def _required_components() -> set[str]:
    text = COMPONENT_CMAKE.read_text()
    requires = re.search(r"REQUIRES (.*?)\)", text, re.S)
    assert requires, "firmware/CMakeLists.txt has no REQUIRES"
    names = set(requires.group(1).split())
    if "${FEDHEAD_UART_COMPONENT}" in names:  # resolved by the version check in the file
        names.add("esp_driver_uart")
    return names


def test_every_idf_header_the_port_includes_is_required() -> None:
    included = re.findall(r'#include "([^"]+)"', _port_sources())
    idf = [h for h in included if not h.startswith(("fedcore/", "../common/", "esp32_port"))]
    unknown = [h for h in idf if h not in IDF_HEADERS]
    assert not unknown, f"add {unknown} to IDF_HEADERS with the component that provides it"
    missing = {IDF_HEADERS[h] for h in idf} - {None} - _required_components()
    assert not missing, f"firmware/CMakeLists.txt REQUIRES lacks {sorted(missing)}"
    assert "espressif__esp-tflite-micro" in _required_components()


def test_the_port_implements_the_whole_porting_contract() -> None:
    declared = set()
    for header in CONTRACT.glob("*.h"):
        declared |= set(re.findall(r"^\S[^(;]*?\b(fc_\w+)\(", header.read_text(), re.M))
    assert "fc_platform_reset_reason" in declared
    source = _port_sources()
    defined = set(re.findall(r"^\S[^;(]*?\b(fc_\w+)\([^;]*?\)\s*\{", source, re.M))
    assert declared <= defined, f"missing in ports/esp32: {sorted(declared - defined)}"


def test_no_raw_text_reaches_the_link_uart() -> None:
    source = _port_sources()
    raw = re.findall(
        r"\b(printf|puts|putchar|ESP_LOG[EWIDV]|ESP_EARLY_LOG[EWIDV]|"
        r"esp_rom_printf|ESP_ERROR_CHECK)\s*\(",
        source,
    )
    assert not raw, f"ports/esp32 writes text or aborts outside LOG frames: {raw}"
    assert "esp_log_set_vprintf(log_to_link)" in source
    assert "__wrap_DebugLog" in source
    assert '"-Wl,--wrap=DebugLog"' in COMPONENT_CMAKE.read_text()


def test_no_wait_can_round_to_zero_ticks() -> None:
    source = _port_sources()
    uses = [m.start() for m in re.finditer(r"pdMS_TO_TICKS\(", source)]
    helper = source.index("static TickType_t ticks_at_least_one")
    assert len(uses) == 1 and helper < uses[0] < helper + 200, "use ticks_at_least_one()"
    reads = re.findall(r"uart_read_bytes\([^;]*\);", source)
    assert reads and all("wait" in r for r in reads)


def test_watchdog_setup_matches_sdkconfig() -> None:
    defaults = (ROOT / "boards" / "esp32" / "sdkconfig.defaults").read_text()
    source = _port_sources()
    assert "CONFIG_ESP_TASK_WDT_INIT=n" in defaults
    assert "CONFIG_ESP_TASK_WDT_EN=y" in defaults
    assert ".trigger_panic = true" in source
    assert "esp_task_wdt_add(NULL)" in source and "esp_task_wdt_reset()" in source
    init = source.index("void esp32_platform_init(void)")
    order = [
        source.index(call, init)
        for call in ("init_uart()", "esp_log_set_vprintf", "init_nvs()", "init_watchdog()")
    ]
    assert order == sorted(order), "UART driver first, watchdog last"


def test_supported_idf_range_agrees_everywhere() -> None:
    manifest = (ROOT / "firmware" / "idf_component.yml").read_text()
    assert re.search(r'^\s*idf: ">=5\.3,<5\.6"$', manifest, re.M)
    assert re.search(r'espressif/esp-tflite-micro: "==\d+\.\d+\.\d+"', manifest)
    cmake = COMPONENT_CMAKE.read_text()
    assert 'VERSION_LESS "5.3"' in cmake and 'VERSION_GREATER_EQUAL "5.6"' in cmake
    ini = (ROOT / "platformio.ini").read_text()
    pinned = re.search(r"^platform = espressif32 @ (\S+)$", ini, re.M)
    assert pinned, "pin espressif32 to one release"
    # platform-espressif32 releases and the ESP-IDF they ship (their platform.json).
    idf_of_release = {
        "6.9.0": "5.3.1",
        "6.10.0": "5.4.0",
        "6.11.0": "5.4.1",
        "6.12.0": "5.5.0",
        "6.13.0": "5.5.3",
    }
    assert pinned.group(1) in idf_of_release


def _ini_section(name: str) -> str:
    ini = (ROOT / "platformio.ini").read_text()
    start = ini.index(f"[{name}]")
    end = ini.find("\n[", start + 1)
    return ini[start : end if end >= 0 else len(ini)]


@pytest.mark.parametrize("env", ["esp32", "esp32s3"])
def test_esp32_envs_build_the_production_profile(env: str) -> None:
    for section in (_ini_section("esp32_common"), _ini_section(f"env:{env}")):
        assert "PROFILE" not in section and "FEDHEAD_TEST_BUILD" not in section
    code = [
        line
        for line in COMPONENT_CMAKE.read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    replay_lines = [line for line in code if "FEDHEAD_PROFILE_REPLAY" in line]
    assert len(replay_lines) == 1 and "replay" in "".join(code)  # only with -DFEDHEAD_PROFILE


def test_esp32_replay_env_asks_cmake_for_the_replay_profile() -> None:
    assert "-DFEDHEAD_PROFILE=replay" in _ini_section("env:esp32_replay")
