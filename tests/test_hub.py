"""The lab server (deploy/hub/jupyterhub_config.py) on a real JupyterHub on 127.0.0.1.

Two unix users are created for the test (``useradd``, removed at the end), the hub runs
as root with ``RADIPOP_HUB_ISOLATION=unix`` and its own state folder in /tmp (sqlite db,
cookie secret, proxy token), both users log in over HTTP and open their dashboard; then
the test checks what each may reach and stops everything. :class:`LabHub` is also the
harness of ``benchmarks/bench_hub.py``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
CHP = VENV / "node" / "bin" / "configurable-http-proxy"
CONFIG = REPO / "deploy" / "hub" / "jupyterhub_config.py"
MEM_LIMIT = 3 * 1024**3
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

pytestmark = [pytest.mark.hub, pytest.mark.slow]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def blocked_for_others(path) -> Path | None:
    """The first folder on the way to ``path`` that other unix users cannot enter."""
    for folder in reversed(Path(os.path.realpath(path)).parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


def users_python(folder: Path) -> Path:
    """A Python other unix users can run that sees this venv's packages.

    This venv's interpreter may live where they cannot go (pyenv under /root): then a
    venv of the system's Python of the same version, whose site folder adds this venv's
    and whose share/ and etc/ are this venv's.
    """
    if blocked_for_others(sys.executable) is None:
        return Path(sys.executable)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = Path("/usr/bin") / version
    if not system.exists() or blocked_for_others(system):
        pytest.skip(f"{sys.executable} is inside {blocked_for_others(sys.executable)}, which "
                    f"other unix users cannot enter, and there is no /usr/bin/{version}")
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next(folder.glob("lib/python*/site-packages"))
    ours = next(VENV.glob("lib/python*/site-packages"))
    (site / "radipop_venv.pth").write_text(f"import site; site.addsitedir({str(ours)!r})\n")
    for data in ("share", "etc"):  # Voilà's templates, the extensions' settings
        if (VENV / data).is_dir():
            (folder / data).symlink_to(VENV / data)
    subprocess.run(["chmod", "-R", "go+rX", str(folder)], check=True)
    return folder / "bin" / "python"


def shared_data(folder: Path) -> Path:
    """The phantom study as the users' read-only data folder (copied from the cache)."""
    env = {**os.environ, "RADIPOP_CACHE": str(folder)}
    from radipop_widgets.io import phantom

    cached = phantom.cache_dir()
    source = next(iter(sorted(cached.glob("phantom-v*"))), None) if cached.is_dir() else None
    if source is not None and (source / "reference_labels.npz").exists():
        shutil.copytree(source, folder / source.name)
    else:
        make = "from radipop_widgets.io.phantom import phantom_study_path as p; p()"
        subprocess.run([sys.executable, "-c", make], env=env, check=True)
    subprocess.run(["chmod", "-R", "u+rwX,go+rX,go-w", str(folder)], check=True)
    return folder


