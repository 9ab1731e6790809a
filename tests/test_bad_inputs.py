"""Bad input at every public entry point gets a clear error that names the fix (issue 12).

Each case is one call with one bad input. It must raise the expected exception type, from thinlab's own
checks (the innermost frame of the traceback is in the thinlab package, never inside numpy, torch,
soundfile or librosa), with a message that says how to fix it (the case's ``fix`` pattern). The table
is grouped as the issue's findings are: audio files and clips, features, folders / lists / splits,
download and archives, synthesis, the numpy kernels, ``compress``, ``load_compressed`` and the CLI.
"""
from __future__ import annotations

import json
import os
import re
import struct
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from data_helpers import make_folder, tar_gz, tone, wav_bytes, write_wav

import thinlab
from thinlab import deepthin, hashednet, lowrank, prune, quant
from thinlab._io import CacheError, cache_root
from thinlab.data import (ArchiveError, AudioError, DataError, FeatureParams, compute_features, download,
                          extract_archive, load_audio, load_dataset, logmel, mfcc, mix_noise, random_augment,
                          read_audio, scan, synthesize, time_shift, which_set, write_wav as tl_write_wav)
from thinlab.data._io import DataTypeError
from thinlab.data.__main__ import main
from thinlab.nn import compress, load_compressed, save_compressed
from thinlab.nn._io_check import CompressedFileError
from thinlab.models import build_model

THINLAB_DIR = Path(thinlab.__file__).resolve().parent
SR = 16000


def raised_in_thinlab(exc: BaseException) -> bool:
    """True if the innermost frame that raised ``exc`` is thinlab's own code (a check, not a crash)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(THINLAB_DIR)


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def B(tmp_path_factory):
    """Everything the cases need, made once: broken WAVs, folders, archives, a model and saved files."""
    d = tmp_path_factory.mktemp("bad")
    good = write_wav(d / "good.wav", tone(440, 1.0))
    ns = SimpleNamespace(dir=d, good=good)
    ns.empty = d / "empty.wav"
    ns.empty.write_bytes(b"")
    ns.text = d / "text.wav"
    ns.text.write_text("this is not audio")
    data = wav_bytes(tone(440, 1.0))
    ns.stub = d / "stub.wav"
    ns.stub.write_bytes(data[:8])
    ns.cut = d / "cut.wav"
    ns.cut.write_bytes(data[: len(data) // 2])
    # finding 8: a cut-off stream whose header says 0xFFFFFFFF bytes of data (478 real samples of 16,000)
    ns.stream = d / "stream.wav"
    ns.stream.write_bytes(data[:40] + struct.pack("<I", 0xFFFFFFFF) + data[44:44 + 956])
    ns.one_hz = d / "one_hz.wav"  # finding 8: a 1 Hz header
    ns.one_hz.write_bytes(data[:24] + struct.pack("<II", 1, 2) + data[32:])
    ns.nan_wav = write_wav(d / "nan.wav", np.full(SR, np.nan, np.float32), subtype="FLOAT")
    ns.zero = write_wav(d / "zero.wav", np.zeros(0, np.float32))
    ns.folder = d / "a_folder.wav"
    ns.folder.mkdir()
    ns.noise = write_wav(d / "noise.wav", (0.1 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32))
    # folders
    ns.loop = make_folder(d / "loop", n_speakers=3, background=False)
    os.symlink("loop", ns.loop / "loop")  # finding 10: one looping symlink in the data folder
    ns.a_file = d / "a_file"
    ns.a_file.write_text("x")
    ns.noclips = d / "noclips.tar.gz"  # finding 10: an archive with no clips
    ns.noclips.write_bytes(tar_gz([("./LICENSE", b"CC BY 4.0"), ("./_background_noise_/n.wav", wav_bytes(tone()))]))
    ns.twowords = d / "two.tar.gz"
    ns.twowords.write_bytes(tar_gz([("yes/a_nohash_0.wav", wav_bytes(tone()))]))
    # a model and its compressed files (finding 5)
    torch.manual_seed(0)
    ns.model = build_model("dnn", 10, n_frames=20, n_mels=8, hidden=(64, 48))
    ns.saved = {}
    for method, kw in (("prune", dict(size_fraction=0.3)), ("lowrank", dict(size_fraction=0.3)),
                       ("kmeans", dict(n_bits=3)), ("quant", dict(n_bits=6)), ("hashed", dict(size_fraction=0.2))):
        ns.saved[method] = d / f"{method}.npz"
        save_compressed(compress(ns.model, method=method, **kw), ns.saved[method])
    ns.nan_model = build_model("dnn", 10, n_frames=20, n_mels=8, hidden=(64, 48))
    with torch.no_grad():
        ns.nan_model.hidden[0].weight[3, 5] = float("nan")
    ns.layernorm = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    return ns


def variant(B, method: str, change) -> Path:
    """A copy of B.saved[method] with ``change(arrays, meta)`` applied (a crafted or damaged file)."""
    with np.load(B.saved[method], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    change(arrays, meta)
    out = B.dir / f"variant-{method}-{len(list(B.dir.glob('variant-*')))}.npz"
    np.savez(out, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    return out


def _set(key, value):
    def change(arrays, meta):
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value(arrays[key]) if callable(value) else value
    return change


def _meta(fn):
    def change(arrays, meta):
        fn(meta)
    return change


def _no_arrays(arrays, meta):
    arrays.clear()
    meta["layers"], meta["dense"] = {}, []


def _csr_out_of_range(arrays, meta):
    idx = arrays["hidden.0.weight.indices"].copy()
    idx[0] = 200  # 80 columns
    arrays["hidden.0.weight.indices"] = idx


def _kmeans_codes_too_big(arrays, meta):
    arrays["out.weight.codes"] = np.full_like(arrays["out.weight.codes"], 255)  # every 3-bit code is 7
    arrays["out.weight.values"] = arrays["out.weight.values"][:5]  # … but only 5 shared values: codes 5-7 dangle
    meta["layers"]["out"]["n_values"] = 5


def _unreadable(monkeypatch, B):
    import builtins

    import thinlab.data.audio as audio

    def deny(path, *a, **k):
        if str(path).endswith("good.wav"):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *a, **k)

    monkeypatch.setattr(audio, "open", deny, raising=False)
    return load_audio(B.good)


def _cache_is_a_file(monkeypatch, B):
    monkeypatch.setenv("THINLAB_CACHE", str(B.a_file))
    return cache_root()


def _cache_inside_a_file(monkeypatch, B):
    monkeypatch.setenv("THINLAB_CACHE", str(B.a_file / "cache"))
    return download("test-v2", progress=False)


def _env_url(monkeypatch, B):
    monkeypatch.setenv("THINLAB_DOWNLOAD_URL", "notaurl")
    monkeypatch.setenv("THINLAB_CACHE", str(B.dir / "cache"))
    return download("test-v2", progress=False)


def _dl(**kw):
    def call(monkeypatch, B):
        monkeypatch.setenv("THINLAB_CACHE", str(B.dir / "cache"))
        return download(**{"which": "test-v2", "progress": False, **kw})
    return call


def _missing_word_in_test_v2(monkeypatch, B):
    """Finding 4: the repair advice for a test-v2 folder names test-v2, not the 2.4 GB v2 set."""
    root = make_folder(B.dir / "tv2", words=("yes",), n_speakers=4)
    (root / ".thinlab-complete.json").write_text(json.dumps({"kind": "download", "which": "test-v2"}))
    return load_dataset(root, words=["yes", "no"], progress=False, verbose=False)


x16 = tone(440, 1.0)
W = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
W_nan = W.copy()
W_nan[2, 3] = np.nan
W_inf = W.copy()
W_inf[0, 0] = np.inf
D = DataError
T = DataTypeError


def c(f):
    """A case's call: ``f(B)``, or ``f(monkeypatch, B)`` when it takes two arguments."""
    return f


