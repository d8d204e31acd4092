"""Serve the dashboard with Voilà on the loopback interface, with safe settings.

``python -m radipop_widgets.serve [--port 8866] [--data FOLDER] [--token TOKEN]
[--cull-after SECONDS] [--max-kernels N] [--standby N]``

Besides Voilà's own options this launcher

- reads every websocket frame a client sends to a kernel with size and count checks
  before jupyter_server's deserializers allocate anything (:mod:`.serve_guard`): a bad
  frame is dropped and its socket closed, the server keeps answering everyone else;
- guards Voilà 0.5's reader of the frames sent to the browser the same way;
- frees the kernel of a page that is gone: the page's shutdown beacon is accepted (the
  page gets the ``_xsrf`` cookie the beacon sends back), and a kernel without a websocket
  connection is shut down ``--cull-after`` seconds after its last activity or its
  last disconnection;
- caps the kernels per server (``--max-kernels``): when full, kernels of closed pages are
  reclaimed first, and if every kernel has a page a clear "dashboard full" page is shown;
- keeps ``--standby`` kernels ready for the next page (Voilà's preheated kernels: the
  notebook run, the first study loaded, shown once a page takes the kernel);
- keeps the token out of the log and out of the kernels' environment: the one line that
  tells the URL to open is printed to stdout once.
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import os
import sys
import uuid
from pathlib import Path
from typing import ClassVar

from traitlets.config import Config

from . import serve_guard
from .serve_pages import FREE_ON_PAGEHIDE, full_page

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "radipop.ipynb"

CULL_AFTER = 45
"""Seconds a kernel without a page lives on (a closed tab frees it within a minute)."""

MAX_KERNELS = 8
"""Kernels (open pages) per server by default: each holds ~150 MB plus its CT."""

STANDBY = 1
"""Kernels kept started, with the notebook run and the first study loaded, for the next
page (Voilà's preheated kernels): a page opens in about half the time."""

RECLAIM_AFTER = 10
"""When full, kernels without a connection for this long are reclaimed for a new page."""


# Voilà (jupyter_server, tornado, nbconvert) takes ~2.3 s to import, so it is imported
# only where the server is patched or started: importing this module (the tests, pytest's
# doctest collection, ``--help``) stays instant, and the package's core never loads it.

def _websocket_handler():
    """Voilà's kernel websocket handler module."""
    from voila.tornado import kernel_websocket_handler  # lazy: see above

    return kernel_websocket_handler


def guarded_read_header(ws_msg: bytes):
    """Voilà's v1 header reader for frames sent to the browser, with size checks first."""
    return serve_guard.outgoing_v1_header(ws_msg)


def install_websocket_guard() -> None:
    """Replace Voilà's header reader by :func:`guarded_read_header` (idempotent)."""
    handler = _websocket_handler()
    if not hasattr(handler, "_unguarded_read_header"):
        handler._unguarded_read_header = handler.read_header_from_binary_message
        handler.read_header_from_binary_message = guarded_read_header


def cull_interval(cull_after: int) -> int:
    """Seconds between two passes of the culler: a fifth of the timeout, 1 to 10 s.

    >>> cull_interval(45), cull_interval(5), cull_interval(3600)
    (9, 1, 10)
    """
    return max(1, min(10, int(cull_after) // 5))


class _Admission:
    """A kernel slot reserved for one page until its kernel is started (or it fails)."""

    def __init__(self, manager):
        self.manager = manager
        self.held = True
        manager._reserved += 1

    def release(self) -> None:
        if self.held:
            self.held = False
            self.manager._reserved -= 1


_ADMISSION: contextvars.ContextVar[_Admission | None] = contextvars.ContextVar(
    "radipop_admission", default=None)


@functools.cache
def server_classes():
    """The Voilà classes of the dashboard server (built on first use: imports Voilà)."""
    from jupyter_server._tz import utcnow
    from jupyter_server.services.kernels.connection.channels import (
        ZMQChannelsWebsocketConnection,
    )
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from tornado import web
    from traitlets import Integer
    from traitlets import List as ListTrait
    from voila.app import Voila as VoilaApp
    from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
    from voila.tornado.handler import TornadoVoilaHandler

    class GuardedConnection(ZMQChannelsWebsocketConnection):
        """Kernel websocket connection that reads no client frame before checking it."""

        def connect(self):
            # Updates are small messages written in bursts (a style rule, canvas commands):
            # without TCP_NODELAY the later ones wait for the browser's delayed ACK.
            self.websocket_handler.set_nodelay(True)
            return super().connect()

        def handle_incoming_message(self, incoming_msg) -> None:
            problem = serve_guard.frame_problem(incoming_msg, self.subprotocol)
            if problem is None:
                return super().handle_incoming_message(incoming_msg)
            self.log.warning("Dropped a websocket frame for kernel %s and closed the socket: %s",
                             self.kernel_id, problem)
            self.websocket_handler.close(1008, "unreadable frame")  # 1008: policy violation
            return None

    class DashboardKernelManager(AsyncMappingKernelManager):
        """Kernel manager with a cap on pages, kernel idle time counted from the last
        disconnection, no secret in the kernels' environment, and standby kernels.

        A standby kernel is one Voilà's preheat pool started (notebook run, study loaded)
        for the next page; it is no page's until a page takes it, and is never culled or
        reclaimed meanwhile. The cap counts pages only: standby kernels come on top."""

        max_kernels = Integer(MAX_KERNELS, config=True,
                              help="Most kernels (open pages) at a time.")
        secrets = ListTrait(config=True, help="Strings kept out of the kernels' environment.")

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._reserved = 0  # slots of admitted pages whose kernel is not started yet
            self._standby: set[str] = set()  # kernels of the pool no page has taken yet

        def page_kernels(self) -> int:
            return sum(1 for kernel_id in self._kernels if kernel_id not in self._standby)

        def at_capacity(self) -> bool:
            return self.page_kernels() + self._reserved >= self.max_kernels

        def hand_out_standby(self, notebook: str) -> None:
            """The pool's first kernel becomes a page's: Voilà hands it out next, in the
            same step of the event loop (no await in between)."""
            task = self._pools[notebook][0]
            if not task.done():
                task.add_done_callback(self._taken)
            else:
                self._taken(task)

        def _taken(self, task) -> None:
            if not task.cancelled() and task.exception() is None:
                kernel_id = task.result()["kernel_id"]
                self._standby.discard(kernel_id)
                if kernel_id in self._kernels:  # idle from now on, not from its start
                    self._kernels[kernel_id].last_activity = utcnow()

        def admit(self) -> _Admission:
            """Reserve a kernel slot for a page (check :meth:`at_capacity` first)."""
            return _Admission(self)

        def orphans(self, min_idle: float) -> list[str]:
            """Kernels without a websocket connection, idle for ``min_idle`` seconds."""
            now = utcnow()
            found = []
            for kernel_id in list(self._kernels):
                if kernel_id in self._standby:
                    continue
                kernel = self._kernels[kernel_id]
                # A kernel still starting has no last_activity yet: reading it raises.
                last = kernel.last_activity if kernel.trait_has_value("last_activity") else None
                if (self._kernel_connections.get(kernel_id, 0) == 0 and last is not None
                        and getattr(kernel, "execution_state", None) != "busy"
                        and (now - last).total_seconds() >= min_idle):
                    found.append(kernel_id)
            return found

        async def reclaim(self, min_idle: float = RECLAIM_AFTER) -> int:
            """Shut the orphaned kernels down; return how many."""
            reclaimed = 0
            for kernel_id in self.orphans(min_idle):
                if kernel_id in self:
                    self.log.info("Full: shutting down kernel %s, which has no page", kernel_id)
                    await self.shutdown_kernel(kernel_id)
                    reclaimed += 1
            return reclaimed

        async def start_kernel(self, *args, **kwargs):
            env = kwargs.get("env")
            if env:
                kwargs["env"] = {key: serve_guard.redact(str(value), self.secrets)
                                 for key, value in env.items()}
            if (env or {}).get("VOILA_PREHEAT") == "True":  # for the pool: no page's yet
                # Named before it starts: it is in the table seconds before start returns,
                # and must not count as a page meanwhile.
                kernel_id = kwargs.setdefault("kernel_id", str(uuid.uuid4()))
                self._standby.add(kernel_id)
                try:
                    return await super().start_kernel(*args, **kwargs)
                except BaseException:
                    self._standby.discard(kernel_id)
                    raise
            admission = _ADMISSION.get()
            admitted = admission is not None and admission.manager is self and admission.held
            if kwargs.get("kernel_id") is None and not admitted and self.at_capacity():
                raise web.HTTPError(503, f"the dashboard is full ({self.max_kernels} kernels)")
            if not admitted:  # a kernel not started for a page: hold a slot while it starts
                admission = self.admit()
            try:
                return await super().start_kernel(*args, **kwargs)
            finally:
                admission.release()

        def notify_disconnect(self, kernel_id):
            super().notify_disconnect(kernel_id)
            # Idle time of a kernel without a page counts from its last disconnection, not
            # from its last message: a tab open for an hour without edits and then closed
            # lives on for cull_idle_timeout seconds, no less.
            if self._kernel_connections.get(kernel_id) == 0 and kernel_id in self._kernels:
                self._kernels[kernel_id].last_activity = utcnow()

    class DashboardPageHandler(TornadoVoilaHandler):
        """The dashboard page: sets the ``_xsrf`` cookie, refuses a page when full."""

        @web.authenticated
        async def get(self, path=None):
            # The page's beforeunload beacon (POST voila/api/shutdown/<kernel>) sends this
            # cookie back as its _xsrf field; without it the shutdown is refused (403).
            self.xsrf_token  # noqa: B018  (the property sets the cookie)
            manager = self.kernel_manager
            if path or not hasattr(manager, "admit"):  # not the page: Voilà redirects
                await super().get(path=path)
                return
            if manager.at_capacity():
                await manager.reclaim()
            if manager.at_capacity():
                self.log.warning("Full: refused a page (%d kernels)", manager.max_kernels)
                self.set_status(503)
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.set_header("Cache-Control", "no-store")
                self.set_header("Retry-After", "30")
                self.finish(full_page(manager.max_kernels))
                return
            # Checked and reserved (or a standby kernel taken, already counted) with no
            # await in between: concurrent pages cannot both take the last slot; the
            # reservation passes to start_kernel through the context.
            admission = None
            if self._takes_standby():
                manager.hand_out_standby(self.notebook_path)
            else:
                admission = manager.admit()
                _ADMISSION.set(admission)
            try:
                await super().get(path=path)
            finally:
                if admission is not None:
                    admission.release()
            if not self._finished and self.get_status() == 200:
                self.write(FREE_ON_PAGEHIDE)

        def _takes_standby(self) -> bool:
            """Whether Voilà serves this request from its pool of standby kernels."""
            manager = self.kernel_manager
            if not hasattr(manager, "hand_out_standby") or not self.notebook_path:
                return False
            return self.should_use_rendered_notebook(
                manager.notebook_data.get(self.notebook_path, {}),
                manager.get_pool_size(self.notebook_path), self.get_argument("template", None),
                self.get_argument("theme", None), self.request.arguments)

    class ShutdownHandler(VoilaShutdownKernelHandler):
        """The page's shutdown beacon; a second beacon for the same kernel is no error."""

        shutting_down: ClassVar[set[str]] = set()

        @web.authenticated
        async def post(self, kernel_id):
            manager = self.kernel_manager
            if kernel_id in manager and kernel_id not in self.shutting_down:
                self.shutting_down.add(kernel_id)
                try:
                    await manager.shutdown_kernel(kernel_id)
                finally:
                    self.shutting_down.discard(kernel_id)
            self.set_status(204)
            self.finish()

    class Voila(VoilaApp):  # the name shows in the log: "[Voila] ..."
        """Voilà serving ``DashboardPageHandler`` for the page."""

        def init_handlers(self):
            ours = {TornadoVoilaHandler: DashboardPageHandler,
                    VoilaShutdownKernelHandler: ShutdownHandler}
            return [(rule[0], ours.get(rule[1], rule[1]), *rule[2:])
                    for rule in super().init_handlers()]

    return {"connection": GuardedConnection, "kernel_manager": DashboardKernelManager,
            "page_handler": DashboardPageHandler, "app": Voila}


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


#: Front-end extensions of JupyterLab that a Voila page cannot load.
LAB_ONLY_EXTENSIONS = ("@jupyterhub/jupyter-server-proxy",)


def voila_config(cull_after: int = CULL_AFTER, max_kernels: int = MAX_KERNELS,
                 token: str | None = None, standby: int = STANDBY):
    """Safe settings that the command line cannot express cleanly."""
    classes = server_classes()
    config = Config()
    # Serve no static files from the working directory: images of patients may be there.
    config.VoilaConfiguration.file_allowlist = []
    # JupyterLab's front-end extensions installed beside Voila (jupyter-server-proxy for the
    # lab server) fail to load in a Voila page and only slow it down.
    config.VoilaConfiguration.extension_denylist = list(LAB_ONLY_EXTENSIONS)
    # Client frames are checked before they are read; nothing a browser sends is large.
    config.Voila.kernel_websocket_connection_class = classes["connection"]
    config.Voila.tornado_settings = {"websocket_max_message_size":
                                     serve_guard.MAX_MESSAGE_BYTES}
    # A closed tab must not keep its kernel (and the CT in it) alive: its beacon shuts it
    # down, and a kernel without a websocket connection is culled after cull_after s.
    config.VoilaConfiguration.multi_kernel_manager_class = classes["kernel_manager"]
    config.MappingKernelManager.cull_idle_timeout = int(cull_after)
    config.MappingKernelManager.cull_interval = cull_interval(cull_after)
    config.MappingKernelManager.cull_connected = False
    config.MappingKernelManager.cull_busy = False
    config.DashboardKernelManager.max_kernels = int(max_kernels)
    config.DashboardKernelManager.secrets = [token] if token else []
    if standby:
        config.VoilaConfiguration.preheat_kernel = True
        config.VoilaKernelManager.kernel_pools_config = {"default": {"pool_size": standby}}
    return config


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        kind = "positive whole number" if least else "whole number, 0 or more"
        raise argparse.ArgumentTypeError(f"{text} is not a {kind}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _count(text: str) -> int:
    return _whole_number(text, 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8866")))
    parser.add_argument("--data", default=os.environ.get("RADIPOP_DATA"),
                        help="folder of studies to offer (default: the bundled phantom)")
    parser.add_argument("--token", default=os.environ.get("RADIPOP_TOKEN"),
                        help="require this token in the URL (default: none, loopback only)")
    parser.add_argument("--cull-after", type=_positive_int,
                        default=os.environ.get("RADIPOP_CULL_AFTER", str(CULL_AFTER)),
                        help="seconds a kernel without a page lives on (default %(default)s)")
    parser.add_argument("--max-kernels", type=_positive_int,
                        default=os.environ.get("RADIPOP_MAX_KERNELS", str(MAX_KERNELS)),
                        help="most open dashboard pages at a time (default %(default)s)")
    parser.add_argument("--standby", type=_count,
                        default=os.environ.get("RADIPOP_STANDBY", str(STANDBY)),
                        help="kernels kept ready for the next page, on top of the pages "
                             "(default %(default)s; 0: none)")
    args = parser.parse_args(argv)
    if args.data:
        data = Path(args.data).expanduser().resolve()
        if not data.is_dir():
            parser.error(f"--data {data} is not a folder: give the folder that holds the studies")
        os.environ["RADIPOP_DATA"] = str(data)
    # Kernels inherit this process's environment: the token is not theirs to know.
    os.environ.pop("RADIPOP_TOKEN", None)
    serve_guard.install_log_redaction([args.token] if args.token else [])
    install_websocket_guard()
    app = server_classes()["app"]
    config = voila_config(args.cull_after, args.max_kernels, args.token, args.standby)

    query = f"?token={args.token}" if args.token else ""
    print(f"radipop-widgets dashboard: http://127.0.0.1:{args.port}/{query}", flush=True)
    app.launch_instance(argv=voila_arguments(args.port, args.token), config=config)


if __name__ == "__main__":
    sys.exit(main())
