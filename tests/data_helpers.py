"""Helpers for the thinlab.data tests: tiny WAV folders, tar.gz archives, and a local HTTP server
that honours Range requests (and can cut a transfer short or ignore Range on purpose)."""
from __future__ import annotations

import io
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def tone(freq: float = 440.0, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    """A sine tone, float32 (round(seconds*sr),)."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path, audio, sr: int = SR, subtype: str = "PCM_16") -> Path:
    """Write a WAV with soundfile (any subtype), creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, subtype=subtype, format="WAV")
    return path


def wav_bytes(audio, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, sr, subtype=subtype, format="WAV")
    return buf.getvalue()


def speaker(i: int) -> str:
    """A deterministic 8-hex speaker id like the data set's."""
    return f"{(i * 2654435761) % 16**8:08x}"


def make_folder(root, words=("yes", "no"), n_speakers: int = 12, per_speaker: int = 1, background: bool = True,
                extra_words=()) -> Path:
    """A small Speech Commands folder of tones: <word>/<speaker>_nohash_<k>.wav (+ background noise)."""
    root = Path(root)
    for w_i, w in enumerate(tuple(words) + tuple(extra_words)):
        for s in range(n_speakers):
            for k in range(per_speaker):
                write_wav(root / w / f"{speaker(s)}_nohash_{k}.wav", tone(200 + 50 * w_i + 5 * s, 0.8))
    if background:
        rng = np.random.default_rng(0)
        write_wav(root / "_background_noise_" / "white_noise.wav",
                  (0.1 * rng.standard_normal(SR * 12)).astype(np.float32))
    return root


def tar_gz(members) -> bytes:
    """A .tar.gz from ``members``: (name, bytes) for files, or ready TarInfo objects (links, fifos …)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                name, data = m
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def speech_archive(words=("yes", "no", "up"), n_speakers: int = 3) -> bytes:
    """A tiny archive in the real layout ("./" prefixes, folders, lists, licence, background)."""
    members = [("./LICENSE", b"CC BY 4.0\n"), ("./validation_list.txt", b"yes/" + speaker(0).encode()
                                                   + b"_nohash_0.wav\n"), ("./testing_list.txt", b"")]
    for w_i, w in enumerate(words):
        for s in range(n_speakers):
            members.append((f"./{w}/{speaker(s)}_nohash_0.wav", wav_bytes(tone(300 + 40 * w_i, 0.5))))
    members.append(("./_background_noise_/white_noise.wav", wav_bytes(0.1 * np.ones(SR * 2, np.float32))))
    return tar_gz(members)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        srv = self.server
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        srv.log.append((name, rng))
        data = srv.files.get(name)
        if data is None:
            self.send_error(404, "no such file")
            return
        start, status = 0, 200
        if rng and srv.honour_range:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            start = int(m.group(1))
            if start >= len(data):
                self.send_error(416, "range not satisfiable")
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        cut = srv.cut.pop(name, None)
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep test output quiet
        pass


class RangeServer(ThreadingHTTPServer):
    """``with RangeServer() as srv: srv.files["a.tar.gz"] = data; srv.url`` on 127.0.0.1.

    ``cut[name] = n`` sends only n body bytes on the next request for ``name`` (then closes);
    ``honour_range = False`` answers every request with the whole file (status 200);
    ``log`` records (name, Range header) per request.
    """

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.cut, self.log, self.honour_range = {}, {}, [], True
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
