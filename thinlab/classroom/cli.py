"""The ``release``, ``grade`` and ``site`` subcommands of ``python -m thinlab.course``.

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import json
import sys

COMMANDS = ("release", "grade", "site")


def add_parsers(sub) -> None:
    r = sub.add_parser("release", help="write the student edition of the lessons and manifest.json into OUT")
    r.add_argument("out", metavar="OUT", help="folder to write, e.g. build/release")
    r.add_argument("--only", default="", help="comma-separated lesson keys, e.g. 00,01 (default: every lesson)")
    r.add_argument("--points", type=float, default=1.0, help="points per exercise in the manifest (default 1)")
    g = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<notebook> into a gradebook CSV")
    g.add_argument("submissions", metavar="SUBMISSIONS", help="folder with one folder per student")
    g.add_argument("--out", default="gradebook.csv", help="the gradebook CSV (default gradebook.csv)")
    g.add_argument("--release", default=None, help="the folder `release` wrote (its manifest.json gives the lessons "
                                                   "and points); default: the whole course, 1 point each")
    g.add_argument("--feedback", default=None, help="feedback folder (default: <out>-feedback beside the CSV)")
    g.add_argument("--data", default="synthetic", help="DATA for the runs: synthetic (default) or a Speech Commands "
                                                      "folder")
    g.add_argument("--param", action="append", default=[], metavar="NAME=JSON",
                   help="override a lesson parameter for every run, e.g. --param 'EPOCHS=1' (repeatable)")
    g.add_argument("--timeout", type=int, default=900, help="seconds for a whole notebook (default 900)")
    g.add_argument("--cell-timeout", type=int, default=120, help="seconds for one cell (default 120)")
    g.add_argument("--check-timeout", type=int, default=10, help="seconds for one exercise's check (default 10)")
    g.add_argument("--memory-mb", type=int, default=8192,
                   help="memory cap (RLIMIT_DATA) per process in MB (default 8192)")
    g.add_argument("--jobs", type=int, default=1, help="students graded at once, each in its own processes")
    s = sub.add_parser("site", help="build the course as an offline website in build/site/")
    s.add_argument("--out", default=None, help="output folder (default build/site)")
    s.add_argument("--only", default="", help="comma-separated lesson keys (default: every lesson)")
    s.add_argument("--data", default="synthetic", help="DATA for lessons that must be executed first")
    s.add_argument("--binder", default=None, help="Binder URL opening JupyterLab on lessons/ (default: the README's)")


def _params(pairs) -> dict:
    out = {}
    for p in pairs:
        name, sep, value = p.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--param {p!r}: expected NAME=VALUE with VALUE in JSON, e.g. --param EPOCHS=1")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value  # a bare string such as a folder
    return out


def run(args) -> int:
    try:
        if args.cmd == "release":
            from thinlab.classroom.release import release

            m = release(args.out, args.only or None, points=args.points)
            for l in m["lessons"]:
                print(f"{l['key']}  {l['notebook']:<28} {len(l['exercises'])} exercise(s), "
                      f"{l['max_points']:g} point(s)")
            print(f"student edition and manifest.json in {args.out}")
            return 0
        if args.cmd == "grade":
            from thinlab.classroom.grade import grade
            from thinlab.classroom.sandbox_run import Limits

            limits = Limits(timeout=args.timeout, cell_timeout=args.cell_timeout, check_timeout=args.check_timeout,
                            memory_mb=args.memory_mb)
            rows = grade(args.submissions, args.out, release_dir=args.release, feedback_dir=args.feedback,
                         limits=limits, data=args.data, params=_params(args.param), jobs=args.jobs)
            for r in rows:
                if r["exercise"] == "TOTAL":
                    print(f"{r['student']:<20} {r['points']:g}/{r['max_points']:g}  {r['status']}")
            return 0
        from thinlab.classroom.site import BINDER, build

        index = build(out=args.out, only=args.only or None, data=args.data, binder=args.binder or BINDER)
        print(f"site: {index}")
        return 0
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
