"""A TCP forwarder: ``python -m tooling.cluster.forward LISTEN_HOST PORT TARGET_HOST TARGET_PORT``.

The node uses it to make the loopback-only kube-apiserver reachable on the node address, where
the ``kubernetes`` Service's endpoints point (Pods cannot reach the host's 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def _serve(listen: str, port: int, target: str, target_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    server = await asyncio.start_server(handle, listen, port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"forwarding {listen}:{port} -> {target}:{target_port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str]) -> int:
    listen, port, target, target_port = argv
    asyncio.run(_serve(listen, int(port), target, int(target_port)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
