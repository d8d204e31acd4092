"""One user's dashboard behind JupyterHub: limits, private folders, then the proxy.

JupyterHub's spawner runs ``python -m radipop_widgets.user_server`` once per user, as that
user (``deploy/hub/jupyterhub_config.py``, docs/LAB_SERVER.md). This launcher

1. applies the user's limits to itself, so that every process it starts inherits them:
   ``RLIMIT_AS`` (address space) = ``MEM_LIMIT`` bytes, the hub's ``Spawner.mem_limit``;
   the CPUs it may run on (``sched_setaffinity``) = ``ceil(CPU_LIMIT)`` cores, the hub's
   ``Spawner.cpu_limit``: the cores the hub chose (``RADIPOP_CPUS``, the least used), else
   chosen from the user's name;
   ``nice`` ``RADIPOP_NICE`` (default 10); the numeric libraries' thread counts; no core
   files (a core dump of a kernel holds the CT); umask 077;
2. makes the user's folders private (mode 0700): ``RADIPOP_USER_ROOT`` with the session
   workspace (``RADIPOP_WORKSPACE``), the exports (``RADIPOP_OUTPUT``) and the runtime
   files (the kernels' connection files and IPC sockets, Voilà's settings);
3. becomes jupyter-server-proxy's ``standaloneproxy`` on the port the hub gave it
   (``JUPYTERHUB_SERVICE_URL``): it lets in only requests that JupyterHub's OAuth says are
   this user's, and starts ``python -m radipop_widgets.user_server serve`` on the first
   request: ``radipop_widgets.serve`` (the dashboard's Voilà, with its guards, kernel cap and
   kernel culling) with its output redacted. Voilà listens on 127.0.0.1 with a random
   token that only the proxy sends (in a header), so another local user cannot bypass the
   hub by connecting to its port; its kernels talk over IPC sockets in a private folder,
   not over TCP.

Only the standard library is imported at module level (jupyter-server-proxy is imported
by :func:`main`).

Examples
--------
>>> cpu_set(1, "alice", [0, 1]), cpu_set(1, "bob", [0, 1]), cpu_set(4, "alice", [0, 1])
([1], [0], [0, 1])
>>> Limits.from_env({"MEM_LIMIT": "2147483648", "CPU_LIMIT": "1.5"})
Limits(memory_bytes=2147483648, cpus=1.5, nice=10, cores=None)
>>> Limits.from_env({"CPU_LIMIT": "1", "RADIPOP_CPUS": "1"}).cores
(1,)
>>> thread_env(1.5)["OMP_NUM_THREADS"]
'2'
"""

from __future__ import annotations

import atexit
import json
import math
import os
import resource
import secrets
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import RadipopError

NICE = 10
"""Default niceness of a user's processes: the hub and the proxy stay responsive."""

PRIVATE = 0o700

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS")

START_TIMEOUT = 90
"""Seconds the proxy waits for Voilà to answer after starting it (a loaded machine)."""


class UserServerError(RadipopError):
    """A user's server cannot be set up safely (folders, limits, hub settings)."""


@dataclass(frozen=True)
class Limits:
    """The resource limits of one user's server.

    Attributes
    ----------
    memory_bytes : int or None
        Address space of each process (``RLIMIT_AS``); None = unlimited.
    cpus : float or None
        CPU cores the user's processes may run on (rounded up); None = all.
    nice : int
        Niceness added to the user's processes.
    cores : tuple of int or None
        The cores to run on, when the hub chose them (``RADIPOP_CPUS``, the least used
        by the other users' servers); else they are chosen by :func:`cpu_set`.
    """

    memory_bytes: int | None
    cpus: float | None
    nice: int = NICE
    cores: tuple[int, ...] | None = None

    @classmethod
    def from_env(cls, env=None) -> Limits:
        """Limits from ``MEM_LIMIT`` / ``CPU_LIMIT`` (set by JupyterHub) and ``RADIPOP_NICE``.

        >>> Limits.from_env({})
        Limits(memory_bytes=None, cpus=None, nice=10, cores=None)
        >>> Limits.from_env({"MEM_LIMIT": "lots"})
        Traceback (most recent call last):
        ...
        radipop_widgets.user_server.UserServerError: MEM_LIMIT='lots' is not a number of bytes: \
set c.Spawner.mem_limit in the hub's config (e.g. '3G')
        """
        env = os.environ if env is None else env
        memory = _number(env, "MEM_LIMIT", int, "a number of bytes",
                         "set c.Spawner.mem_limit in the hub's config (e.g. '3G')")
        cpus = _number(env, "CPU_LIMIT", float, "a number of CPUs",
                       "set c.Spawner.cpu_limit in the hub's config (e.g. 1.0)")
        nice = _number(env, "RADIPOP_NICE", int, "a niceness", "give 0 to 19")
        if memory is not None and memory <= 0 or cpus is not None and cpus <= 0:
            raise UserServerError(f"MEM_LIMIT={memory} / CPU_LIMIT={cpus}: limits must be "
                                  "positive (unset them for no limit)")
        try:
            cores = tuple(int(c) for c in env.get("RADIPOP_CPUS", "").split(",") if c.strip())
        except ValueError:
            raise UserServerError(f"RADIPOP_CPUS={env['RADIPOP_CPUS']!r} is not a list of "
                                  "CPU numbers: give e.g. '0,1' or leave it unset") from None
        return cls(memory or None, cpus or None, NICE if nice is None else nice, cores or None)


