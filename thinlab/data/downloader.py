"""Explicit download of the real Speech Commands archives: progress, resume, sha256, safe extraction.

The archive goes to ``<cache>/downloads/<name>.part`` (an interrupted download is resumed with
an HTTP ``Range`` request), is checked against the published size and sha256, then renamed to
``<name>`` and extracted safely by :func:`thinlab.data.extract.extract_archive` (only the words
asked for, into a temporary folder renamed into place when complete).

sha256 values: the test set and v0.02 from TensorFlow Datasets' ``url_checksums/speech_commands.txt``
(which also gives both sizes); v0.01 from torchaudio's ``datasets/speechcommands.py``
``_CHECKSUMS``. Sizes are the published byte counts.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from thinlab._io import cache_root
from thinlab._validate import check_bool, check_int, check_path, check_real

from ._io import (ERRORS, ChecksumError, DataError, DataTypeError, DownloadError, check_replaceable,
                  marker_problems, read_marker)
from .extract import extract_archive
from .layout import BACKGROUND, SILENCE, UNKNOWN, WORDS10, WORDS_V1, WORDS_V2
from .source import downloaded_dir

DEFAULT_BASE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/"  # = download.tensorflow.org/data/


class Interrupted(DownloadError):
    """A transfer that stopped early; the ``.part`` file is kept and the next call resumes it."""


@dataclass(frozen=True)
class Archive:
    """A downloadable archive: file name, published size and sha256, the words it holds (for
    checking ``words=``; ``None`` = do not check) and folders always extracted."""

    which: str
    filename: str
    size: int
    sha256: str | None
    words: tuple | None = None
    always: tuple = (BACKGROUND,)


ARCHIVES = {
    "test-v2": Archive("test-v2", "speech_commands_test_set_v0.02.tar.gz", 112_563_277,
                       "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df", WORDS10,
                       (BACKGROUND, UNKNOWN, SILENCE)),
    "v1": Archive("v1", "speech_commands_v0.01.tar.gz", 1_488_293_908,
                  "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d", WORDS_V1),
    "v2": Archive("v2", "speech_commands_v0.02.tar.gz", 2_428_923_189,
                  "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58", WORDS_V2),
}


def base_url(override: str | None = None) -> str:
    """``override``, else ``$THINLAB_DOWNLOAD_URL``, else the official bucket; always ends with ``/``.

    Not checked here (``source="auto"`` reports a bad one as its reason to fall back); :func:`download`
    checks it with :func:`check_base_url`.

    Taught in: 00_speech_commands
    """
    url = (override or os.environ.get("THINLAB_DOWNLOAD_URL") or DEFAULT_BASE_URL).strip()
    return url if url.endswith("/") else url + "/"


def check_base_url(override=None) -> str:
    """:func:`base_url`, refused with a clear error unless it is an http(s) URL with a host.

    Taught in: 00_speech_commands
    """
    if override is not None and not isinstance(override, str):
        raise DataTypeError(f"url={override!r} ({type(override).__name__}) must be a string such as "
                            f"{DEFAULT_BASE_URL!r}")
    url = base_url(override)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        if override:
            name, fix = "url", "pass"
        else:
            name, fix = "THINLAB_DOWNLOAD_URL", "unset THINLAB_DOWNLOAD_URL or set it to"
        raise DataError(f"{name}={url.rstrip('/')!r} is not an http(s) URL; {fix} the base URL of a mirror, such as "
                        f"{DEFAULT_BASE_URL!r} (the archive's file name is appended).")
    return url


def sha256_file(path, *, progress: bool = False) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks.

    Taught in: 00_speech_commands
    """
    from thinlab._progress import progress as tqdm  # text bars when headless

    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=os.path.getsize(path), unit="B", unit_scale=True, desc="sha256",
                                     disable=not progress) as bar:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def fetch(url: str, part, *, size: int, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` into ``part``, resuming from its current length with an HTTP Range request.

    Parameters
    ----------
    url : str
    part : Path
        The partial file (kept when the transfer stops, so the next call resumes).
    size : int
        Expected total bytes.

    Returns
    -------
    Path
        ``part``, now exactly ``size`` bytes (content not yet verified).

    Raises
    ------
    DownloadError
        Network error, HTTP error, or a transfer that stopped early (the message says to rerun).

    Taught in: 00_speech_commands
    """
    from thinlab._progress import progress as tqdm  # text bars when headless

    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        return part
    headers = {"User-Agent": "thinlab", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"HTTP {exc.code} ({exc.reason}) for {url}; expected the archive. Check the URL or "
                            "THINLAB_DOWNLOAD_URL, then run the same command again.") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"could not reach {url} ({getattr(exc, 'reason', exc)}); check the network or set "
                            "THINLAB_DOWNLOAD_URL to a mirror, then run the same command again.") from exc
    except (ValueError, http.client.HTTPException) as exc:  # http.client.InvalidURL: a bad host or port
        raise DownloadError(f"cannot request {url} ({exc}); check the URL (--url or THINLAB_DOWNLOAD_URL), then run "
                            "the same command again.") from exc
    with resp:
        mode = "ab"
        if have and resp.status != 206:  # the server ignored Range: start over
            mode, have = "wb", 0
        elif have and not resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            raise DownloadError(f"{url} answered the resume request for bytes {have}- with Content-Range "
                                f"{resp.headers.get('Content-Range')!r}; delete {part} and run again.")
        with open(part, mode) as f, tqdm(total=size, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                                         desc=part.name.removesuffix(".part"), disable=not progress) as bar:
            try:
                while have <= size and (chunk := resp.read(1 << 20)):
                    f.write(chunk)
                    have += len(chunk)
                    bar.update(len(chunk))
            except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                have = f.tell()
                raise Interrupted(f"download of {url} interrupted after {have:,} of {size:,} bytes ({exc}); the "
                                  f"partial file {part} is kept: run the same command again to resume.") from exc
            finally:
                f.flush()
                os.fsync(f.fileno())
    if have < size:
        raise Interrupted(f"download of {url} stopped after {have:,} of {size:,} bytes; the partial file {part} "
                          "is kept: run the same command again to resume.")
    if have > size:
        part.unlink()
        raise ChecksumError(f"{url} sent more than the published {size:,} bytes, so it is not the expected archive; "
                            "the download was removed. Check THINLAB_DOWNLOAD_URL.")
    return part


def verify(path, spec: Archive, *, progress: bool = True) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the published size and sha256 of ``spec``.

    Taught in: 00_speech_commands
    """
    got = os.path.getsize(path)
    if got != spec.size:
        raise ChecksumError(f"{path} has {got:,} bytes, expected {spec.size:,} for {spec.filename}.")
    if spec.sha256 is not None:
        digest = sha256_file(path, progress=progress)
        if digest != spec.sha256:
            raise ChecksumError(f"{path}: sha256 {digest} differs from the published {spec.sha256} of "
                                f"{spec.filename}; the download is corrupt (or the server copy changed).")


def _check_words(words, spec: Archive):
    if words is None:
        return None
    if not isinstance(words, str):
        try:
            words = list(words)
        except TypeError:
            raise DataTypeError(f"words={words!r} ({type(words).__name__}) must be a list of words such as "
                                "['yes', 'no'] (or the string 'yes,no')") from None
        bad = [w for w in words if not isinstance(w, str)]
        if bad:
            raise DataTypeError(f"words holds {bad[0]!r} ({type(bad[0]).__name__}), not a word; pass words such "
                                "as ['yes', 'no']")
    words = sorted({w.strip().lower() for w in (words.split(",") if isinstance(words, str) else words)} - {""})
    bad = [w for w in words if not re.fullmatch(r"[a-z]+", w) or (spec.words is not None and w not in spec.words)]
    if bad or not words:
        raise DataError(f"--words {bad or words}: not words of the {spec.which} archive; use some of "
                        f"{', '.join(spec.words or ['(any plain word)'])}.")
    return words


def download(which: str = "test-v2", *, words=None, dest=None, url: str | None = None, progress: bool = True,
             keep_archive: bool = True, retries: int = 2, timeout: float = 60.0, archive: Archive | None = None,
             verbose: bool = True) -> Path:
    """Download and extract a real Speech Commands archive (explicitly: ~112 MB to 2.4 GB).

    Parameters
    ----------
    which : {"test-v2", "v1", "v2"}
        The v0.02 12-class test set, or the full v0.01 / v0.02 sets.
    words : str or sequence of str, optional
        Only these word folders (``"yes,no"``); all when None. Words extracted before are kept.
    dest : Path, optional
        Default ``<cache>/speech_commands/<which>`` (what ``source="auto"`` finds).
    url : str, optional
        Base URL of a mirror; default ``$THINLAB_DOWNLOAD_URL``, else the official bucket.
    keep_archive : bool
        Keep the verified archive in ``<cache>/downloads`` (so more words need no new download).
    retries : int
        Automatic resumes after an interrupted transfer.
    archive : Archive, optional
        Use this spec instead of ``ARCHIVES[which]`` (tests, mirrors of other files).

    Returns
    -------
    Path
        The extracted folder.

    Taught in: 00_speech_commands
    """
    if archive is None and (not isinstance(which, str) or which not in ARCHIVES):
        raise (DataError if isinstance(which, str) else DataTypeError)(
            f"which={which!r}: expected one of {list(ARCHIVES)} (test-v2 = 112 MB test set).")
    if archive is not None and not isinstance(archive, Archive):
        raise DataTypeError(f"archive={archive!r} is not an Archive; pass thinlab.data.Archive(...) or leave it None")
    spec = archive or ARCHIVES[which]
    words = _check_words(words, spec)
    progress, verbose, keep_archive = (check_bool(v, name=k, errors=ERRORS) for k, v in
                                       (("progress", progress), ("verbose", verbose), ("keep_archive", keep_archive)))
    retries = check_int(retries, name="retries", low=0, high=100, errors=ERRORS,
                        hint="pass how many times to resume an interrupted transfer, e.g. 2")
    timeout = check_real(timeout, name="timeout", low=0.0, high=3600.0, low_open=True, errors=ERRORS,
                         hint="pass seconds to wait for the server, e.g. 60.0")
    full_url = check_base_url(url) + spec.filename  # a bad URL fails now, not after gigabytes
    dest = check_path(dest, name="dest", errors=ERRORS) if dest is not None else downloaded_dir(which)
    check_replaceable(dest)  # before downloading gigabytes
    old = read_marker(dest, verify=False)
    if old and old.get("sha256") == spec.sha256 and old.get("archive") == spec.filename:
        gone = marker_problems(dest, old)
        old_words = old.get("words")
        if not isinstance(old_words, list) or not all(isinstance(w, str) for w in old_words):
            old_words = None
        if gone:
            if verbose:
                print(f"{spec.filename}: {dest} is incomplete ({'; '.join(gone[:3])}); extracting again.")
        elif old_words is None or (words is not None and set(words) <= set(old_words)):
            if verbose:
                print(f"{spec.filename}: already extracted in {dest}; nothing to do.")
            return dest
        if words is not None:  # keep every word extracted before (all of them when the marker says so)
            words = None if old_words is None else sorted(set(words) | set(old_words))
    arc = cache_root() / "downloads" / spec.filename
    if arc.exists():
        try:
            verify(arc, spec, progress=progress)
        except ChecksumError as exc:
            arc.unlink()
            if verbose:
                print(f"{exc} Removed it; downloading again.")
    if not arc.exists():
        part = arc.with_name(arc.name + ".part")
        for attempt in range(retries + 1):
            try:
                fetch(full_url, part, size=spec.size, progress=progress, timeout=timeout)
                break
            except Interrupted as exc:
                if attempt == retries:
                    raise
                if verbose:
                    print(f"{exc}\nresuming ({attempt + 1}/{retries}) …")
        try:
            verify(part, spec, progress=progress)
        except ChecksumError as exc:
            part.unlink()
            raise ChecksumError(f"{exc} The file was removed; run the same command again to download it afresh "
                                "(if it fails again, the mirror serves a different file).") from exc
        os.replace(part, arc)
    out = extract_archive(arc, dest, words=words, always=spec.always, progress=progress,
                          marker={"kind": "download", "which": which, "archive": spec.filename,
                                  "sha256": spec.sha256})
    if not keep_archive:
        arc.unlink()
    if verbose:
        print(f"{spec.filename}: extracted {'all words' if words is None else ', '.join(words)} into {out}")
    return out
