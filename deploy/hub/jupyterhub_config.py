"""JupyterHub for a lab: one login per user, each user's dashboard in their own process.

Start it with ``bash scripts/hub.sh`` (a trial on this machine) or
``jupyterhub -f deploy/hub/jupyterhub_config.py``; docs/LAB_SERVER.md explains it.
Everything is set by the environment:

==============================  ==========================================================
RADIPOP_HUB_IP / _PORT          where users connect (127.0.0.1:8000)
RADIPOP_HUB_API_PORT            the hub's own port behind the proxy (port + 1)
RADIPOP_HUB_PROXY_API_PORT      configurable-http-proxy's REST API (port + 2)
RADIPOP_HUB_STATE               the hub's state: sqlite db, cookie secret, proxy token
RADIPOP_DATA                    the shared, read-only folder of studies (required)
RADIPOP_HUB_USERS_ROOT          users' folders, one per user, mode 0700 (STATE/users)
RADIPOP_HUB_ISOLATION           ``unix``: each hub user is the unix user of the same name
                                (the hub runs as root); ``shared`` (default): every user's
                                server runs as RADIPOP_HUB_RUN_AS (default: the hub's own)
RADIPOP_HUB_PYTHON              the Python the users' servers run (default: the hub's); it
                                must be executable by them and see this venv's packages
RADIPOP_HUB_MIN_UID             ``unix``: lowest uid a server may run as (1000: no root,
                                no system account, whatever name logs in)
RADIPOP_HUB_PASSWORD            the trial's shared password (SharedPasswordAuthenticator)
RADIPOP_HUB_USERS               allowed user names, comma-separated (default: anyone
                                with the password)
RADIPOP_HUB_MEM_LIMIT           per user: address space of each process (3G)
RADIPOP_HUB_CPU_LIMIT           per user: CPU cores (1)
RADIPOP_HUB_MAX_KERNELS         per user: open dashboard pages at a time (2)
RADIPOP_HUB_STANDBY             per user: kernels kept ready for the next page (1; 0: none)
RADIPOP_HUB_CULL_IDLE           idle culler: stop a server idle this many seconds (3600)
RADIPOP_HUB_ACTIVITY_INTERVAL   seconds between the hub's reads of the proxy's activity (60)
==============================  ==========================================================
"""

import math
import os
import pwd
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid

c = get_config()  # noqa: F821  (defined by JupyterHub when it loads this file)

REPO = Path(__file__).resolve().parents[2]
env = os.environ.get


class HubConfigError(RuntimeError):
    """A setting of the lab server that it cannot start with."""


def _path(name, default=None):
    value = env(name) or default
    if value is None:
        raise HubConfigError(f"{name} is not set: give the folder in the environment "
                             "(bash scripts/hub.sh sets every folder for a trial)")
    return Path(value).expanduser().resolve()


IP = env("RADIPOP_HUB_IP", "127.0.0.1")
PORT = int(env("RADIPOP_HUB_PORT", "8000"))
STATE = _path("RADIPOP_HUB_STATE", Path.home() / ".local/state/radipop-hub")
DATA = _path("RADIPOP_DATA")
USERS_ROOT = _path("RADIPOP_HUB_USERS_ROOT", STATE / "users")
ISOLATION = env("RADIPOP_HUB_ISOLATION", "shared")
IS_ROOT = os.getuid() == 0
HUB_ACCOUNT = pwd.getpwuid(os.getuid())[0]
RUN_AS = env("RADIPOP_HUB_RUN_AS") or HUB_ACCOUNT
PYTHON = env("RADIPOP_HUB_PYTHON") or sys.executable
CULL_IDLE = int(env("RADIPOP_HUB_CULL_IDLE", "3600"))
MIN_UID = int(env("RADIPOP_HUB_MIN_UID", "1000"))  # unix mode: no system account (root, ...)

if ISOLATION not in ("unix", "shared"):
    raise HubConfigError(f"RADIPOP_HUB_ISOLATION={ISOLATION!r}: give 'unix' (one unix user "
                         "per hub user, the hub runs as root) or 'shared'")
if ISOLATION == "unix" and not IS_ROOT:
    raise HubConfigError("RADIPOP_HUB_ISOLATION=unix needs the hub to run as root (it starts "
                         "each user's server as that unix user): run it as root or use "
                         "'shared'")
if not DATA.is_dir():
    raise HubConfigError(f"RADIPOP_DATA={DATA} is not a folder: give the folder of studies "
                         "the users share")
if DATA.stat().st_mode & 0o022:
    raise HubConfigError(f"RADIPOP_DATA={DATA} is writable by its group or by everyone: the "
                         f"users' data must be read-only for them (chmod -R go-w {DATA})")



def private_ancestor(path):
    """The first folder on the way to ``path`` that other unix users cannot enter, or None."""
    path = Path(os.path.realpath(path))
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


if ISOLATION == "unix" or RUN_AS != HUB_ACCOUNT:
    for what, path in (("Python", PYTHON), ("repository", REPO), ("data folder", DATA)):
        blocked = private_ancestor(path)
        if blocked is not None:
            raise HubConfigError(
                f"the {what} {os.path.realpath(path)} is inside {blocked}, which other unix "
                "users cannot enter, so their servers cannot start: install Python and the "
                "venv where users can read them (e.g. /opt), or set RADIPOP_HUB_PYTHON "
                "(docs/LAB_SERVER.md, 'A Python the users can run')")

os.umask(0o077)  # the database, cookie secret and pid files are the hub's alone
STATE.mkdir(parents=True, exist_ok=True, mode=0o711)
USERS_ROOT.mkdir(parents=True, exist_ok=True, mode=0o711)
USERS_ROOT.chmod(0o711)  # users reach their own folder, list no one's


