"""HTTP CONNECT proxy that maps the SDKs' fixed ports (5671, 8883, 443) to the emulator's ports.

azure-iot-device always dials 8883 (or 443 with websockets) but honours `ProxyOptions`, so a device
client can reach an emulator on any port with
`ProxyOptions(proxy_type="HTTP", proxy_addr="127.0.0.1", proxy_port=<connect_proxy port>)`.
Only loopback targets are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


class ConnectProxy:
    def __init__(self, target_host: str, port_map: dict[int, int]) -> None:
        self.target_host = target_host
        self.port_map = port_map

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) < 2 or parts[0].upper() != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            host, _, port_text = parts[1].rpartition(":")
            port = self.port_map.get(int(port_text)) if port_text.isdigit() else None
            if host.lower() not in _LOCAL_NAMES or port is None:
                writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError) as exc:
            log.debug("proxy connection ended: %s", exc)
        finally:
            if upstream_writer is not None:
                upstream_writer.close()
            writer.close()
