"""Command line: ``python -m radipop_widgets cohort status|export|salt``.

``cohort status [--data DIR] [--workspace DIR]`` prints the worklist as text (the data
folder's studies and the PACS series added to the workspace's worklist);
``cohort export [--data DIR] --workspace DIR --out DIR [--pseudonymise --salt-file F]``
writes every done study's mask and ``cohort.csv`` with a progress bar on stderr, and
names the done PACS series it skipped because they are not downloaded;
``cohort salt FILE`` writes a new random salt. Patient names are never printed.
"""

from __future__ import annotations

import argparse
import sys
import time

from .cohort import Worklist, export_cohort, new_salt_file, read_salt
from .errors import RadipopError
from .locks import current_user

BAR_WIDTH = 30


class ProgressBar:
    """``[#####.....]  12/100  2.3 s`` on stderr, redrawn in place (a line per update when
    stderr is not a terminal, at most every 10 %)."""

    def __init__(self, label: str, stream=None):
        self.label, self.stream = label, stream or sys.stderr
        self.start = time.monotonic()
        self._shown = -1

    def __call__(self, done: int, total: int, what: str = "") -> None:
        share = done / total if total else 1.0
        tty = self.stream.isatty()
        if not tty and done != total and int(share * 10) == self._shown:
            return
        self._shown = int(share * 10)
        bar = "#" * round(share * BAR_WIDTH) + "." * (BAR_WIDTH - round(share * BAR_WIDTH))
        line = (f"{self.label} [{bar}] {done:>4}/{total} "
                f"{time.monotonic() - self.start:6.1f} s")
        self.stream.write(("\r" + line) if tty else line + "\n")
        if tty and done == total:
            self.stream.write("\n")
        self.stream.flush()


def _cell(value, width):
    text = "" if value is None else str(value)
    return (text[:width - 1] + "…") if len(text) > width else text.ljust(width)


def status_table(rows) -> str:
    """The worklist as text: one line per study (no patient data)."""
    columns = (("study", 34), ("from", 11), ("slices", 6), ("thick", 6), ("status", 12),
               ("by", 12),
               ("liver mL", 9), ("spleen mL", 9), ("last edit", 20), ("flags", 40))
    lines = ["  ".join(_cell(name, w) for name, w in columns)]
    for r in rows:
        v = r.volumes_ml or {}
        source = "folder" if r.pacs is None else "PACS cached" if r.pacs.cached else "PACS"
        values = (r.description, source, r.entry.n_slices,
                  f"{r.thickness_mm:g}" if r.thickness_mm else "", r.status, r.by or "",
                  f"{v['liver']:.0f}" if v.get("liver") else "",
                  f"{v['spleen']:.0f}" if v.get("spleen") else "",
                  (r.last_edit or "")[:19], ", ".join(f.code for f in r.flags))
        lines.append("  ".join(_cell(x, w) for x, (_, w) in zip(values, columns)))
    counts = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append(f"{len(rows)} studies: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m radipop_widgets",
                                     description="radipop-widgets command line")
    commands = parser.add_subparsers(dest="command", required=True)
    cohort = commands.add_parser("cohort", help="the worklist and the cohort export")
    actions = cohort.add_subparsers(dest="action", required=True)
    for name, text in (("status", "print the worklist"),
                       ("export", "write every done study's mask and cohort.csv")):
        p = actions.add_parser(name, help=text)
        p.add_argument("--data", default=None, help="the data folder of studies (without "
                       "it: only the PACS series added to the workspace's worklist)")
        p.add_argument("--workspace", default=None,
                       help="where the sessions are (default $RADIPOP_WORKSPACE)")
        if name == "export":
            p.add_argument("--out", required=True, help="the folder to write into")
            p.add_argument("--pseudonymise", action="store_true",
                           help="ids and UIDs as salted hashes; no PatientID written")
            p.add_argument("--salt-file", help="the salt (made by `cohort salt FILE`)")
    salt = actions.add_parser("salt", help="write a new random salt file")
    salt.add_argument("file")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "salt":
            print(f"wrote a new salt to {new_salt_file(args.file)}; keep it safe and out of "
                  "the export: the same salt gives the same pseudonyms.")
            return 0
        worklist = Worklist(args.data, args.workspace)
        if args.action == "status":
            print(status_table(worklist.scan(ProgressBar("scanning"))))
            if worklist.pacs_problem:
                print(f"PACS series not listed: {worklist.pacs_problem}", file=sys.stderr)
            return 0
        if args.pseudonymise and not args.salt_file:
            raise RadipopError("--pseudonymise needs --salt-file FILE (make one with "
                               "`python -m radipop_widgets cohort salt FILE`).")
        salt = read_salt(args.salt_file) if args.pseudonymise else None
        report = export_cohort(worklist, args.out, salt, ProgressBar("exporting"))
    except RadipopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(report.rows)} done studies exported to {report.out} ({report.table.name}); "
          f"by {current_user()}")
    for what, reason in report.failed:
        print(f"not exported: {what}: {reason}", file=sys.stderr)
    for what, reason in report.skipped:
        print(f"skipped: {what}: {reason}", file=sys.stderr)
    return 1 if report.failed or report.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