def _number(env, name, kind, what, fix):
    text = env.get(name)
    if text in (None, ""):
        return None
    try:
        return kind(text)
    except ValueError:
        raise UserServerError(f"{name}={text!r} is not {what}: {fix}") from None


def cpu_set(cpus: float | None, key: str, available) -> list[int]:
    """The ``ceil(cpus)`` cores of ``available`` a user runs on, starting at a core
    chosen from ``key`` (the user's name), consecutive and wrapping around."""
    available = sorted(available)
    if cpus is None or math.ceil(cpus) >= len(available):
        return available
    start = zlib.crc32(key.encode()) % len(available)
    return [available[(start + i) % len(available)] for i in range(math.ceil(cpus))]


def thread_env(cpus: float | None) -> dict[str, str]:
    """Thread counts of the numeric libraries for ``cpus`` cores (empty when unlimited)."""
    if cpus is None:
        return {}
    return dict.fromkeys(THREAD_VARIABLES, str(math.ceil(cpus)))


def apply_limits(limits: Limits, key: str) -> dict[str, object]:
    """Apply ``limits`` to this process (and so to everything it starts); return them.

    The hard limits are lowered too: the user's code cannot raise them again.
    """
    if limits.memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    available = os.sched_getaffinity(0)
    cpus = sorted(set(limits.cores or ()) & available) or cpu_set(limits.cpus, key, available)
    os.sched_setaffinity(0, cpus)
    if limits.nice:
        os.nice(limits.nice)
    os.umask(0o077)
    os.environ.update(thread_env(limits.cpus))
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")  # glibc reserves 64 MB per thread arena
    return {"address_space": limits.memory_bytes, "cpus": cpus,
            "nice": os.getpriority(os.PRIO_PROCESS, 0)}


def private_folder(path: Path) -> Path:
    """Create ``path`` (mode 0700) or check that it is this user's; make it private."""
    path.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    owner = path.stat().st_uid
    if owner != os.getuid():
        raise UserServerError(f"{path} belongs to uid {owner}, not to this user "
                              f"(uid {os.getuid()}): give each user a folder of their own "
                              "(RADIPOP_USER_ROOT)")
    path.chmod(PRIVATE)
    return path


def user_folders(root: Path) -> dict[str, Path]:
    """The user's private folders under ``root``: workspace, exports, and the runtime,
    Jupyter, IPython and cache folders (the user's home may not exist or not be theirs)."""
    root = private_folder(Path(root))
    names = {"RADIPOP_WORKSPACE": "workspace", "RADIPOP_OUTPUT": "exports",
             "JUPYTER_RUNTIME_DIR": ".runtime", "JUPYTER_DATA_DIR": ".jupyter",
             "IPYTHONDIR": ".ipython", "RADIPOP_CACHE": ".cache"}
    return {variable: private_folder(root / name) for variable, name in names.items()}


IPC_NAME_CHARS = 72
"""Characters Voilà and jupyter_client add to the folder of a kernel's IPC socket."""

SOCKET_PATH_MAX = 107
"""Longest path of a unix socket on Linux (``sun_path`` holds 108 bytes with the NUL)."""


def kernel_folder(runtime: Path) -> Path:
    """Where the kernels' connection files and IPC sockets go: the private runtime folder
    when its path is short enough for a unix socket, else a new private folder in the
    system's temporary folder (removed when the server stops)."""
    if len(str(runtime)) + IPC_NAME_CHARS <= SOCKET_PATH_MAX:
        return runtime
    folder = Path(tempfile.mkdtemp(prefix="radipop-"))  # mode 0700, this user's
    atexit.register(shutil.rmtree, folder, True)
    return folder


