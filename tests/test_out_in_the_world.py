"""A fresh clone anywhere: the in-repo real fixture, shared-sample tests that skip (or fail under CI),
torch from the right index, devices, and DATA="auto" downloading real speech or falling back loudly."""
from __future__ import annotations

import hashlib
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import RangeServer, speech_archive

from thinlab import data, models, train
from thinlab.data import downloader, source as source_mod

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import install_torch  # noqa: E402


# ---------------------------------------------------------------- the in-repo fixture

def test_fixture_is_small_real_and_attributed(real_fixture):
    wavs = list(real_fixture.rglob("*.wav"))
    size = sum(p.stat().st_size for p in real_fixture.rglob("*") if p.is_file())
    assert len(wavs) <= 120 and size <= 4 * 2 ** 20, (len(wavs), size)
    assert "Attribution 4.0 International" in (real_fixture / "LICENSE").read_text()
    readme = (real_fixture / "README.md").read_text()
    assert "Pete Warden" in readme and "arXiv:1804.03209" in readme and "CC BY 4.0" in readme
    folder = data.scan(real_fixture)
    assert sorted({c.folder for c in folder.clips}) == sorted(list(data.WORDS10) + ["_unknown_"])
    assert len({c.speaker for c in folder.clips if c.folder == "yes"}) == 10 and folder.background
    ds = data.load_dataset(real_fixture, task="12class", progress=False, verbose=False)
    assert ds.speaker_disjoint and set(ds.y_test) == set(range(12))   # every class in every split
    assert data.fixture_dir() == real_fixture


def _pytest(env_extra: dict, test_id: str):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test_id],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci", ["", "true"])
def test_shared_sample_missing_skips_locally_and_fails_in_ci(ci, tmp_path):
    test_id = "tests/test_data_splits.py::test_reader_counts_match_the_disk"
    run = _pytest({"THINLAB_SHARED_SAMPLE": str(tmp_path / "nowhere"), **({"CI": ci} if ci else {})}, test_id)
    out = run.stdout + run.stderr
    assert "the real Speech Commands sample is not at" in out and "make data" in out
    if ci:
        assert run.returncode != 0 and "CI=true but" in out and "1 error" in out
    else:
        assert run.returncode == 0 and "1 skipped" in out


# ---------------------------------------------------------------- torch for this machine

def test_install_torch_takes_the_cpu_index_without_a_gpu_and_falls_back_at_once():
    req = install_torch.torch_requirement()
    assert req.startswith("torch==") and f'"{req}"' in (REPO / "pyproject.toml").read_text()
    first, fallback = install_torch.plan(req, gpu=False)
    assert first[first.index("--index-url") + 1] == install_torch.CPU_INDEX
    assert first[first.index("--retries") + 1] == "0" and int(first[first.index("--timeout") + 1]) <= 10
    assert fallback[-1] == req and "--index-url" not in fallback            # then the default index
    assert install_torch.plan(req, gpu=True) == [fallback]                  # a GPU: the default (CUDA) wheel
    assert install_torch.plan(req, gpu=False, choice="default") == [fallback]
    custom = install_torch.plan(req, gpu=True, choice="http://mirror.invalid/simple")
    assert custom[0][custom[0].index("--index-url") + 1] == "http://mirror.invalid/simple"


