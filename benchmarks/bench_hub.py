"""The lab server with several users logged in, each with a study open: memory per user.

Starts the lab server as ``tests/test_hub.py`` does (JupyterHub on 127.0.0.1, unix users
created for the run and removed after, ``RADIPOP_HUB_ISOLATION=unix``), logs ``--users``
users in over HTTP and opens each one's dashboard (Voilà runs the notebook: the App opens
the first study of the data folder in the user's kernel), waits until every kernel's memory
has settled, then prints per user the resident memory (RSS, psutil) of each process, the
user's total, the largest address space against the per-process limit (``RLIMIT_AS`` =
``--mem-limit``) and the CPUs the user's processes may run on. Needs root.

    .venv/bin/python benchmarks/bench_hub.py                       # 4 users, the phantom
    .venv/bin/python benchmarks/bench_hub.py --users 4 --data ../shared/data/ct-hcc048-portal
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_hub import LabHub, requirements

MB = 1024 * 1024


def role(process) -> str:
    command = " ".join(process.cmdline())
    for needle, name in (("user_server serve", "voila"), ("user_server", "proxy"),
                         ("ipykernel", "kernel")):
        if needle in command:
            return name
    return process.name()


def settled(lab, names, timeout: float) -> float:
    """Wait until the users' total RSS changes by < 1 % over 3 s; the seconds waited."""
    started = time.monotonic()
    previous = None
    while time.monotonic() - started < timeout:
        total = sum(p.memory_info().rss for name in names for p in lab.processes(name))
        if previous is not None and abs(total - previous) < 0.01 * previous:
            break
        previous = total
        time.sleep(3)
    return time.monotonic() - started


def parse_bytes(text: str) -> int:
    units = {"K": 1024, "M": MB, "G": 1024 * MB}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].isalpha() else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--data", type=Path, default=None,
                        help="shared data folder (default: the phantom, 60 x 512 x 512)")
    parser.add_argument("--mem-limit", default="3G", help="per process (RLIMIT_AS)")
    parser.add_argument("--cpu-limit", type=float, default=1)
    args = parser.parse_args()
    reason = requirements()
    if reason:
        sys.exit(f"bench_hub: {reason}")
    limit = parse_bytes(args.mem_limit)
    names = [f"rwbench{i}" for i in range(args.users)]
    lab = LabHub(names, mem_limit=limit, cpu_limit=args.cpu_limit,
                 data=args.data.resolve() if args.data else None)
    try:
        lab.start()
        opened = {}
        for name in names:
            started = time.perf_counter()
            session = lab.login(name)
            response = lab.open_dashboard(session, name, timeout=120)
            assert response.status_code == 200, lab.tail()
            opened[name] = (session, time.perf_counter() - started)
        waited = settled(lab, names, timeout=90)
        rows = []
        for name in names:
            processes = lab.processes(name)
            rss = {}
            for process in processes:
                rss.setdefault(role(process), []).append(process.memory_info().rss / MB)
            largest_vms = max(p.memory_info().vms for p in processes) / MB
            total = sum(sum(v) for v in rss.values())
            cpus = sorted({c for p in processes for c in p.cpu_affinity()})
            rows.append((name, opened[name][1], rss, total, largest_vms, cpus))
        print(f"lab server: {args.users} users, data {lab.env['RADIPOP_DATA']}, settled "
              f"after {waited:.0f} s; limits per process: address space "
              f"{limit / MB:.0f} MB, CPUs {args.cpu_limit:g}, nice 10\n")
        print("| user | login -> page s | proxy MB | voila MB | kernel MB | user RSS MB | "
              "largest VSZ MB | VSZ <= limit | CPUs |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, seconds, rss, total, vms, cpus in rows:
            cells = [" + ".join(f"{v:.0f}" for v in rss.get(k, [0])) for k in
                     ("proxy", "voila", "kernel")]
            print(f"| {name} | {seconds:.1f} | {' | '.join(cells)} | {total:.0f} | {vms:.0f} | "
                  f"{'yes' if vms * MB <= limit else 'NO'} | {cpus} |")
        totals = [row[3] for row in rows]
        print(f"\nall users: {sum(totals):.0f} MB RSS; largest user {max(totals):.0f} MB, "
              f"{max(totals) / (limit / MB):.0%} of the {limit / MB:.0f} MB limit")
    finally:
        left = lab.stop()
        if left:
            print("killed after the hub stopped:", *left, sep="\n  ")


if __name__ == "__main__":
    main()