# (id, call, expected exception, a pattern naming the fix)
CASES = [
    # ---- finding 7/8/10: load_audio / read_audio --------------------------------------------------------
    ("load_audio-sr0", lambda B: load_audio(B.good, sr=0), D, r"sr=0 must be in \[1000, .*pass the sample rate"),
    ("load_audio-sr-neg", lambda B: load_audio(B.good, sr=-16000), D, r"pass the sample rate in Hz"),
    ("load_audio-sr-str", lambda B: load_audio(B.good, sr="16000"), T, r"must be an integer, not a str; pass"),
    ("load_audio-sr-float", lambda B: load_audio(B.good, sr=16000.0), T, r"not a float; pass the sample rate"),
    ("load_audio-sr-bool", lambda B: load_audio(B.good, sr=True), T, r"pass the sample rate"),
    ("load_audio-seconds0", lambda B: load_audio(B.good, seconds=0), D, r"seconds=0.0 must be in \(0, .*pass the clip"),
    ("load_audio-seconds-neg", lambda B: load_audio(B.good, seconds=-1), D, r"pass the clip length in seconds"),
    ("load_audio-seconds-nan", lambda B: load_audio(B.good, seconds=float("nan")), D, r"a finite number.*pass"),
    ("load_audio-seconds-inf", lambda B: load_audio(B.good, seconds=float("inf")), D, r"a finite number.*pass"),
    ("load_audio-seconds-str", lambda B: load_audio(B.good, seconds="1"), T, r"must be a real number.*pass"),
    ("load_audio-seconds-tiny", lambda B: load_audio(B.good, seconds=1e-9), D, r"less than one; pass seconds ≥"),
    ("load_audio-seconds-huge", lambda B: load_audio(B.good, seconds=1e7), D, r"pass the clip length"),
    ("load_audio-path-int", lambda B: load_audio(123), T, r"not a path; pass a str or pathlib.Path"),
    ("load_audio-path-none", lambda B: load_audio(None), T, r"pass a str or pathlib.Path"),
    ("load_audio-path-empty", lambda B: load_audio(""), D, r"empty path; pass a file"),
    ("load_audio-missing", lambda B: load_audio(B.dir / "nope.wav"), AudioError, r"does not exist.*check the folder"),
    ("load_audio-folder", lambda B: load_audio(B.folder), AudioError, r"is a folder.*check the folder"),
    ("load_audio-empty", lambda B: load_audio(B.empty), AudioError, r"Delete it or copy it again"),
    ("load_audio-text", lambda B: load_audio(B.text), AudioError, r"convert it to WAV"),
    ("load_audio-stub", lambda B: load_audio(B.stub), AudioError, r"copy or download it again"),
    ("load_audio-cut", lambda B: load_audio(B.cut), AudioError, r"truncated.*copy or download it again"),
    ("load_audio-stream-0xffffffff", lambda B: load_audio(B.stream), AudioError, r"re-save it with a complete header"),
    ("load_audio-1hz", lambda B: load_audio(B.one_hz), AudioError, r"1 Hz.*re-create it with the real rate"),
    ("load_audio-nan-samples", lambda B: load_audio(B.nan_wav), AudioError, r"NaN.*re-create it"),
    ("load_audio-zero-samples", lambda B: load_audio(B.zero), AudioError, r"0 samples.*Remove it"),
    ("load_audio-unreadable", c(_unreadable), AudioError, r"Permission denied.*chmod a\+r"),
    ("read_audio-sr0", lambda B: read_audio(B.good, sr=0), D, r"pass the sample rate"),
    ("window-gain-too-big", lambda B: load_audio(f"{B.noise}#start=0&gain=1000000000"), AudioError,
     r"gain=1e\+09 is outside \[0, 1\].*fix the gain"),
    ("window-start-past-end", lambda B: load_audio(f"{B.noise}#start=99999999&gain=0.5"), AudioError,
     r"past the end.*list a window inside"),
    ("window-malformed", lambda B: load_audio(f"{B.noise}#begin=3"), AudioError, r"check the name"),
    ("window-negative-gain", lambda B: load_audio(f"{B.noise}#start=0&gain=-1"), AudioError, r"check the name"),
    # ---- clips in memory: write_wav, mix_noise, time_shift, random_augment ------------------------------
    ("write_wav-nan", lambda B: tl_write_wav(B.dir / "o.wav", np.full(10, np.nan)), D, r"replace them, e\.g\."),
    ("write_wav-3d", lambda B: tl_write_wav(B.dir / "o.wav", np.zeros((2, 2, 2))), D, r"expected a 1-D or 2-D"),
    ("write_wav-empty", lambda B: tl_write_wav(B.dir / "o.wav", np.zeros(0)), D, r"pass at least one sample"),
    ("write_wav-str", lambda B: tl_write_wav(B.dir / "o.wav", ["a", "b"]), T, r"convert it with np.asarray"),
    ("write_wav-sr0", lambda B: tl_write_wav(B.dir / "o.wav", x16, sr=0), D, r"pass the sample rate"),
    ("write_wav-subtype", lambda B: tl_write_wav(B.dir / "o.wav", x16, subtype="MP3"), D, r"use one of 'PCM_16'"),
    ("write_wav-path", lambda B: tl_write_wav(5, x16), T, r"pass a str or pathlib.Path"),
    ("mix_noise-2d-noise", lambda B: mix_noise(x16, np.ones((4, SR)), snr_db=10), D, r"pass one channel"),
    ("mix_noise-empty-noise", lambda B: mix_noise(x16, np.zeros(0), snr_db=10), D, r"pass at least one sample"),
    ("mix_noise-nan-noise", lambda B: mix_noise(x16, np.full(SR, np.nan), snr_db=10), D, r"replace them"),
    ("mix_noise-nan-clip", lambda B: mix_noise(np.full(SR, np.inf), np.ones(SR), snr_db=10), D, r"replace them"),
    ("mix_noise-huge-noise", lambda B: mix_noise(x16, np.full(SR, 1e300), snr_db=10), D,
     r"up to 1e\+300, beyond float32's range.*scale it"),
    ("mix_noise-snr-nan", lambda B: mix_noise(x16, np.ones(SR), snr_db=float("nan")), D, r"pass the signal-to-noise"),
    ("mix_noise-snr-str", lambda B: mix_noise(x16, np.ones(SR), snr_db="10"), T, r"pass the signal-to-noise"),
    ("mix_noise-offset-neg", lambda B: mix_noise(x16, np.ones(SR), snr_db=10, offset=-1), D, r"pass a smaller offset"),
    ("mix_noise-offset-big", lambda B: mix_noise(x16, np.ones(2 * SR), snr_db=10, offset=SR + 1), D,
     r"must fit in the noise.*pass a smaller offset"),
    ("mix_noise-rng", lambda B: mix_noise(x16, np.ones(SR), snr_db=10, rng="x"), T, r"pass rng=np.random.default_rng"),
    ("time_shift-float", lambda B: time_shift(x16, 1.5), T, r"pass a whole number of samples"),
    ("time_shift-2d", lambda B: time_shift(np.ones((2, 4)), 1), D, r"pass one channel"),
    ("augment-rng-none", lambda B: random_augment(x16, [], rng=None), T, r"pass rng=np.random.default_rng"),
    ("augment-snr-reversed", lambda B: random_augment(x16, [], rng=np.random.default_rng(0), snr_db=(20, 5)), D,
     r"low > high; pass \(low, high\)"),
    ("augment-snr-str", lambda B: random_augment(x16, [], rng=np.random.default_rng(0), snr_db="5"), T,
     r"e\.g\. snr_db=\(5\.0, 20\.0\)"),
    ("augment-p-noise", lambda B: random_augment(x16, [], rng=np.random.default_rng(0), p_noise=2), D,
     r"pass the probability"),
    ("augment-shift-neg", lambda B: random_augment(x16, [], rng=np.random.default_rng(0), max_shift_ms=-1), D,
     r"pass the largest shift"),
    ("augment-noises-array", lambda B: random_augment(x16, np.ones(SR), rng=np.random.default_rng(0)), T,
     r"pass e\.g\. \[read_audio"),
    # ---- finding 1: feature parameters ------------------------------------------------------------------
    ("features-fmin-above-fmax", lambda B: FeatureParams("logmel", fmin=6000.0, fmax=100.0), D,
     r"fmin=6000 ≥ fmax=100.*swap them or pass fmax=None"),
    ("features-log-offset-0", lambda B: FeatureParams("logmel", log_offset=0), D, r"log_offset > 0.*e\.g\. 1e-6"),
    ("features-log-offset-neg", lambda B: FeatureParams("logmel", log_offset=-1), D, r"e\.g\. 1e-6"),
    ("features-log-offset-nan", lambda B: FeatureParams("logmel", log_offset=float("nan")), D, r"e\.g\. 1e-6"),
    ("features-fmax-above-nyquist", lambda B: FeatureParams("logmel", fmax=9000.0), D, r"at most sr/2 = 8000"),
    ("features-fmin-neg", lambda B: FeatureParams("logmel", fmin=-5.0), D, r"must lie below sr/2.*e\.g\. 20"),
    ("features-n-fft-0", lambda B: FeatureParams("logmel", n_fft=0), D, r"e\.g\. 480"),
    ("features-hop-above-n-fft", lambda B: FeatureParams("logmel", hop_length=1000), D, r"hop_length ≤ n_fft"),
    ("features-n-mels-0", lambda B: FeatureParams("logmel", n_mels=0), D, r"n_mels e\.g\. 40"),
    ("features-n-mfcc-above-n-mels", lambda B: FeatureParams("mfcc", n_mfcc=50), D, r"use n_mfcc ≤ 40"),
    ("features-sr-str", lambda B: FeatureParams("logmel", sr="16k"), T, r"pass the clips' sample rate"),
    ("features-kind", lambda B: FeatureParams("spectrogram"), D, r"use 'logmel' or 'mfcc'"),
    ("features-kind-int", lambda B: FeatureParams(3), T, r"use 'logmel' or 'mfcc'"),
    ("features-empty-mel-bands", lambda B: logmel(x16, n_mels=256), D, r"use fewer n_mels.*or a larger n_fft"),
    ("features-audio-3d", lambda B: logmel(np.zeros((2, 2, SR))), D, r"stack clips with np.stack"),
    ("features-audio-empty", lambda B: mfcc(np.zeros(0)), D, r"pass at least one clip"),
    ("features-audio-nan", lambda B: logmel(np.full(SR, np.nan)), D, r"np.nan_to_num"),
    ("features-audio-short", lambda B: logmel(np.ones(100)), D, r"pad it .*fix_length.*or use a smaller n_fft"),
    ("features-audio-str", lambda B: logmel(np.array(["a"] * 600)), T, r"convert it with np.asarray"),
    ("features-params-type", lambda B: compute_features(x16, {"kind": "logmel"}), T, r"pass FeatureParams"),
    # ---- findings 1, 9: load_dataset / plan_task / scan / splits --------------------------------------
    ("dataset-words-string", lambda B: load_dataset(B.loop, words="yes,no", verbose=False), T,
     r"one string; pass a list of names such as \['yes', 'no'\]"),
    ("dataset-words-duplicate", lambda B: load_dataset(B.loop, words=["yes", "yes", "no"], verbose=False), D,
     r"more than once; list each name once, e\.g\. \['yes', 'no'\]"),
    ("dataset-words-empty", lambda B: load_dataset(B.loop, words=[], verbose=False), D, r"pass at least one name"),
    ("dataset-words-int", lambda B: load_dataset(B.loop, words=["yes", 3], verbose=False), T, r"pass a list of names"),
    ("dataset-words-none", lambda B: load_dataset(B.loop, words=None, verbose=False), T, r"pass a list of names"),
    ("dataset-words-class-name", lambda B: load_dataset(B.loop, words=["_unknown_"], verbose=False), D,
     r"pass plain words such as 'yes'"),
    ("dataset-task", lambda B: load_dataset(B.loop, task="20words", verbose=False), D, r"use '10words' or '12class'"),
    ("dataset-task-int", lambda B: load_dataset(B.loop, task=10, verbose=False), T, r"use '10words' or '12class'"),
    ("dataset-split", lambda B: load_dataset(B.loop, words=["yes"], split="speakers", verbose=False), D,
     r"use one of .*'speaker' is the default"),
    ("dataset-split-none", lambda B: load_dataset(B.loop, words=["yes"], split=None, verbose=False), T,
     r"use one of"),
    ("dataset-val-nan", lambda B: load_dataset(B.loop, words=["yes"], validation_percentage=float("nan"),
                                               verbose=False), D, r"pass a percentage"),
    ("dataset-val-neg", lambda B: load_dataset(B.loop, words=["yes"], validation_percentage=-5, verbose=False), D,
     r"pass a percentage"),
    ("dataset-val-str", lambda B: load_dataset(B.loop, words=["yes"], validation_percentage="10", verbose=False), T,
     r"pass a percentage"),
    ("dataset-percent-sum", lambda B: load_dataset(B.loop, words=["yes"], validation_percentage=60,
                                                   testing_percentage=50, verbose=False), D, r"lower them"),
    ("dataset-max-per-class-0", lambda B: load_dataset(B.loop, words=["yes"], max_per_class=0, verbose=False), D,
     r"or None for all"),
    ("dataset-max-per-class-float", lambda B: load_dataset(B.loop, words=["yes"], max_per_class=1.5,
                                                           verbose=False), T, r"or None for all"),
    ("dataset-seed-neg", lambda B: load_dataset(B.loop, seed=-1, verbose=False), D, r"e\.g\. seed=0"),
    ("dataset-seed-float", lambda B: load_dataset(B.loop, seed=1.5, verbose=False), T, r"e\.g\. seed=0"),
    ("dataset-feature", lambda B: load_dataset(B.loop, feature="spectrogram", verbose=False), D,
     r"use 'logmel' or 'mfcc'"),
    ("dataset-feature-params-fmin-fmax", lambda B: load_dataset(B.loop, feature_params={"fmin": 6000.0, "fmax": 100.0},
                                                                verbose=False), D, r"swap them"),
    ("dataset-feature-params-unknown", lambda B: load_dataset(B.loop, feature_params={"n_mel": 40}, verbose=False),
     D, r"unknown options \['n_mel'\]; use some of"),
    ("dataset-feature-params-kind", lambda B: load_dataset(B.loop, feature_params={"kind": "mfcc"}, verbose=False),
     D, r"pass the kind as feature="),
    ("dataset-feature-params-str", lambda B: load_dataset(B.loop, feature_params="n_mels=40", verbose=False), T,
     r"must be a dict such as"),
    ("dataset-feature-both", lambda B: load_dataset(B.loop, feature=FeatureParams(), feature_params={"n_mels": 8},
                                                    verbose=False), D, r"put the options in one place"),
    ("dataset-augment-str", lambda B: load_dataset(B.loop, augment="yes", verbose=False), T, r"must be True, False"),
    ("dataset-augment-copies-0", lambda B: load_dataset(B.loop, augment={"copies": 0}, verbose=False), D,
     r"or augment=False for none"),
    ("dataset-augment-copies-float", lambda B: load_dataset(B.loop, augment={"copies": 1.5}, verbose=False), T,
     r"pass how many augmented copies"),
    ("dataset-augment-snr", lambda B: load_dataset(B.loop, augment={"snr_db": (20, 5)}, verbose=False), D,
     r"pass \(low, high\)"),
    ("dataset-augment-p", lambda B: load_dataset(B.loop, augment={"p_noise": 1.5}, verbose=False), D,
     r"pass the probability"),
    ("dataset-source-int", lambda B: load_dataset(123, verbose=False), T, r"pass 'auto', 'synthetic'"),
    ("dataset-source-none", lambda B: load_dataset(None, verbose=False), T, r"pass 'auto', 'synthetic'"),
    ("dataset-cache-str", lambda B: load_dataset(B.loop, cache="no", verbose=False), T, r"pass cache=True"),
    ("dataset-missing-word-test-v2-advice", c(_missing_word_in_test_v2), D,
     r"python -m thinlab\.data download test-v2 --words no\)"),
    ("scan-loop-symlink", lambda B: scan(B.loop), D, r"remove it or point it at a real folder"),
    ("scan-missing", lambda B: scan(B.dir / "nope"), D, r"Run `make data`"),
    ("scan-file", lambda B: scan(B.a_file), D, r"use thinlab\.data\.extract_archive"),
    ("scan-int", lambda B: scan(5), T, r"pass a str or pathlib.Path"),
    ("which_set-nan", lambda B: which_set("yes/a_nohash_0.wav", 10, float("nan")), D, r"pass a percentage"),
    ("which_set-path", lambda B: which_set(5), T, r"pass a clip path"),
    # ---- findings 4, 10: download and archives --------------------------------------------------------
    ("download-which", _dl(which="v3"), D, r"expected one of \['test-v2', 'v1', 'v2'\]"),
    ("download-which-int", _dl(which=3), T, r"expected one of"),
    ("download-words-int-item", _dl(words=[1]), T, r"pass words such as \['yes', 'no'\]"),
    ("download-words-int", _dl(words=5), T, r"must be a list of words such as"),
    ("download-words-unknown", _dl(words="yes,yess"), D, r"use some of yes, no"),
    ("download-url-notaurl", _dl(url="notaurl"), D, r"not an http\(s\) URL; pass the base URL of a mirror"),
    ("download-url-ftp", _dl(url="ftp://example.org/"), D, r"pass the base URL of a mirror"),
    ("download-url-int", _dl(url=5), T, r"must be a string such as"),
    ("download-url-env", c(_env_url), D, r"THINLAB_DOWNLOAD_URL='notaurl'.*unset THINLAB_DOWNLOAD_URL or set it"),
    ("download-retries", _dl(retries=-1), D, r"pass how many times to resume"),
    ("download-timeout-0", _dl(timeout=0), D, r"pass seconds to wait"),
    ("download-timeout-str", _dl(timeout="60"), T, r"pass seconds to wait"),
    ("download-dest-int", _dl(dest=5), T, r"pass a str or pathlib.Path"),
    ("download-dest-file", lambda mp, B: _dl(dest=B.a_file)(mp, B), D, r"choose a new or empty folder"),
    ("download-progress-str", _dl(progress="yes"), T, r"pass progress=True"),
    ("download-cache-inside-file", c(_cache_inside_a_file), CacheError, r"set THINLAB_CACHE to a folder"),
    ("cache-root-is-a-file", c(_cache_is_a_file), CacheError, r"THINLAB_CACHE=.*set THINLAB_CACHE to a folder"),
    ("extract-missing", lambda B: extract_archive(B.dir / "none.tar.gz", B.dir / "x1", progress=False), ArchiveError,
     r"Download it with"),
    ("extract-no-clips", lambda B: extract_archive(B.noclips, B.dir / "x2", progress=False), ArchiveError,
     r"delete the archive and download the right one"),
    ("extract-missing-word", lambda B: extract_archive(B.twowords, B.dir / "x3", words=["no"], progress=False),
     ArchiveError, r"check the word names"),
    ("extract-words-string", lambda B: extract_archive(B.twowords, B.dir / "x4", words="yes", progress=False), T,
     r"pass a list of names such as \['yes'\]"),
    ("extract-archive-int", lambda B: extract_archive(5, B.dir / "x5", progress=False), T, r"pass a str or"),
    # ---- synthesis ---------------------------------------------------------------------------------------
    ("synth-speakers-2", lambda B: synthesize(B.dir / "s", n_speakers=2), D, r"at least 3 so a speaker-disjoint"),
    ("synth-speakers-str", lambda B: synthesize(B.dir / "s", n_speakers="160"), T, r"pass e\.g\. n_speakers=160"),
    ("synth-speakers-float", lambda B: synthesize(B.dir / "s", n_speakers=10.5), T, r"pass e\.g\. n_speakers=160"),
    ("synth-words-string", lambda B: synthesize(B.dir / "s", words="yes,no"), T, r"pass a list of names such as"),
    ("synth-seed-neg", lambda B: synthesize(B.dir / "s", seed=-1), D, r"e\.g\. seed=0"),
    ("synth-background-0", lambda B: synthesize(B.dir / "s", background_seconds=0), D, r"e\.g\. 30\.0"),
    ("synth-dest-int", lambda B: synthesize(5), T, r"pass a str or pathlib.Path"),
    # ---- finding 6 and the kernels' parameters -----------------------------------------------------------
    ("prune-nan", lambda B: prune.magnitude_prune(W_nan, sparsity=0.5), ValueError, r"check the training run"),
    ("prune-inf", lambda B: prune.magnitude_mask(W_inf, sparsity=0.5), ValueError, r"np\.nan_to_num"),
    ("prune-sparsity-str", lambda B: prune.magnitude_prune(W, sparsity="0.5"), TypeError, r"pass the fraction"),
    ("prune-sparsity-1", lambda B: prune.magnitude_prune(W, sparsity=1.0), ValueError, r"pass the fraction"),
    ("prune-int-weights", lambda B: prune.magnitude_prune(np.ones((2, 2), int), sparsity=0.5), TypeError,
     r"cast it with W\.astype\(np\.float32\)"),
    ("prune-empty", lambda B: prune.magnitude_prune(np.zeros((0, 3), np.float32), sparsity=0.5), ValueError,
     r"pass a non-empty weight array"),
    ("keep_largest-too-many", lambda B: prune.keep_largest(np.ones(4), n_drop=9), ValueError, r"drop between 0 and"),
    ("keep_largest-nan", lambda B: prune.keep_largest(np.array([1.0, np.nan]), n_drop=1), ValueError, r"nan_to_num"),
    ("n_pruned-neg", lambda B: prune.n_pruned(-1, sparsity=0.5), ValueError, r"pass the number of weights"),
    ("unit_norms-axis", lambda B: prune.unit_norms(W, axis=5), ValueError, r"e\.g\. axis=0"),
    ("unit_norms-norm", lambda B: prune.unit_norms(W, axis=0, norm="l3"), ValueError, r"pass norm='l1'"),
    ("csr-index-out-of-range", lambda B: prune.csr_decode(prune.CSR(np.ones(1, np.float32), np.array([9]),
                                                                    np.array([0, 1]), (1, 3))), ValueError,
     r"re-encode the weights with csr_encode"),
    ("csr-indptr-decreasing", lambda B: prune.csr_decode(prune.CSR(np.ones(1, np.float32), np.array([0]),
                                                                   np.array([0, 2, 1]), (2, 3))), ValueError,
     r"re-encode the weights"),
    ("csr-length-mismatch", lambda B: prune.csr_decode(prune.CSR(np.ones(2, np.float32), np.array([0]),
                                                                 np.array([0, 1]), (1, 3))), ValueError,
     r"re-encode the weights"),
    ("csr-nan-data", lambda B: prune.csr_decode(prune.CSR(np.array([np.nan], np.float32), np.array([0]),
                                                          np.array([0, 1]), (1, 3))), ValueError, r"nan_to_num"),
    ("masked-bits-length", lambda B: prune.masked_decode(prune.Masked(np.ones(1), np.zeros(5, np.uint8), (2, 2))),
     ValueError, r"re-encode with masked_encode"),
    ("svd-nan", lambda B: lowrank.truncated_svd(W_nan, rank=2), ValueError, r"check the training run"),
    ("svd-rank-0", lambda B: lowrank.truncated_svd(W, rank=0), ValueError, r"needs 1 ≤ k ≤ min"),
    ("svd-rank-str", lambda B: lowrank.truncated_svd(W, rank="2"), TypeError, r"needs 1 ≤ k ≤ min"),
    ("rank_for_budget-str", lambda B: lowrank.rank_for_budget((8, 6), size_fraction="0.2"), TypeError,
     r"e\.g\. 0\.1 for 10x"),
    ("rank_for_budget-nan", lambda B: lowrank.rank_for_budget((8, 6), size_fraction=float("nan")), ValueError,
     r"e\.g\. 0\.1 for 10x"),
    ("hashed-nan-buckets", lambda B: hashednet.hashed_weight(np.array([1.0, np.nan]), Q=2, R=2, seed=0), ValueError,
     r"check the training run"),
    ("hashed-seed-neg", lambda B: hashednet.hash_index(4, 4, n_buckets=3, seed=-1), ValueError,
     r"pass a fixed non-negative"),
    ("hashed-size-inf", lambda B: hashednet.buckets_for_size_fraction(8, 8, size_fraction=float("inf")), ValueError,
     r"e\.g\. 1/64 for 64x"),
    ("quant-nan", lambda B: quant.quantize_uniform(W_nan, n_bits=8, symmetric=True), ValueError,
     r"check the training run for divergence"),
    ("quant-n-bits-0", lambda B: quant.quantize_uniform(W, n_bits=0, symmetric=False), ValueError, r"e\.g\. n_bits=8"),
    ("quant-symmetric-str", lambda B: quant.quantize_uniform(W, n_bits=8, symmetric="yes"), TypeError,
     r"must be True or False"),
    ("quant-axis", lambda B: quant.quantize_uniform(W, n_bits=8, symmetric=True, axis=5), ValueError, r"e\.g\. axis=0"),
    ("kmeans-clusters-0", lambda B: quant.kmeans_quantize(W, n_clusters=0), ValueError, r"at most 65536"),
    ("kmeans-code-bits-0", lambda B: quant.kmeans_code_bits(0), ValueError, r"e\.g\. n_clusters=16"),
    ("kmeans-dequantize-codes", lambda B: quant.kmeans_dequantize(quant.KMeansResult(np.array([5], np.uint8),
                                                                                     np.ones(2, np.float32), 0, 0, 0,
                                                                                     ())), ValueError,
     r"pass the result of one kmeans_quantize call"),
    ("multibit-bits-9", lambda B: quant.multibit_quantize(W, n_bits=9), ValueError, r"e\.g\. n_bits=2"),
    ("pack-negative", lambda B: quant.pack_bits(np.array([-1]), n_bits=4), ValueError, r"offset signed codes"),
    ("unpack-size", lambda B: quant.unpack_bits(np.zeros(3, np.uint8), n_bits=4, count=2), ValueError,
     r"check count and n_bits match"),
    ("qtensor-from-int", lambda B: quant.qtensor_from_bytes(5, n_bits=8, ndim=1, axis=None, symmetric=True),
     TypeError, r"from qtensor_to_bytes"),
    ("dequantize-nan-scale", lambda B: quant.dequantize(quant.QTensor(np.zeros(2, np.int8), np.float32(np.nan),
                                                                      np.int8(0), 8, (2,), None, True)), ValueError,
     r"replace them first"),
    ("code_range-0", lambda B: quant.code_range(n_bits=0, symmetric=False), ValueError, r"e\.g\. n_bits=8"),
    ("symmetric_scale-neg", lambda B: quant.symmetric_scale(-1.0, n_bits=8), ValueError, r"pass abs\(c\)"),
    ("affine_params-nan", lambda B: quant.affine_params(float("nan"), 1.0, n_bits=8), ValueError, r"nan_to_num"),
    ("huffman-float", lambda B: quant.huffman_encode(np.array([0.5])), TypeError, r"pass quantisation codes"),
    ("canonical-negative", lambda B: quant.canonical_codewords(np.array([-1, 2])), ValueError,
     r"pass huffman_code_lengths"),
    ("fixed-point-frac", lambda B: quant.fixed_point_codes(W, word_bits=8, frac_bits=65), ValueError,
     r"use best_frac_bits"),
    ("fixed-point-word", lambda B: quant.fixed_point(W, word_bits=1, frac_bits=0), ValueError, r"e\.g\. word_bits=8"),
    ("omse-bits", lambda B: quant.omse_clip(W, n_bits=9, symmetric=True), ValueError, r"use clip=None"),
    ("candidate_sse-unsorted", lambda B: quant.candidate_sse(np.array([2.0, 1.0]), np.ones(1), np.zeros(1), n_bits=2,
                                                             symmetric=True), ValueError, r"pass np\.sort"),
    ("deepthin-rank-advice", lambda B: deepthin.deepthin_size(64, 48, size_fraction=0.1, rank=50), ValueError,
     r"at any size_fraction ≤ 1.*use rank ≤ 2"),
    ("deepthin-fraction-str", lambda B: deepthin.deepthin_size(64, 48, size_fraction="0.1"), TypeError,
     r"e\.g\. size_fraction=0\.01"),
    ("deepthin-reconstruct-nan", lambda B: deepthin.reconstruct(W_nan, W, Q=4, R=4), ValueError, r"nan_to_num"),
    ("deepthin-relayout-nan", lambda B: deepthin.relayout(W_nan, Q=4, R=4), ValueError, r"nan_to_num"),
    ("deepthin-fused-nan-factor", lambda B: deepthin.fused_matmul(np.ones((2, 4)), W_nan[:, 2:5], W[:3], Q=4, R=4),
     ValueError, r"nan_to_num"),
    ("deepthin-unrelayout-inf", lambda B: deepthin.unrelayout(W_inf, m=8, n=6), ValueError, r"nan_to_num"),
    ("deepthin-init-std-str", lambda B: deepthin.init_factors(4, 4, 2, target_std="0.1", rng=0), TypeError,
     r"e\.g\. glorot_std"),
    ("deepthin-init-rng", lambda B: deepthin.init_factors(4, 4, 2, target_std=0.1, rng="x"), TypeError,
     r"np\.random\.default_rng\(0\)"),
    # ---- findings 6, 9: compress ----------------------------------------------------------------------------
    ("compress-layers-string", lambda B: compress(B.model, method="prune", size_fraction=0.2, layers="hidden.0"),
     TypeError, r"one string; pass a list of names such as \['hidden\.0'\]"),
    ("compress-layers-duplicate", lambda B: compress(B.model, method="prune", size_fraction=0.2,
                                                     layers=["hidden.0", "hidden.0"]), ValueError, r"list each name once"),
    ("compress-layers-empty", lambda B: compress(B.model, method="prune", size_fraction=0.2, layers=[]), ValueError,
     r"pass at least one name"),
    ("compress-layer-missing", lambda B: compress(B.model, method="prune", size_fraction=0.2, layers=["nope"]),
     ValueError, r"not found.*compressible layers: \['hidden\.0'"),
    ("compress-layer-1d", lambda B: compress(B.layernorm, method="quant", n_bits=8, layers=["1"]), ValueError,
     r"compress Linear / Conv layers"),
    ("compress-method", lambda B: compress(B.model, method="zip", size_fraction=0.1), ValueError, r"choose one of"),
    ("compress-method-none", lambda B: compress(B.model, method=None), TypeError, r"choose one of"),
    ("compress-rank-0", lambda B: compress(B.model, method="lowrank", rank=0), ValueError,
     r"rank=0 must be ≥ 1; pass the rank of the factors"),
    ("compress-rank-too-big", lambda B: compress(B.model, method="lowrank", rank=1000), ValueError,
     r"use rank ≤ 64 or leave that layer out"),
    ("compress-rank-prune", lambda B: compress(B.model, method="prune", rank=3), ValueError,
     r"applies to method='lowrank' only.*pass that instead"),
    ("compress-rank-and-fraction", lambda B: compress(B.model, method="lowrank", rank=3, size_fraction=0.2),
     ValueError, r"pass one: rank="),
    ("compress-fraction-str", lambda B: compress(B.model, method="prune", size_fraction="0.2"), TypeError,
     r"e\.g\. 0\.05 for a 20x"),
    ("compress-fraction-nan", lambda B: compress(B.model, method="hashed", size_fraction=float("nan")), ValueError,
     r"e\.g\. 0\.05 for a 20x"),
    ("compress-fraction-0", lambda B: compress(B.model, method="deepthin", size_fraction=0), ValueError,
     r"e\.g\. 0\.05 for a 20x"),
    ("compress-fraction-none", lambda B: compress(B.model, method="prune"), ValueError, r"e\.g\. 0\.05 for a 20x"),
    ("compress-fraction-for-quant", lambda B: compress(B.model, method="quant", n_bits=8, size_fraction=0.2),
     ValueError, r"pass n_bits=… instead"),
    ("compress-n-bits-missing", lambda B: compress(B.model, method="quant"), ValueError, r"e\.g\. n_bits=8"),
    ("compress-n-bits-1-quant", lambda B: compress(B.model, method="quant", n_bits=1), ValueError,
     r"symmetric codes need ≥ 2"),
    ("compress-n-bits-17", lambda B: compress(B.model, method="kmeans", n_bits=17), ValueError, r"e\.g\. n_bits=4"),
    ("compress-n-bits-for-prune", lambda B: compress(B.model, method="prune", size_fraction=0.2, n_bits=4),
     ValueError, r"pass quant_bits=… instead"),
    ("compress-quant-bits-1", lambda B: compress(B.model, method="lowrank", size_fraction=0.2, quant_bits=1),
     ValueError, r"e\.g\. quant_bits=8"),
    ("compress-quant-bits-hashed", lambda B: compress(B.model, method="hashed", size_fraction=0.2, quant_bits=8),
     ValueError, r"leave quant_bits=None"),
    ("compress-seed-neg", lambda B: compress(B.model, method="hashed", size_fraction=0.2, seed=-1), ValueError,
     r"e\.g\. seed=0"),
    ("compress-seed-str", lambda B: compress(B.model, method="hashed", size_fraction=0.2, seed="0"), TypeError,
     r"e\.g\. seed=0"),
    ("compress-storage", lambda B: compress(B.model, method="prune", size_fraction=0.2, storage="coo"), ValueError,
     r"use one of \('csr', 'bitmask'\)"),
    ("compress-storage-lowrank", lambda B: compress(B.model, method="lowrank", size_fraction=0.2, storage="bitmask"),
     ValueError, r"leave the default 'csr'"),
    ("compress-init", lambda B: compress(B.model, method="prune", size_fraction=0.2, init="zeros"), ValueError,
     r"use one of \('project', 'random'\)"),
    ("compress-nan-hashed", lambda B: compress(B.nan_model, method="hashed", size_fraction=0.2), ValueError,
     r"layer 'hidden\.0' weight contains 1 NaN.*check the training run"),
    ("compress-nan-quant", lambda B: compress(B.nan_model, method="quant", n_bits=8), ValueError,
     r"layer 'hidden\.0' weight.*check the training run"),
    ("compress-nan-kmeans", lambda B: compress(B.nan_model, method="kmeans", n_bits=3), ValueError,
     r"layer 'hidden\.0' weight.*check the training run"),
    ("compress-nan-lowrank", lambda B: compress(B.nan_model, method="lowrank", size_fraction=0.2), ValueError,
     r"layer 'hidden\.0' weight.*check the training run"),
    ("compress-kmeans-too-many", lambda B: compress(B.model, method="kmeans", n_bits=16, layers=["out"]), ValueError,
     r"use n_bits ≤ 8 or leave that layer out"),
    ("compress-deepthin-too-small", lambda B: compress(B.model, method="deepthin", size_fraction=1e-5), ValueError,
     r"use size_fraction ≥ 0\.036"),
    ("compress-model-str", lambda B: compress("model", method="quant", n_bits=8), TypeError,
     r"pass a model, e\.g\. thinlab\.models\.build_model"),
    ("save-model-str", lambda B: save_compressed("model", B.dir / "m.npz"), TypeError, r"pass a model"),
    ("save-no-spec", lambda B: save_compressed(torch.nn.Linear(2, 2), B.dir / "m.npz"), ValueError,
     r"build it with thinlab\.models\.build_model"),
    # ---- finding 5: load_compressed -------------------------------------------------------------------------
    ("load-missing", lambda B: load_compressed(B.dir / "nope.npz"), FileNotFoundError, r"pass the file save_compressed"),
    ("load-path-int", lambda B: load_compressed(5), TypeError, r"pass a str or pathlib.Path"),
    ("load-junk", lambda B: load_compressed(B.text), CompressedFileError, r"write one with save_compressed"),
    ("load-format", lambda B: load_compressed(variant(B, "quant", _meta(lambda m: m.update(format="other/9")))),
     CompressedFileError, r"save the model again with"),
    ("load-metadata-no-arrays", lambda B: load_compressed(variant(B, "quant", _no_arrays)), CompressedFileError,
     r"would load random weights.*save the model again"),
    ("load-architecture-changed", lambda B: load_compressed(variant(B, "lowrank", _meta(
        lambda m: m["model"].update(hidden=[32, 48])))), CompressedFileError, r"architecture changed.*save the model"),
    ("load-unbuildable-model", lambda B: load_compressed(variant(B, "quant", _meta(
        lambda m: m["model"].update(name="transformer")))), CompressedFileError, r"cannot build.*save the model"),
    ("load-missing-array", lambda B: load_compressed(variant(B, "lowrank", _set("hidden.1.weight.b", None))),
     CompressedFileError, r"'hidden\.1\.weight\.b' is missing.*save the model again"),
    ("load-short-array", lambda B: load_compressed(variant(B, "prune", _set("hidden.0.weight.data", lambda a: a[:-3]))),
     CompressedFileError, r"has shape .* expected .*save the model again"),
    ("load-csr-index-out-of-range", lambda B: load_compressed(variant(B, "prune", _csr_out_of_range)),
     CompressedFileError, r"broken CSR index.*save the model again"),
    ("load-transposed-factor", lambda B: load_compressed(variant(B, "lowrank", _set("hidden.0.weight.a",
                                                                                   lambda a: a.T.copy()))),
     CompressedFileError, r"transposed, or another layer's.*save the model again"),
    ("load-nan-factor", lambda B: load_compressed(variant(B, "lowrank", _set("hidden.0.weight.b",
                                                                            lambda a: a * np.nan))),
     CompressedFileError, r"NaN.*save the model again"),
    ("load-nan-bias", lambda B: load_compressed(variant(B, "quant", _set("out.bias", lambda a: np.full_like(a, np.inf)))),
     CompressedFileError, r"inf values.*save the model again"),
    ("load-float64", lambda B: load_compressed(variant(B, "hashed", _set("hidden.0.weight.values",
                                                                        lambda a: a.astype(np.float64)))),
     CompressedFileError, r"dtype float64, expected float32.*save the model again"),
    ("load-extra-array", lambda B: load_compressed(variant(B, "quant", _set("hidden.0.weight.extra", np.ones(3)))),
     CompressedFileError, r"does not use.*save the model again"),
    ("load-unknown-method", lambda B: load_compressed(variant(B, "quant", _meta(
        lambda m: m["layers"]["out"].update(method="zip")))), CompressedFileError, r"unknown method 'zip'.*save the"),
    ("load-kmeans-codes", lambda B: load_compressed(variant(B, "kmeans", _kmeans_codes_too_big)), CompressedFileError,
     r"cluster codes ≥ its 5 shared values.*save the model again"),
    ("load-zero-scale", lambda B: load_compressed(variant(B, "quant", _set("out.weight.w.scale", lambda a: a * 0))),
     CompressedFileError, r"scales ≤ 0.*save the model again"),
    ("load-layer-renamed", lambda B: load_compressed(variant(B, "quant", _meta(
        lambda m: m["layers"].update({"gone": m["layers"]["out"]})))), CompressedFileError,
     r"'gone' does not exist.*architecture changed"),
    ("load-bad-quant-bits", lambda B: load_compressed(variant(B, "quant", _meta(
        lambda m: m["layers"]["out"].update(quant_bits=99)))), CompressedFileError, r"expected None or 2…16"),
]


