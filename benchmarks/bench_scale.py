"""Scale: a set the size of the full 10-word Speech Commands v0.02 (38,546 clips), end to end on this machine.

The set is spoken by the offline synthesizer (:func:`thinlab.data.synthesize`, espeak-ng): 3,855
synthetic speakers × the ten words = 38,550 one-second clips in the real layout
(``<word>/<speaker>_nohash_0.wav``, ``_background_noise_/``), plus ``validation_list.txt`` /
``testing_list.txt`` at the root written by the rule that made the real lists (TensorFlow's
``which_set``), so loading goes through the official-lists path a real v0.02 folder takes. A
quarter-size set (964 speakers, 9,640 clips) shows how memory grows with the set. Both sets
and their features stay in the cache (``<cache>/scale-bench/``, about 2 GB), so only the first
run builds them; it prints how long that took.

Each phase runs in a child process, whose peak RSS (``ru_maxrss``: resident memory, including
the touched pages of memory-mapped feature files) is reported, so no figure includes this process:

  scale_featurize_clips_per_s   clips/s of a fresh featurization of the quarter set into a scratch
                                cache (parallel, chunked, float16; scan + plan + key included);
                                target ≥ 500 on 2 cores (a chunked run's rate does not depend on size)
  scale_featurize_peak_rss_mb   that run: the parent's peak + each worker's peak (an upper bound:
                                pages the processes share are counted in each)
  scale_featurize_peak_pss_mb   that run's process tree sampled every 50 ms: the largest total
                                proportional set size (shared pages split among their processes)
  scale_load_s                  load_dataset of the full set from the cache (scan, file stats,
                                every chunk's sha256 checked, memory maps opened)
  scale_load_peak_rss_mb        load_dataset + one streaming statistics pass over the training
                                split + the test split read into memory, as evaluate does
  scale_epoch_s_{cnn,dnn,lstm}  one training epoch (batch 64, CPU) over the full training split,
                                mini-batches gathered from the memory map; target CNN ≤ 60 s
  scale_epoch_peak_rss_mb       the largest peak of the three epoch processes (load included)
  scale_peak_rss_mb             the largest of every full-size phase; target ≤ 1536 MB
  scale_q_load_peak_rss_mb, scale_q_epoch_peak_rss_mb    the same at a quarter of the size
  scale_f16_agreement           with ../shared/speech_commands_sample present: share of real clips on
                                which a trained DNN predicts the same word from float16-rounded
                                features as from float32 ones
  scale_f16_acc_delta_{cnn,dnn} test accuracy (val + test of the real sample) of models trained on
                                float16 features minus the same seeds trained on float32, mean over
                                seeds (within noise: compare with scale_f16_acc_delta_se_*)

Run: ``python -m benchmarks scale``; the first build alone (resumable: a finished set or chunk is
kept): ``python -m benchmarks.bench_scale build``.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_SPEAKERS, QUARTER_SPEAKERS = 3855, 964
MODELS = ("cnn", "dnn", "lstm")
SAMPLE = ROOT.parent / "shared" / "speech_commands_sample"
F16_SEEDS = {"dnn": (0, 1, 2), "cnn": (0, 1)}  # training seeds of the float32 / float16 comparison
TARGETS = {"scale_featurize_clips_per_s": (">=", 500.0), "scale_peak_rss_mb": ("<=", 1536.0),
           "scale_epoch_s_cnn": ("<=", 60.0)}


def _peak_mb(who=resource.RUSAGE_SELF) -> float:
    """Peak resident memory (MB) of this process (RUSAGE_SELF) or of its largest finished child.

    This process's own peak is read from /proc/self/status (VmHWM) where there is one: Linux carries
    ``ru_maxrss`` over ``exec``, so a phase started from a large process (``make bench`` runs every
    benchmark in one) would report its parent's peak instead of its own (measured: 727 MB for a
    fresh Python started from a 727 MB parent, whose VmHWM was 13.5 MB).
    """
    if who == resource.RUSAGE_SELF and "VmHWM" in (status := _status_mb("VmHWM")):
        return status["VmHWM"]
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _status_mb(*fields: str) -> dict:
    """The named memory fields of /proc/self/status, in MB (none where there is no /proc)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    return {ln.split(":")[0]: int(ln.split()[1]) / 1024 for ln in lines if ln.split(":")[0] in fields}


def _rss_parts() -> dict:
    """This process's resident memory now, split: anonymous (its own) and file-backed (shared libraries
    and the touched pages of memory-mapped features, which the kernel may drop at any time)."""
    return _status_mb("RssAnon", "RssFile")


