"""Acting as a device against the IoT Hub emulator, with the project's own device simulator."""

from __future__ import annotations

from typing import Any

#: Every character IoT Hub allows in a device id that means something in a URL. The decoy is what the
#: first id turns into when the C2D `to` address is not URL-encoded (%41 decodes to A).
ODD_DEVICE = "odd%41#x?y+z!(),:=@$'_*-."
DECOY_DEVICE = "oddA#x?y+z!(),:=@$'_*-."


def device_https(hub: Any, device_id: str, action: str = "complete", count: int = 1, timeout_s: float = 20) -> int:
    """Settle `count` messages of a device over the HTTPS device API; 0 when all were handled."""
    import device_simulator

    args = ["--connection-string", hub.device_connection_string(device_id), "--transport", "https",
            "--https-port", str(hub.ports.https), "--count", str(count), "--timeout", str(timeout_s),
            "--poll-interval", "0.05"]
    if action != "complete":
        args.append(f"--{action}")
    return device_simulator.main(args)