@pytest.mark.parametrize("call, exc, fix", [pytest.param(f, e, fx, id=i) for i, f, e, fx in CASES])
def test_bad_input_gets_a_clear_error_naming_the_fix(B, monkeypatch, call, exc, fix):
    with pytest.raises(exc) as info:
        call(monkeypatch, B) if call.__code__.co_argcount == 2 else call(B)
    msg = str(info.value)
    assert re.search(fix, msg, re.S), f"the message does not name the fix /{fix}/:\n{msg}"
    assert raised_in_thinlab(info.value), "".join(traceback.format_exception(info.value))


def test_the_table_is_big_enough_and_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) + len(CLI_CASES) >= 150


# ------------------------------------------------------------------------------ the CLI (finding 10)

CLI_CASES = [
    ("cli-unknown-which", ["download", "v3"], r"invalid choice: 'v3'.*see `python -m thinlab\.data download --help`"),
    ("cli-url-notaurl", ["download", "test-v2", "--url", "notaurl", "--no-progress"],
     r"not an http\(s\) URL; pass the base URL"),
    ("cli-words-unknown", ["download", "test-v2", "--words", "maybe", "--no-progress"], r"use some of yes, no"),
    ("cli-describe-missing", ["describe", "{dir}/nope"], r"does not exist.*Fix the path"),
    ("cli-describe-loop", ["describe", "{loop}"], r"remove it or point it at a real folder"),
    ("cli-describe-words-task", ["describe", "{loop}", "--task", "20words"], r"invalid choice.*--help"),
    ("cli-synth-speakers-str", ["synth", "--speakers", "abc"], r"invalid int value: 'abc'.*--help"),
    ("cli-synth-speakers-2", ["synth", "--speakers", "2", "--dest", "{dir}/s"], r"at least 3"),
    ("cli-unknown-command", ["frobnicate"], r"invalid choice: 'frobnicate'.*--help"),
    ("cli-no-command", [], r"required: cmd.*--help"),
]