class LabHub:
    """A hub of the lab server with its own state folder and unix users, on 127.0.0.1."""

    def __init__(self, users, mem_limit=MEM_LIMIT, cpu_limit=1, max_kernels=2,
                 cull_idle=3600, data=None, also_allowed=()):
        self.state = Path(tempfile.mkdtemp(prefix="radipop-hub-"))
        self.state.chmod(0o711)
        self.users = list(users)
        self.created = []
        self.password = secrets.token_urlsafe(12)
        port, api, proxy_api = free_ports(3)
        self.url = f"http://127.0.0.1:{port}"
        self.users_root = self.state / "users"
        self.env = {
            **os.environ,
            "RADIPOP_HUB_PORT": str(port), "RADIPOP_HUB_API_PORT": str(api),
            "RADIPOP_HUB_PROXY_API_PORT": str(proxy_api),
            "RADIPOP_HUB_STATE": str(self.state), "RADIPOP_HUB_USERS_ROOT": str(self.users_root),
            "RADIPOP_HUB_ISOLATION": "unix", "RADIPOP_HUB_PASSWORD": self.password,
            "RADIPOP_HUB_USERS": ",".join([*self.users, *also_allowed]),
            "RADIPOP_HUB_MEM_LIMIT": str(mem_limit), "RADIPOP_HUB_CPU_LIMIT": str(cpu_limit),
            "RADIPOP_HUB_MAX_KERNELS": str(max_kernels),
            "RADIPOP_HUB_CULL_IDLE": str(cull_idle), "RADIPOP_HUB_ACTIVITY_INTERVAL": "5",
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
            "PATH": f"{VENV / 'bin'}:{CHP.parent}:{os.environ.get('PATH', '')}",
        }
        self.data = data
        self.process = None
        self.log = self.state / "hub.log"

    def start(self, timeout=40.0):
        import requests

        for name in self.users:
            subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", name], check=True)
            self.created.append(name)
        self.env["RADIPOP_HUB_PYTHON"] = str(users_python(self.state / "python"))
        self.env["RADIPOP_DATA"] = str(self.data or shared_data(self.state / "data"))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(VENV / "bin" / "jupyterhub"), "-f", str(CONFIG)], cwd=self.state,
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited ({self.process.returncode}):\n{self.tail()}")
            try:
                if requests.get(self.url + "/hub/api", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the hub did not answer in {timeout} s:\n{self.tail()}")

    def tail(self, lines=40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def login(self, name, password=None):
        """A ``requests`` session of ``name``, logged in at /hub/login."""
        import requests

        session = requests.Session()
        session.get(self.url + "/hub/login", timeout=10)
        response = session.post(self.url + "/hub/login?next=", timeout=30,
                                data={"username": name, "password": password or self.password,
                                      "_xsrf": session.cookies.get("_xsrf", path="/hub/")},
                                allow_redirects=False)
        assert response.status_code == 302, f"login of {name}: {response.status_code}"
        return session

    def open_dashboard(self, session, name, timeout=60.0):
        """GET /user/<name>/ until the server has started; the final response."""
        deadline = time.monotonic() + timeout
        response = session.get(f"{self.url}/hub/spawn/{name}", timeout=timeout)  # starts it
        while "spawn-pending" in response.url and time.monotonic() < deadline:
            time.sleep(0.5)
            response = session.get(f"{self.url}/user/{name}/", timeout=timeout)
        return response

    def processes(self, name=None):
        """Processes of the user ``name``; without a name, every process of the lab: the
        users', the hub's and its descendants (proxy, culler)."""
        import psutil

        names = set(self.created if name is None else [name])
        found = {}
        for process in psutil.process_iter(["pid", "username", "environ"]):
            try:
                ours = process.info["username"] in names or name is None and (
                    (process.info["environ"] or {}).get("RADIPOP_HUB_STATE") == str(self.state))
            except psutil.Error:
                continue
            if ours and process.pid != os.getpid():
                found[process.pid] = process
        if name is None and self.process is not None:
            try:
                hub = psutil.Process(self.process.pid)
                found.update({p.pid: p for p in [hub, *hub.children(recursive=True)]})
            except psutil.Error:
                pass
        return list(found.values())

    def stop(self, timeout=30.0) -> list[str]:
        """Stop the hub (it stops the proxy and the users' servers); kill what is left,
        remove the users and the state folder; return what had to be killed."""
        import psutil

        left = []
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.3)
        for process in self.processes():
            try:
                left.append(f"{process.pid} {process.username()} {' '.join(process.cmdline())}")
                process.kill()
            except psutil.Error:
                pass
        for name in self.created:
            subprocess.run(["userdel", name], check=False)
        self.created = []
        shutil.rmtree(self.state, ignore_errors=True)
        return left


def run_as(name, *command):
    """Run ``command`` as the unix user ``name``; the completed process."""
    return subprocess.run(list(command), user=name, group=name, extra_groups=[],
                          capture_output=True, text=True, cwd="/", check=False)


def requirements() -> str | None:
    if os.geteuid() != 0:
        return "creating the unix users of the hub test needs root"
    if not CHP.exists() and not shutil.which("configurable-http-proxy"):
        return f"configurable-http-proxy is missing ({CHP}): RADIPOP_NEED_CHROMIUM=1 bash " \
               "scripts/setup.sh installs it"
    for tool in ("useradd", "userdel"):
        if not shutil.which(tool):
            return f"{tool} is missing"
    return None


NAMES = [f"rwhub{os.getpid() % 100000}{letter}" for letter in "ab"]


@pytest.fixture(scope="module")
def hub():
    reason = requirements()
    if reason:
        pytest.skip(reason)
    lab = LabHub(NAMES, also_allowed=["daemon"])
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def dashboards(hub):
    """Both users logged in with their dashboard open: {name: (session, response)}."""
    opened = {}
    for name in hub.users:
        session = hub.login(name)
        opened[name] = (session, hub.open_dashboard(session, name))
    return opened


def test_a_wrong_password_is_refused(hub):
    import requests

    session = requests.Session()
    session.get(hub.url + "/hub/login", timeout=10)
    response = session.post(hub.url + "/hub/login", timeout=10, allow_redirects=False,
                            data={"username": hub.users[0], "password": "not-the-password",
                                  "_xsrf": session.cookies.get("_xsrf", path="/hub/")})
    assert response.status_code == 403


def test_a_system_account_gets_no_server(hub):
    """With one shared password anyone can log in under any allowed name: a name that is a
    system account (uid < 1000, here 'daemon') must not get a server running as it."""
    session = hub.login("daemon")
    response = hub.open_dashboard(session, "daemon", timeout=20)
    assert WIDGET_VIEW not in response.text
    assert "system account uid" in hub.log.read_text()
    assert not [p for p in hub.processes("daemon") if "user_server" in " ".join(p.cmdline())]


def test_each_user_gets_the_dashboard_in_their_own_process(hub, dashboards):
    for name, (_session, response) in dashboards.items():
        assert response.status_code == 200, hub.tail()
        assert response.url == f"{hub.url}/user/{name}/"
        assert "<title>radipop</title>" in response.text  # Voilà's page of the notebook
        assert f'"baseUrl": "/user/{name}/"' in response.text
        assert WIDGET_VIEW in response.text, "the notebook's App widget was not rendered"
        commands = [" ".join(p.cmdline()) for p in hub.processes(name)]
        assert any("radipop_widgets.user_server" in c for c in commands), commands
        assert any("user_server serve" in c for c in commands), commands
        assert any("ipykernel" in c for c in commands), commands
    # The hub's log holds no token of Voilà's (the way around the hub's OAuth).
    assert "radipop-widgets dashboard: http://127.0.0.1:" in hub.log.read_text()
    assert not re.search(r"token=(?!\[redacted\])[\w-]", hub.log.read_text())
    first, second = ({p.pid for p in hub.processes(name)} for name in hub.users)
    assert first and second and not first & second


def test_the_idle_culler_runs_as_a_hub_service(hub):
    commands = [" ".join(p.cmdline()) for p in hub.processes()]
    assert any("jupyterhub_idle_culler --timeout=3600" in c for c in commands), commands


def test_a_user_cannot_open_another_users_server(hub, dashboards):
    a, b = hub.users
    session, _ = dashboards[a]
    response = session.get(f"{hub.url}/user/{b}/", timeout=30)
    assert response.status_code == 403, (response.status_code, response.url)
    assert WIDGET_VIEW not in response.text
    # Voilà's own port, behind the user's proxy, answers only with the proxy's token.
    import requests

    ports = [c.laddr.port for p in hub.processes(b) if "user_server serve" in
             " ".join(p.cmdline()) for c in p.net_connections("tcp") if c.status == "LISTEN"]
    assert ports
    direct = requests.get(f"http://127.0.0.1:{ports[0]}/user/{b}/", timeout=10,
                          allow_redirects=False)
    assert direct.status_code in (302, 403) and WIDGET_VIEW not in direct.text


def test_a_user_cannot_read_another_users_work(hub, dashboards):
    a, b = hub.users
    folder = hub.users_root / b
    workspace = folder / "workspace"
    assert workspace.is_dir()
    for path in (folder, workspace, folder / "exports", folder / ".runtime"):
        assert path.stat().st_mode & 0o777 == 0o700, path
        assert path.owner() == b, path
    work = workspace / "note.txt"
    run_as(b, "sh", "-c", f"echo liver > {work}")
    assert work.read_text() == "liver\n"
    assert run_as(b, "cat", str(work)).returncode == 0
    refused = run_as(a, "cat", str(work))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    assert run_as(a, "ls", str(folder)).returncode != 0
    # The hub's database and cookie secret are the hub's alone.
    for secret in ("jupyterhub.sqlite", "jupyterhub_cookie_secret"):
        assert (hub.state / secret).stat().st_mode & 0o077 == 0, secret
    assert run_as(a, "cat", str(hub.state / "jupyterhub.sqlite")).returncode != 0
    # The shared data folder is readable by both and writable by neither.
    data = Path(hub.env["RADIPOP_DATA"])
    assert run_as(a, "ls", str(data)).returncode == 0
    written = run_as(a, "touch", str(data / "mine"))
    assert written.returncode != 0 and not (data / "mine").exists()


def test_limits_are_applied_to_every_process_of_a_user(hub, dashboards):
    given = []
    for name in hub.users:
        processes = hub.processes(name)
        assert len(processes) >= 3  # launcher + proxy, Voilà, the page's kernel
        cpus = {tuple(p.cpu_affinity()) for p in processes}
        for process in processes:
            limits = Path(f"/proc/{process.pid}/limits").read_text()
            address = re.search(r"Max address space\s+(\S+)\s+(\S+)", limits).groups()
            assert address == (str(MEM_LIMIT), str(MEM_LIMIT)), (name, process.cmdline())
            assert re.search(r"Max core file size\s+0\s+0", limits)
            assert process.nice() == 10
        assert len(cpus) == 1 and len(next(iter(cpus))) == 1, cpus  # CPU_LIMIT=1: one core
        given.append(next(iter(cpus)))
    if len(os.sched_getaffinity(0)) >= 2:  # the hub gives each user the least used core
        assert given[0] != given[1], given


def test_stopping_the_hub_stops_every_process(hub, dashboards):
    assert len(hub.processes()) >= 8  # hub, proxy, culler, 2 x (proxy, Voilà, kernel)
    left = hub.stop()
    assert left == [], "processes left after the hub stopped:\n" + "\n".join(left)


def test_the_idle_culler_stops_a_server_nobody_uses():
    reason = requirements()
    if reason:
        pytest.skip(reason)
    name = NAMES[0][:-1] + "c"
    # longer than a first dashboard page takes to render on a loaded machine (up to ~9 s
    # seen): with 8 s the culler once stopped the server while its first page was rendering
    lab = LabHub([name], cull_idle=20)
    try:
        lab.start()
        session = lab.login(name)
        assert lab.open_dashboard(session, name).status_code == 200, lab.tail()
        assert lab.processes(name)
        started = time.monotonic()
        while lab.processes(name) and time.monotonic() - started < 90:
            time.sleep(0.5)
        assert not lab.processes(name), "the idle server was not culled:\n" + lab.tail()
        assert re.search(rf"Culling server {name} \(inactive for", lab.log.read_text())
    finally:
        assert lab.stop() == []


def wait_gone(pids, timeout: float) -> list[str]:
    """Wait until none of ``pids`` runs (zombies count as gone); the command lines of the
    processes still running after ``timeout`` seconds."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        left = []
        for pid in pids:
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{pid}: {' '.join(process.cmdline())[:200]}")
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_the_one_command_starts_a_trial_that_ctrl_c_stops(tmp_path):
    """``bash scripts/hub.sh --port N`` (shared mode, its own password and proxy token),
    a user logs in and sees the dashboard; Ctrl+C (SIGINT to its group) stops everything."""
    import psutil
    import requests

    if not CHP.exists():
        pytest.skip(f"configurable-http-proxy is missing ({CHP})")
    state = Path(tempfile.mkdtemp(prefix="radipop-hub-"))
    port, api, proxy_api = free_ports(3)
    env = {**os.environ, "RADIPOP_HUB_STATE": str(state), "RADIPOP_HUB_API_PORT": str(api),
           "RADIPOP_HUB_PROXY_API_PORT": str(proxy_api),
           "RADIPOP_DATA": str(shared_data(state / "data"))}
    for name in ("RADIPOP_HUB_PASSWORD", "CONFIGPROXY_AUTH_TOKEN", "RADIPOP_HUB_ISOLATION"):
        env.pop(name, None)
    log = tmp_path / "hub.log"
    script = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "hub.sh"), "--port", str(port)], env=env,
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        # As in a terminal: SIGINT not ignored even when pytest runs as a background job.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    lab = LabHub([])
    lab.url, lab.password = f"http://127.0.0.1:{port}", None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and script.poll() is None:
            try:
                if requests.get(lab.url + "/hub/api", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        lab.password = (state / "trial_password").read_text().strip()
        assert f"http://127.0.0.1:{port}/ (any user name, password: {lab.password}" in \
            log.read_text()
        for secret in ("trial_password", "proxy_auth_token"):
            assert (state / secret).stat().st_mode & 0o777 == 0o600
        session = lab.login("trial")
        page = lab.open_dashboard(session, "trial")
        assert page.status_code == 200 and WIDGET_VIEW in page.text, log.read_text()[-3000:]
        tree = [script.pid] + [p.pid for p in psutil.Process(script.pid).children(True)]
        assert len(tree) >= 6  # hub, proxy, culler, the user's proxy, Voilà, kernel
        os.killpg(script.pid, signal.SIGINT)
        assert script.wait(30) == 0
        left = wait_gone(tree, timeout=20)     # a kernel may still be in its own shutdown
        assert left == [], log.read_text()[-3000:]
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
        lab.stop()
        shutil.rmtree(state, ignore_errors=True)


# ---------------------------------------------------------------- the launcher, without a hub

def test_the_memory_limit_stops_an_allocation_beyond_it():
    """RLIMIT_AS as the launcher sets it: a 1 GiB allocation under a 768 MiB limit fails."""
    script = ("from radipop_widgets.user_server import Limits, apply_limits\n"
              "apply_limits(Limits(768 * 2**20, 1, 0), 'x')\n"
              "try:\n    bytearray(2**30)\nexcept MemoryError:\n    print('refused')\n"
              "import numpy; numpy.zeros(2**26)\nprint('small ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.stdout.split() == ["refused", "small", "ok"], done.stderr


def test_user_folders_are_private_and_refuse_someone_elses(tmp_path):
    from radipop_widgets.user_server import UserServerError, user_folders

    root = tmp_path / "alice"
    root.mkdir(mode=0o755)
    folders = user_folders(root)
    assert folders["RADIPOP_WORKSPACE"] == root / "workspace"
    for path in [root, *folders.values()]:
        assert path.stat().st_mode & 0o777 == 0o700, path
    if os.geteuid() == 0:
        os.chown(root, 65534, 65534)
        with pytest.raises(UserServerError, match="belongs to uid 65534"):
            user_folders(root)


def test_the_launcher_says_it_is_started_by_the_hub(monkeypatch):
    from radipop_widgets import user_server

    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    with pytest.raises(user_server.UserServerError, match="scripts/hub.sh"):
        user_server.main([])


def test_a_long_runtime_folder_gets_a_short_kernel_folder(tmp_path):
    from radipop_widgets.user_server import SOCKET_PATH_MAX, kernel_folder

    short = kernel_folder(tmp_path)
    assert short == tmp_path or len(str(short)) < len(str(tmp_path))
    deep = tmp_path / ("x" * 60)
    chosen = kernel_folder(deep)
    assert chosen != deep and len(str(chosen)) + 72 <= SOCKET_PATH_MAX
    assert chosen.stat().st_mode & 0o777 == 0o700
