"""``python -m thinlab.data``: download real data, synthesize the offline set, or describe a source.

    python -m thinlab.data download {test-v2|v1|v2} [--words yes,no,...] [--dest DIR] [--url BASE]
    python -m thinlab.data synth [--speakers 160] [--seed 0] [--dest DIR]
    python -m thinlab.data describe [SOURCE] [--task 10words|12class] [--split speaker|random]

Taught in: 00_speech_commands
"""
from __future__ import annotations

import argparse
import sys

from ._io import CacheError, DataError


class UsageError(Exception):
    """A command line argparse could not parse (reported as one line, not argparse's usage block)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the whole usage and exit; we say it in one line
        raise UsageError(f"{message}; see `{self.prog} --help`")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    """Run the CLI; returns the exit code: 0 ok; 2 for a user error (a bad argument, bad or missing data,
    a bad THINLAB_CACHE), 1 when the system refuses (disk full, no permission), 130 when interrupted.
    Every error is one line on stderr, with no traceback.

    Taught in: 00_speech_commands
    """
    try:
        return _run(argv)
    except UsageError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (DataError, CacheError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {_one_line(exc.strerror or exc)}{where}; check that the folder exists, is writable and has "
              "free space (THINLAB_CACHE chooses where the cache lives), then run the same command again.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume (finished parts are kept).", file=sys.stderr)
        return 130


def _run(argv) -> int:
    ap = _Parser(prog="python -m thinlab.data", description="Speech Commands data for thinlab")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="download and extract a real Speech Commands archive")
    d.add_argument("which", choices=["test-v2", "v1", "v2"], help="test-v2 (112 MB), v1 (1.5 GB), v2 (2.4 GB)")
    d.add_argument("--words", default=None, help="comma-separated words to extract (default: all)")
    d.add_argument("--dest", default=None, help="target folder (default: <cache>/speech_commands/<which>)")
    d.add_argument("--url", default=None, help="base URL of a mirror (default: $THINLAB_DOWNLOAD_URL or official)")
    d.add_argument("--delete-archive", action="store_true", help="remove the .tar.gz after extracting")
    d.add_argument("--no-progress", action="store_true")
    s = sub.add_parser("synth", help="generate the offline espeak-ng keyword set")
    s.add_argument("--speakers", type=int, default=160)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dest", default=None)
    s.add_argument("--force", action="store_true", help="rebuild even if it exists")
    s.add_argument("--no-progress", action="store_true")
    r = sub.add_parser("describe", help="resolve a source, split it and print the summary")
    r.add_argument("source", nargs="?", default="auto")
    r.add_argument("--task", default="10words", choices=["10words", "12class"])
    r.add_argument("--split", default="speaker")
    r.add_argument("--feature", default="logmel", choices=["logmel", "mfcc"])
    args = ap.parse_args(argv)
    if args.cmd == "download":
        from .downloader import download

        download(args.which, words=args.words, dest=args.dest, url=args.url, progress=not args.no_progress,
                 keep_archive=not args.delete_archive)
    elif args.cmd == "synth":
        from .synth import synthesize

        synthesize(args.dest, n_speakers=args.speakers, seed=args.seed, progress=not args.no_progress,
                   force=args.force)
    else:
        from .dataset import load_dataset

        print(load_dataset(args.source, task=args.task, split=args.split, feature=args.feature).describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