@pytest.mark.parametrize("argv, fix", [pytest.param(a, f, id=i) for i, a, f in CLI_CASES])
def test_cli_user_error_is_one_line_and_exit_2(B, tmp_cache, capsys, argv, fix):
    argv = [a.format(dir=B.dir, loop=B.loop) for a in argv]
    assert main(argv) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    assert re.search(fix, lines[0]), lines[0]


def test_cli_cache_that_is_a_file(B, monkeypatch, capsys):
    monkeypatch.setenv("THINLAB_CACHE", str(B.a_file))
    assert main(["download", "test-v2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "set THINLAB_CACHE to a folder" in err


@pytest.mark.parametrize("argv", [["download", "test-v2", "--url", "notaurl"], ["describe", "{loop}"]])
def test_cli_in_a_real_process_prints_no_traceback(B, tmp_cache, argv):
    """The issue's two examples, as a user runs them: one line on stderr, exit 2, no traceback."""
    import subprocess
    import sys

    argv = [a.format(loop=B.loop) for a in argv]
    env = dict(os.environ, THINLAB_CACHE=str(tmp_cache), PYTHONPATH=str(THINLAB_DIR.parent))
    proc = subprocess.run([sys.executable, "-m", "thinlab.data", *argv], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: ")


# -------------------------------------------------------- findings with a correct result instead of an error

def test_anti_phase_stereo_warns(tmp_path):
    from thinlab.data._io import AudioWarning

    y = tone(440, 1.0)
    p = write_wav(tmp_path / "anti.wav", np.stack([y, -y], axis=1), subtype="FLOAT")
    with pytest.warns(AudioWarning, match=r"cancel out.*keep one channel"):
        out = load_audio(p)
    assert np.abs(out).max() < 1e-6  # the average really is silence: the warning is what tells the user


def test_gain_window_stays_in_range(tmp_path):
    """Finding 7: a window's gain never takes a clip outside [-1, 1] and the length is exact."""
    p = write_wav(tmp_path / "n.wav", np.full(3 * SR, 0.9, np.float32), subtype="FLOAT")
    out = load_audio(f"{p}#start={SR}&gain=1.0", seconds=0.5)
    assert out.shape == (SR // 2,) and out.dtype == np.float32 and np.abs(out).max() <= 1.0


# ------------------------------------------------------------ no code from any file read back (finding 2)

class _Payload:
    """Unpickling this touches a file: proof that code ran."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (Path.touch, (Path(self.sentinel),))


def test_every_read_back_is_code_free():
    """Static guard: torch.load only with weights_only=True, np.load only with allow_pickle=False, and no
    pickle / joblib / marshal loads anywhere in thinlab."""
    import ast

    bad = []
    for path in sorted(THINLAB_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = ast.unparse(node.func.value)
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
            where = f"{path.relative_to(THINLAB_DIR.parent)}:{node.lineno}"
            if node.func.attr == "load" and owner == "torch" and kw.get("weights_only") != "True":
                bad.append(f"{where}: torch.load without weights_only=True")
            if node.func.attr == "load" and owner in ("np", "numpy") and kw.get("allow_pickle") != "False":
                bad.append(f"{where}: np.load without allow_pickle=False")
            if node.func.attr in ("load", "loads") and owner in ("pickle", "joblib", "marshal", "dill", "cloudpickle"):
                bad.append(f"{where}: {owner}.{node.func.attr}")
    assert not bad, bad


def test_a_crafted_feature_cache_runs_no_code(tmp_path, tmp_cache):
    from thinlab.data import FeatureCacheWarning

    root = make_folder(tmp_path / "d", n_speakers=6)
    kw = dict(words=["yes", "no"], progress=False, verbose=False)
    first = load_dataset(root, **kw)
    (path,) = sorted((tmp_cache / "features").glob("*.npz"))
    sentinel = tmp_path / "code-ran"
    with open(path, "wb") as f:
        np.savez(f, X=np.array([_Payload(sentinel)], dtype=object), key=np.frombuffer(b"{}", np.uint8))
    with pytest.warns(FeatureCacheWarning, match="corrupt .*recomputing"):
        again = load_dataset(root, **kw)
    assert not sentinel.exists() and np.array_equal(again.X_train, first.X_train)


def test_a_crafted_compressed_file_runs_no_code(B, tmp_path):
    sentinel = tmp_path / "code-ran"
    path = tmp_path / "evil.npz"
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.array([_Payload(sentinel)], dtype=object))
    with pytest.raises(CompressedFileError, match="write one with save_compressed"):
        load_compressed(path)
    assert not sentinel.exists()