CORES = {}  # user name -> the CPU cores their running server was given


def least_used_cores(count):
    """The ``count`` cores the fewest running users' servers were given."""
    use = dict.fromkeys(sorted(os.sched_getaffinity(0)), 0)
    for cores in CORES.values():
        for core in cores:
            use[core] = use.get(core, 0) + 1
    return sorted(sorted(use, key=lambda core: (use[core], core))[:count])


class RadipopSpawner(LocalProcessSpawner):
    """Local processes as the user's unix account (``unix``) or one shared account, with
    the user's private folder made (owned by that account, mode 0700) before the start
    and the least used CPU cores given to it (``RADIPOP_CPUS``)."""

    def unix_account(self):
        return self.user.name if ISOLATION == "unix" else RUN_AS

    def user_folder(self):
        return USERS_ROOT / self.user.name

    def make_preexec_fn(self, name):
        if not IS_ROOT and self.unix_account() == pwd.getpwuid(os.getuid())[0]:
            return None  # already that account
        return set_user_setuid(self.unix_account(), chdir=False)

    def user_env(self, env):
        account = pwd.getpwnam(self.unix_account())
        env["USER"] = self.user.name
        env["HOME"] = str(self.user_folder()) if ISOLATION == "shared" else account.pw_dir
        env["SHELL"] = account.pw_shell or "/bin/sh"
        return env

    def get_env(self):
        env = super().get_env()
        env["RADIPOP_USER_ROOT"] = str(self.user_folder())
        if self.cpu_limit:
            cores = least_used_cores(math.ceil(self.cpu_limit))
            CORES[self.user.name] = cores
            env["RADIPOP_CPUS"] = ",".join(map(str, cores))
        return env

    async def stop(self, now=False):
        CORES.pop(self.user.name, None)
        return await super().stop(now=now)

    async def start(self):
        try:
            account = pwd.getpwnam(self.unix_account())
        except KeyError:
            raise HubConfigError(f"no unix user {self.unix_account()!r} for hub user "
                                 f"{self.user.name!r}: create it (useradd) or use "
                                 "RADIPOP_HUB_ISOLATION=shared") from None
        if ISOLATION == "unix" and account.pw_uid < MIN_UID:
            raise HubConfigError(f"hub user {self.user.name!r} is the system account uid "
                                 f"{account.pw_uid}: servers run only as accounts with uid >= "
                                 f"{MIN_UID} (RADIPOP_HUB_MIN_UID); give the user a login "
                                 "account of their own")
        folder = self.user_folder()
        folder.mkdir(mode=0o700, exist_ok=True)
        if IS_ROOT:
            os.chown(folder, account.pw_uid, account.pw_gid)
        folder.chmod(0o700)
        self.notebook_dir = str(folder)
        return await super().start()


# ---------------------------------------------------------------- hub, proxy, state
c.JupyterHub.ip = IP
c.JupyterHub.port = PORT
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env("RADIPOP_HUB_API_PORT", str(PORT + 1)))
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{env('RADIPOP_HUB_PROXY_API_PORT', str(PORT + 2))}")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
chp = REPO / ".venv" / "node" / "bin" / "configurable-http-proxy"
if chp.exists():
    c.ConfigurableHTTPProxy.command = [str(chp)]
# The proxy's token: JupyterHub makes one per start and hands it to the proxy it starts
# (CONFIGPROXY_AUTH_TOKEN overrides); the proxy stops with the hub.
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.cleanup_servers = True  # the users' servers stop with the hub
c.JupyterHub.last_activity_interval = int(env("RADIPOP_HUB_ACTIVITY_INTERVAL", "60"))

# ---------------------------------------------------------------- logins
# For a trial: one shared password (SharedPasswordAuthenticator, JupyterHub >= 5.3, the
# maintained form of DummyAuthenticator with a password). For a lab: a real one, e.g.
# NativeAuthenticator (sign-up, admin approval), OAuthenticator (the institution's SSO,
# GitHub, GitLab) or LDAPAuthenticator (docs/LAB_SERVER.md).
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = env("RADIPOP_HUB_PASSWORD")
allowed = [name.strip() for name in env("RADIPOP_HUB_USERS", "").split(",") if name.strip()]
if allowed:
    c.Authenticator.allowed_users = set(allowed)
else:
    c.Authenticator.allow_all = True

# ---------------------------------------------------------------- each user's dashboard
c.JupyterHub.spawner_class = RadipopSpawner
c.Spawner.cmd = [PYTHON, "-m", "radipop_widgets.user_server"]
MEM_LIMIT = env("RADIPOP_HUB_MEM_LIMIT", "3G")
c.Spawner.mem_limit = int(MEM_LIMIT) if MEM_LIMIT.isdigit() else MEM_LIMIT  # bytes or 3G
c.Spawner.cpu_limit = float(env("RADIPOP_HUB_CPU_LIMIT", "1"))
c.Spawner.environment = {
    "RADIPOP_DATA": str(DATA),
    "RADIPOP_MAX_KERNELS": env("RADIPOP_HUB_MAX_KERNELS", "2"),
    "RADIPOP_STANDBY": env("RADIPOP_HUB_STANDBY", "1"),
    "RADIPOP_NICE": env("RADIPOP_NICE", "10"),
}
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.LocalProcessSpawner.kill_timeout = 10

# ---------------------------------------------------------------- idle culling
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={CULL_IDLE}",
                f"--cull-every={max(1, min(300, CULL_IDLE // 4))}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
