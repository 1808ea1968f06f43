"""Virtual devices: host firmware processes on ptys and QEMU mps2-an386 instances on socket://.

    with host_fleet(firmware, n=4, state_dir=tmp) as devices:
        for dev in devices:
            DeviceClient.open(dev.url)...

Every launcher is a context manager that stops what it started, by PID, also when the body
raises or the user interrupts.
"""

from tools.fleet.launch import (
    QEMU_DEVICE_ID_ADDR,
    FleetError,
    VirtualDevice,
    host_fleet,
    qemu_fleet,
    start_host_device,
    start_qemu_device,
    write_sensor_file,
)

__all__ = [
    "QEMU_DEVICE_ID_ADDR",
    "FleetError",
    "VirtualDevice",
    "host_fleet",
    "qemu_fleet",
    "start_host_device",
    "start_qemu_device",
    "write_sensor_file",
]