def voila_settings(runtime: Path, prefix: str) -> Path:
    """Write the Voilà settings the hub needs into a config folder of the runtime folder.

    Voilà serves under the user's URL prefix, keeps the kernels' connection files in the
    private runtime folder and connects to them over IPC sockets there. Returns the
    folder to give as ``JUPYTER_CONFIG_DIR``.
    """
    folder = private_folder(runtime / "jupyter-config")
    settings = {"Voila": {"base_url": prefix.rstrip("/") + "/",
                          "connection_dir_root": str(kernel_folder(runtime))},
                "KernelManager": {"transport": "ipc"}}
    target = folder / "voila.json"
    target.write_text(json.dumps(settings, indent=1), encoding="utf-8")
    return folder


def proxy_settings(prefix: str, token: str, environment: dict[str, str]):
    """The ``standaloneproxy`` configuration: Voilà on ``{port}``, reached with ``token``."""
    from traitlets.config import Config

    from .serve_guard import MAX_MESSAGE_BYTES

    config = Config()
    proxy = config.StandaloneProxyServer
    proxy.base_url = prefix
    proxy.command = [sys.executable, "-m", "radipop_widgets.user_server", "serve",
                     "--port={port}"]
    proxy.environment = {**environment, "RADIPOP_TOKEN": token}
    proxy.request_headers_override = {"Authorization": f"token {token}"}
    proxy.absolute_url = True  # Voilà serves under the prefix itself
    proxy.timeout = START_TIMEOUT
    # The proxy's own activity reports say "active" every interval, whatever the user
    # does, so the idle culler would never cull: the hub reads the activity of the
    # user's route from configurable-http-proxy instead (requests and websocket data).
    proxy.activity_interval = 0
    proxy.websocket_max_message_size = MAX_MESSAGE_BYTES
    return config


class RedactedStream:
    """A text stream that hides ``secrets`` (and any ``token=...``) before writing.

    >>> import io
    >>> out = io.StringIO()
    >>> _ = RedactedStream(out, ["s3cret"]).write("http://127.0.0.1:1/?token=s3cret")
    >>> out.getvalue()
    'http://127.0.0.1:1/?token=[redacted]'
    """

    def __init__(self, stream, secrets):
        self.stream = stream
        self.secrets = [s for s in secrets if s]

    def write(self, text):
        from .serve_guard import redact

        return self.stream.write(redact(text, self.secrets))

    def __getattr__(self, name):
        return getattr(self.stream, name)


def serve_dashboard(argv) -> None:
    """``radipop_widgets.serve`` with its output redacted: the line that gives the URL with
    the token goes to the hub's log, which must not hold a way around the hub."""
    from . import serve

    sys.stdout = RedactedStream(sys.stdout, [os.environ.get("RADIPOP_TOKEN", "")])
    serve.main(list(argv))


def main(argv=None) -> None:
    """Set the user's server up and run the proxy (as the process the hub started);
    ``serve ARGS`` runs the dashboard's Voilà (the proxy's command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        serve_dashboard(argv[1:])
        return
    env = os.environ
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    root = env.get("RADIPOP_USER_ROOT")
    if not prefix or not env.get("JUPYTERHUB_SERVICE_URL") or not root:
        raise UserServerError("JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_SERVICE_URL and "
                              "RADIPOP_USER_ROOT are not set: this launcher is started by "
                              "JupyterHub (deploy/hub/jupyterhub_config.py); run "
                              "'bash scripts/hub.sh', or scripts/dashboard.sh for one user")
    user = env.get("JUPYTERHUB_USER", "")
    applied = apply_limits(Limits.from_env(), user)
    folders = user_folders(Path(root))
    environment = {name: str(path) for name, path in folders.items()}
    environment["JUPYTER_CONFIG_DIR"] = str(voila_settings(folders["JUPYTER_RUNTIME_DIR"],
                                                           prefix))
    data = env.get("RADIPOP_DATA")
    if data and os.access(data, os.W_OK):
        print(f"[user_server] WARNING: the shared data folder {data} is writable by "
              f"{user}: make it read-only for the users (chmod -R go-w, owned by root)",
              file=sys.stderr, flush=True)
    os.environ.update(environment)
    os.chdir(folders["RADIPOP_WORKSPACE"])  # Voilà reads voila.json from its folder too
    print(f"[user_server] {user}: limits {applied}, folders under {root}", flush=True)

    from jupyter_server_proxy.standalone.app import StandaloneProxyServer

    token = secrets.token_urlsafe(32)
    StandaloneProxyServer.launch_instance(argv=argv,
                                          config=proxy_settings(prefix, token, environment))


if __name__ == "__main__":
    main()
