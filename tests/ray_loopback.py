"""``ray start`` kept on loopback addresses, for the multi-node tests (``python ray_loopback.py
start ...`` takes ``ray start``'s arguments).

On Linux, Ray replaces a loopback ``--node-ip-address`` or ``--address`` (127.0.0.1) by the
machine's routable address (``ray._private.services.resolve_ip_for_localhost``), so a cluster
started with ``--node-ip-address=127.0.0.1`` still binds and talks on that address. This
launcher keeps the loopback address as given; everything else is ``ray start``.
"""

from __future__ import annotations

import sys

import ray._private.services as services
from ray._common.network_utils import is_localhost


def _keep_loopback(host: str) -> str:
    if not host:
        raise ValueError(f"Malformed host: {host}")
    return "127.0.0.1" if is_localhost(host) else host


if __name__ == "__main__":
    services.resolve_ip_for_localhost = _keep_loopback
    from ray.scripts.scripts import main

    sys.exit(main())