def scale_dir() -> Path:
    from thinlab._io import cache_root

    return cache_root() / "scale-bench"


def _write_lists(root: Path) -> None:
    """validation_list.txt / testing_list.txt from which_set, as the real lists were made."""
    from thinlab._io import atomic_file
    from thinlab.data.splits import which_set

    if (root / "validation_list.txt").exists() and (root / "testing_list.txt").exists():
        return
    lists = {"validation": [], "testing": []}
    for word in sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        for wav in sorted((root / word).glob("*.wav")):
            split = which_set(f"{word}/{wav.name}")
            if split in lists:
                lists[split].append(f"{word}/{wav.name}")
    for split, names in lists.items():
        with atomic_file(root / f"{split}_list.txt", "w") as f:
            f.write("\n".join(names) + "\n")


def build_set(name: str, n_speakers: int) -> tuple:
    """The synthesized set ``name`` (built once); returns (folder, seconds spent building now)."""
    from thinlab.data import WORDS10, synthesize

    dest = scale_dir() / name
    t0 = time.perf_counter()
    synthesize(dest, n_speakers=n_speakers, words=WORDS10, seed=0, progress=True, verbose=True)
    _write_lists(dest)
    return dest, time.perf_counter() - t0


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` and its descendants (MB): shared pages split between the processes
    that map them, so forked workers are not charged again for what they share with their parent."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # a process that just ended
    return total


# ---------------------------------------------------------------- phases (each in a child process)

def _phase_featurize(root: str, storage: str = "memmap") -> dict:
    import threading

    from thinlab.data import load_dataset

    peak, stop = [0.0], threading.Event()

    def sample():  # the whole process tree's memory, 20 times a second
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_pss_mb(os.getpid()))
            stop.wait(0.05)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    ds = load_dataset(root, storage=storage, progress=True, verbose=False)
    seconds = time.perf_counter() - t0
    stop.set()
    watcher.join()
    n = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    from thinlab.train import available_cpus

    return {"clips": n, "seconds": seconds, "status": ds.cache_status, "workers": available_cpus(),
            "workers_peak_rss_mb": _peak_mb(resource.RUSAGE_CHILDREN), "tree_peak_pss_mb": peak[0]}


def _phase_load(root: str) -> dict:
    import numpy as np

    from thinlab.data import load_dataset
    from thinlab.train import feature_stats

    t0 = time.perf_counter()
    ds = load_dataset(root, storage="memmap", progress=False, verbose=False)
    t_load = time.perf_counter() - t0
    rss_load = _peak_mb()
    t0 = time.perf_counter()
    feature_stats(ds.X_train)
    t_stats = time.perf_counter() - t0
    X_test = np.asarray(ds.X_test)
    return {"seconds": t_load, "stats_seconds": t_stats, "rss_after_load_mb": rss_load, "status": ds.cache_status,
            "rule": ds.split_rule, "counts": [len(ds.y_train), len(ds.y_val), len(X_test)],
            "type": type(ds.X_train).__name__, "now": _rss_parts()}


def _best_threads(net, ds, candidates) -> tuple:
    """The thread count whose 8 training steps (on a throwaway copy of ``net``) are fastest: on a machine
    busy with other work one thread can beat two by a wide margin (see ``train.use_threads``)."""
    import copy

    import torch

    from thinlab import train

    times = {}
    for th in candidates:
        train.use_threads(th)
        m = copy.deepcopy(net)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        xb = torch.from_numpy(ds.X_train.gather(range(64)) if hasattr(ds.X_train, "gather") else ds.X_train[:64])
        yb = torch.as_tensor(ds.y_train[:64])
        for step in range(10):
            if step == 2:
                t0 = time.perf_counter()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(xb), yb).backward()
            opt.step()
        times[th] = (time.perf_counter() - t0) / 8
    best = min(times, key=times.get)
    train.use_threads(best)
    return best, times


def _phase_epoch(root: str, model: str) -> dict:
    from thinlab import models, train
    from thinlab.data import load_dataset

    ds = load_dataset(root, storage="memmap", progress=False, verbose=False)
    train.seed_everything(0)
    net = models.build_model(model, len(ds.labels))
    threads, step_s = _best_threads(net, ds, sorted({train.available_cpus(), 1}, reverse=True))
    hist = train.fit(net, ds.X_train, ds.y_train, epochs=1, batch_size=64, progress=False, device="cpu")
    return {"seconds": hist.seconds, "clips": len(ds.y_train), "threads": threads, "train_acc": hist.train_acc[0],
            "step_ms": {str(k): round(1000 * v, 1) for k, v in step_s.items()}, "now": _rss_parts()}


def _phase_f16(root: str) -> dict:
    """float32 vs float16-rounded features of the real sample: same-model agreement, and accuracy."""
    import numpy as np
    import torch

    from thinlab import models, train
    from thinlab.data import load_dataset

    train.use_threads(1)  # small models and a small set: one thread is never much slower, and robust to load
    ds = load_dataset(root, storage="memory", progress=False, verbose=False)

    def f16(X):
        return np.asarray(X).astype(np.float16).astype(np.float32)

    X_eval = np.concatenate([ds.X_val, ds.X_test])
    y_eval = np.concatenate([ds.y_val, ds.y_test])
    out = {"n_train": len(ds.y_train), "n_eval": len(y_eval)}
    for name, seeds in F16_SEEDS.items():
        deltas = []
        for seed in seeds:
            acc = {}
            for kind, X_tr, X_ev in (("f32", ds.X_train, X_eval), ("f16", f16(ds.X_train), f16(X_eval))):
                train.seed_everything(seed)
                net = models.build_model(name, len(ds.labels))
                train.fit(net, X_tr, ds.y_train, epochs=20, seed=seed, progress=False, device="cpu")
                acc[kind] = train.evaluate(net, X_ev, y_eval)["accuracy"]
                if kind == "f32" and name == "dnn" and seed == seeds[0]:
                    X_all = np.concatenate([ds.X_train, X_eval])
                    net.eval()
                    with torch.no_grad():
                        a = net(torch.from_numpy(X_all)).argmax(1)
                        b = net(torch.from_numpy(f16(X_all))).argmax(1)
                    out["agreement"] = float((a == b).float().mean())
            deltas.append(acc["f16"] - acc["f32"])
            print(f"  {name} seed {seed}: float32 {acc['f32']:.3f}, float16 {acc['f16']:.3f}", flush=True)
            out.setdefault(f"acc_f32_{name}", []).append(acc["f32"])
        out[f"delta_{name}"] = float(np.mean(deltas))
        out[f"delta_se_{name}"] = float(np.std(deltas, ddof=1) / np.sqrt(len(deltas)))
    return out


PHASES = {"featurize": _phase_featurize, "load": _phase_load, "epoch": _phase_epoch, "f16": _phase_f16}


def _child(phase: str, cache: Path | None = None, **kw) -> dict:
    """Run ``phase`` in a fresh Python; its stdout's last ``RESULT`` line is the answer."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if cache is not None:
        env["THINLAB_CACHE"] = str(cache)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", phase, json.dumps(kw)], cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.splitlines()
    result = [ln for ln in lines if ln.startswith("RESULT ")]
    for ln in lines:
        if not ln.startswith("RESULT "):
            print(ln)
    if proc.returncode != 0 or not result:
        raise RuntimeError(f"scale phase {phase} {kw} failed (exit {proc.returncode})")
    return json.loads(result[-1][len("RESULT "):])


def build() -> dict:
    """Synthesize both sets and featurize them into the cache (each step kept once finished)."""
    need = 2.6e9
    scale_dir().mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(scale_dir()).free
    t0 = time.perf_counter()
    full, t_full = build_set("full", FULL_SPEAKERS)
    quarter, t_quarter = build_set("quarter", QUARTER_SPEAKERS)
    if t_full + t_quarter > 5 and free < need:
        print(f"warning: {free / 1e9:.1f} GB were free under {scale_dir()}; the scale sets take about 2 GB")
    feats = {name: _child("featurize", root=str(path)) for name, path in (("full", full), ("quarter", quarter))}
    seconds = time.perf_counter() - t0
    built = t_full + t_quarter > 5 or any(f["status"] != "cache" for f in feats.values())
    if built:
        f = feats["full"]
        print(f"first build of the scale sets: {seconds:.0f} s (synthesis {t_full:.0f} s + {t_quarter:.0f} s; "
              f"full-set features {f['seconds']:.0f} s, {f['clips'] / f['seconds']:.0f} clips/s, {f['status']})")
    else:
        print(f"scale sets and features reused from {scale_dir()} ({seconds:.1f} s to check them)")
    return {"full": full, "quarter": quarter, "build_seconds": seconds, "built": built}


def _parts(r: dict) -> str:
    return f"{r['now'].get('RssAnon', 0):.0f} MB anonymous + {r['now'].get('RssFile', 0):.0f} MB file pages"


def run() -> dict[str, float]:
    sets = build()
    full, quarter = sets["full"], sets["quarter"]
    out: dict[str, float] = {}

    scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=scale_dir()))
    try:
        f = _child("featurize", cache=scratch, root=str(quarter))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out["scale_featurize_clips_per_s"] = f["clips"] / f["seconds"]
    out["scale_featurize_peak_rss_mb"] = f["peak_rss_mb"] + f["workers"] * f["workers_peak_rss_mb"]
    out["scale_featurize_peak_pss_mb"] = f["tree_peak_pss_mb"]
    print(f"featurize {f['clips']:,} clips (fresh cache, {f['workers']} worker processes): {f['seconds']:.1f} s = "
          f"{out['scale_featurize_clips_per_s']:.0f} clips/s; peak RSS {f['peak_rss_mb']:.0f} MB + "
          f"{f['workers']} × {f['workers_peak_rss_mb']:.0f} MB (upper bound: shared pages counted in each); "
          f"sampled peak of the process tree's PSS {f['tree_peak_pss_mb']:.0f} MB")

    for tag, root in (("", full), ("q_", quarter)):
        ld = _child("load", root=str(root))
        out[f"scale_{tag}load_peak_rss_mb"] = ld["peak_rss_mb"]
        if not tag:
            out["scale_load_s"] = ld["seconds"]
        print(f"load {'full' if not tag else 'quarter'}: {ld['counts']} train/val/test clips ({ld['type']}, "
              f"{ld['status']}) in {ld['seconds']:.1f} s, streaming statistics {ld['stats_seconds']:.1f} s; "
              f"peak RSS {ld['peak_rss_mb']:.0f} MB ({ld['rss_after_load_mb']:.0f} MB after load_dataset; at the end "
              f"{_parts(ld)})\n"
              f"  split: {ld['rule']}")
        peaks = []
        for m in MODELS:
            ep = _child("epoch", root=str(root), model=m)
            peaks.append(ep["peak_rss_mb"])
            out[f"scale_{tag}epoch_s_{m}"] = ep["seconds"]
            print(f"  one {m} epoch over {ep['clips']:,} clips: {ep['seconds']:.1f} s on {ep['threads']} thread(s) "
                  f"(ms per step by threads: {ep['step_ms']}), peak RSS {ep['peak_rss_mb']:.0f} MB (at the end "
                  f"{_parts(ep)})")
        out[f"scale_{tag}epoch_peak_rss_mb"] = max(peaks)
    out["scale_peak_rss_mb"] = max(out["scale_featurize_peak_rss_mb"], out["scale_load_peak_rss_mb"],
                                   out["scale_epoch_peak_rss_mb"])

    if SAMPLE.is_dir():
        r = _child("f16", root=str(SAMPLE))
        out["scale_f16_agreement"] = r["agreement"]
        for name in ("dnn", "cnn"):
            out[f"scale_f16_acc_delta_{name}"] = r[f"delta_{name}"]
            out[f"scale_f16_acc_delta_se_{name}"] = r[f"delta_se_{name}"]
        print(f"float16 features on the real sample ({r['n_train']} training, {r['n_eval']} val+test clips): the same "
              f"DNN agrees on {100 * r['agreement']:.1f}% of clips; accuracy float16 − float32 (seeds "
              f"{F16_SEEDS}): DNN {100 * r['delta_dnn']:+.1f} ± {100 * r['delta_se_dnn']:.1f} points, CNN "
              f"{100 * r['delta_cnn']:+.1f} ± {100 * r['delta_se_cnn']:.1f} (float32 accuracies DNN "
              f"{[round(a, 3) for a in r['acc_f32_dnn']]}, CNN {[round(a, 3) for a in r['acc_f32_cnn']]})")
    else:
        print(f"(no {SAMPLE}: the float16 accuracy check is skipped)")

    for key, (op, target) in TARGETS.items():
        ok = out[key] >= target if op == ">=" else out[key] <= target
        print(f"target {key} {op} {target:g}: {out[key]:.1f} {'met' if ok else 'MISSED'}")
    return out


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] in PHASES:
        res = PHASES[sys.argv[1]](**json.loads(sys.argv[2]))
        res["peak_rss_mb"] = _peak_mb()
        print("RESULT " + json.dumps(res), flush=True)
    elif sys.argv[1:] == ["build"]:
        build()
    else:
        print(json.dumps(run(), indent=1))
