"""PlatformIO monitor filter: `pio device monitor -f fedhead` shows fedhead frames as lines.

PlatformIO loads `filter_*.py` from the project's monitor/ folder. The terminal is switched to
Latin-1 so every byte reaches the filter unchanged (platformio-core issue #4732); decoding and
rendering are the same as `invoke monitor` (tools/monitor/render.py).
"""

import os
import sys

from platformio.device.monitor.filters.base import DeviceMonitorFilterBase

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.monitor.render import MonitorDecoder


class FedheadFrames(DeviceMonitorFilterBase):
    NAME = "fedhead"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._decoder = MonitorDecoder()

    def set_running_terminal(self, terminal):
        if terminal.input_encoding.upper() in ("UTF-8", "UTF8"):
            terminal.set_rx_encoding("Latin-1")
        super().set_running_terminal(terminal)

    def rx(self, text):
        return self._decoder.feed(text.encode("latin-1", "replace"))

    def tx(self, text):
        return text