def test_install_torch_dry_run_says_what_it_would_do():
    env = dict(os.environ, THINLAB_FAKE_GPU="0")
    out = subprocess.run([sys.executable, str(REPO / "tools" / "install_torch.py"), "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=60).stdout
    assert "no NVIDIA GPU here -> PyTorch's CPU index, else the default index" in out
    assert "--index-url https://download.pytorch.org/whl/cpu" in out
    env["THINLAB_FAKE_GPU"] = "1"
    out = subprocess.run([sys.executable, str(REPO / "tools" / "install_torch.py"), "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=60).stdout
    assert "an NVIDIA GPU here -> the default index (CUDA build)" in out and "--index-url" not in out


def test_environment_and_binder_take_the_cpu_wheel():
    for f in ("environment.yml", "binder/requirements.txt"):
        text = (REPO / f).read_text()
        assert install_torch.CPU_INDEX in text and install_torch.torch_requirement() in text, f


# ---------------------------------------------------------------- devices

def test_resolve_device_auto_and_clear_errors():
    assert train.resolve_device("auto").type == train.available_devices()[0].split(":")[0]
    assert train.resolve_device("cpu") == torch.device("cpu") == train.resolve_device(torch.device("cpu"))
    assert train.available_devices()[-1] == "cpu"
    missing = [d for d in ("cuda", "mps") if not any(a.startswith(d) for a in train.available_devices())]
    for name in missing + ["cuda:7"] * (torch.cuda.device_count() < 8):
        with pytest.raises(train.DeviceError, match=r"not available on this machine; devices here: \[.*'cpu'\]"):
            train.resolve_device(name)
    with pytest.raises(train.DeviceError, match="is not a device name"):
        train.resolve_device("tpu")
    with pytest.raises(train.DeviceError, match="expected 'auto', 'cpu'"):
        train.resolve_device(3)
    assert train.describe_device("cpu").startswith("device: cpu")


def _tiny_ds(n=48, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.normal(size=(n, 6, 5)).astype(np.float32) + y[:, None, None].astype(np.float32)

    class DS:
        labels = [str(i) for i in range(classes)]
        X_train, y_train, X_val, y_val, X_test, y_test = X, y, X[:12], y[:12], X[12:24], y[12:24]
    return DS


def test_baseline_is_reproducible_whatever_the_global_random_state(tmp_cache):
    ds = _tiny_ds()
    weights = []
    for outer in (1, 2):
        torch.manual_seed(outer)
        np.random.seed(outer)
        m, _ = train.baseline("dnn", ds, epochs=1, seed=0, cache=False, verbose=False, progress=False,
                              model_kwargs={"hidden": (16, 16)})
        weights.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.equal(weights[0], weights[1])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")   # torch.load on the crafted file below
def test_cached_baseline_is_read_without_running_code(tmp_cache, tmp_path):
    ds = _tiny_ds()
    kw = dict(epochs=1, seed=0, verbose=False, progress=False, model_kwargs={"hidden": (16, 16)})
    m, info = train.baseline("dnn", ds, **kw)
    assert not info["cached"] and info["device"] == "cpu"
    (path,) = (tmp_cache / "baselines").glob("dnn-*.pt")
    again, info2 = train.baseline("dnn", ds, device="cpu", **kw)
    assert info2["cached"] and all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                                      again.state_dict().values()))
    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (flag,))
    path.write_bytes(pickle.dumps({"key": Evil()}))                         # a crafted cache file
    _, info3 = train.baseline("dnn", ds, **kw)
    assert not flag.exists() and not info3["cached"]                         # rejected, retrained, no code ran


def test_fit_and_evaluate_take_a_device():
    ds = _tiny_ds()
    m = models.build_model("dnn", 3, n_frames=6, n_mels=5, hidden=(8,))
    h = train.fit(m, ds.X_train, ds.y_train, epochs=1, progress=False, device="cpu")
    assert len(h.train_loss) == 1 and train.model_device(m).type == "cpu"
    assert train.evaluate(m, ds.X_test, ds.y_test, device="cpu")["n"] == 12
    with pytest.raises(train.DeviceError):
        train.fit(m, ds.X_train, ds.y_train, epochs=1, progress=False, device="cuda:99")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (runs where torch.cuda.is_available())")
def test_cuda_training_and_a_cached_baseline_on_both_devices(tmp_cache):
    from thinlab import train
    from thinlab.nn import compress

    ds = _tiny_ds()
    kw = dict(epochs=2, seed=0, verbose=False, progress=False, model_kwargs={"hidden": (16, 16)})
    gpu, info = train.baseline("dnn", ds, device="cuda", **kw)
    assert train.model_device(gpu).type == "cuda" and info["device"].startswith("cuda")
    cpu, info2 = train.baseline("dnn", ds, device="cpu", **kw)
    assert info2["cached"] and train.model_device(cpu).type == "cpu"
    np.testing.assert_array_equal(train.predict(gpu, ds.X_test), train.predict(cpu, ds.X_test))
    pruned = compress(gpu, method="prune", size_fraction=0.5)               # transforms keep the device
    assert train.model_device(pruned).type == "cuda"
    train.finetune(pruned, ds.X_train, ds.y_train, epochs=1, progress=False)
    assert 0 <= train.evaluate(pruned, ds.X_test, ds.y_test)["accuracy"] <= 1


# ---------------------------------------------------------------- DATA="auto"

NAME = downloader.ARCHIVES["test-v2"].filename


@pytest.fixture()
def fake_light_tier(monkeypatch):
    """The light real tier served from 127.0.0.1, with the spec's size and sha256 of the tiny archive."""
    blob = speech_archive()
    spec = downloader.Archive("test-v2", NAME, len(blob), hashlib.sha256(blob).hexdigest(), ("yes", "no", "up"),
                              ("_background_noise_",))
    monkeypatch.setitem(downloader.ARCHIVES, "test-v2", spec)
    with RangeServer() as srv:
        srv.files[NAME] = blob
        monkeypatch.setenv("THINLAB_DOWNLOAD_URL", srv.url)
        yield srv


SMALL_SYNTH = {"n_speakers": 4, "words": ["yes", "no"], "background_seconds": 3.0}


def test_auto_downloads_the_light_real_tier_when_allowed(fake_light_tier, tmp_cache):
    src = data.resolve_source("auto", download=True, progress=False, verbose=False)
    assert src.kind == "test-v2" and src.is_real and src.path == tmp_cache / "speech_commands" / "test-v2"
    assert [r[0] for r in fake_light_tier.log] == [NAME]
    again = data.resolve_source("auto", download=True, progress=False, verbose=False)
    assert again.path == src.path and len(fake_light_tier.log) == 1          # cached: no second request


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("why", ["unreachable", "not allowed", "server error"])
def test_auto_falls_back_to_synthetic_with_a_banner(why, fake_light_tier, tmp_cache, monkeypatch, capsys):
    if why == "unreachable":
        monkeypatch.setenv("THINLAB_DOWNLOAD_URL", f"http://127.0.0.1:{_closed_port()}/")
    if why == "server error":
        fake_light_tier.files.clear()                                        # 404 for the archive
    src = data.resolve_source("auto", download=why != "not allowed", synth_kwargs=SMALL_SYNTH, progress=False,
                              verbose=False)
    assert src.kind == "synthetic" and not src.is_real
    msg = src.message
    assert "!! NO REAL SPEECH:" in msg and "make data" in msg and "THINLAB_DATA" in msg
    expected = {"unreachable": "cannot be reached", "not allowed": "DOWNLOAD=False",
                "server error": "HTTP 404"}[why]
    assert expected in msg, msg


def test_auto_probe_gives_up_quickly_on_a_silent_host():
    with socket.socket() as listener:                     # loopback only: a listener whose backlog is full
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        pending = []
        for _ in range(4):                                 # queue connections nobody accepts
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            pending.append(c)
        try:
            why = source_mod.host_answers(f"http://127.0.0.1:{port}/x", timeout=0.3)
        finally:
            for c in pending:
                c.close()
    assert "did not answer within 0.3 s" in why
    assert "not an http(s) URL" in source_mod.host_answers("ftp://example.org/a")


def test_thinlab_data_beats_download(fake_light_tier, tmp_cache, monkeypatch, real_fixture):
    monkeypatch.setenv("THINLAB_DATA", str(real_fixture))
    src = data.resolve_source("auto", download=True, progress=False, verbose=False)
    assert src.path == real_fixture and fake_light_tier.log == []
