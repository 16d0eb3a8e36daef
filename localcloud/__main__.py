"""`python -m localcloud <command> [options]`.

Each service lives in its own package with a `cli.main(argv) -> int`; this module only dispatches.
"""

from __future__ import annotations

import importlib
import sys

SERVICES = {
    "iothub": "localcloud.iothub.cli",
    "servicebus": "localcloud.servicebus.cli",
    "host": "localcloud.functions_host.cli",
    "demo": "localcloud.demo",
    "up": "localcloud.up",
    "down": "localcloud.up",
    "status": "localcloud.up",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SERVICES:
        print("usage: python -m localcloud {" + "|".join(SERVICES) + "} [options]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(SERVICES[argv[0]])
    if argv[0] in ("up", "down", "status"):
        return module.main(argv)
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
