"""Serve the dashboard with Voilà on the loopback interface, with safe settings.

``python -m radipop_widgets.serve [--port 8866] [--data FOLDER] [--token TOKEN]``

Besides Voilà's own options this launcher guards Voilà 0.5's binary websocket header
reader: a client that opens the kernel websocket without the v1 subprotocol makes it
read a legacy frame as a v1 header with ~10^17 offsets, which freezes the server for
every user and exhausts memory. The guard rejects offset tables that cannot fit in
the frame.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from traitlets.config import Config

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "radipop.ipynb"


# Voilà (jupyter_server, tornado, nbconvert) takes ~2.3 s to import, so it is imported
# only where the server is patched or started: importing this module (the tests, pytest's
# doctest collection, ``--help``) stays instant.

def _websocket_handler():
    """Voilà's kernel websocket handler module."""
    from voila.tornado import kernel_websocket_handler  # lazy: see above

    return kernel_websocket_handler


def guarded_read_header(ws_msg: bytes):
    """Voilà's v1 header reader, refusing offset tables larger than the frame."""
    handler = _websocket_handler()
    offset_count = int.from_bytes(ws_msg[:8], "little")
    if offset_count < 3 or 8 * (offset_count + 1) > len(ws_msg):
        return None
    return handler._unguarded_read_header(ws_msg)


def install_websocket_guard() -> None:
    """Replace Voilà's header reader by :func:`guarded_read_header` (idempotent)."""
    handler = _websocket_handler()
    if not hasattr(handler, "_unguarded_read_header"):
        handler._unguarded_read_header = handler.read_header_from_binary_message
        handler.read_header_from_binary_message = guarded_read_header


def voila_arguments(port: int, token: str | None, notebook: Path = NOTEBOOK) -> list[str]:
    """Command-line options of a Voilà server bound to 127.0.0.1.

    Examples
    --------
    >>> voila_arguments(8866, None, Path("radipop.ipynb"))[:4]
    ['radipop.ipynb', '--no-browser', '--port=8866', '--Voila.ip=127.0.0.1']
    """
    return [
        str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        f"--Voila.token={token or ''}",
    ]


def voila_config():
    """Safe settings that the command line cannot express cleanly."""
    config = Config()
    # Serve no static files from the working directory: images of patients may be there.
    config.VoilaConfiguration.file_allowlist = []
    # A closed tab must not keep its kernel (and the CT in it) alive for ever.
    config.MappingKernelManager.cull_idle_timeout = 3600
    config.MappingKernelManager.cull_interval = 300
    config.MappingKernelManager.cull_connected = False
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8866)))
    parser.add_argument("--data", default=os.environ.get("RADIPOP_DATA"),
                        help="folder of studies to offer (default: the bundled phantom)")
    parser.add_argument("--token", default=os.environ.get("RADIPOP_TOKEN"),
                        help="require this token in the URL (default: none, loopback only)")
    args = parser.parse_args(argv)
    if args.data:
        data = Path(args.data).expanduser().resolve()
        if not data.is_dir():
            parser.error(f"--data {data} is not a folder: give the folder that holds the studies")
        os.environ["RADIPOP_DATA"] = str(data)
    install_websocket_guard()
    from voila.app import Voila  # lazy: see _websocket_handler

    query = f"?token={args.token}" if args.token else ""
    print(f"radipop-widgets dashboard: http://127.0.0.1:{args.port}/{query}", flush=True)
    Voila.launch_instance(argv=voila_arguments(args.port, args.token), config=voila_config())


if __name__ == "__main__":
    sys.exit(main())
