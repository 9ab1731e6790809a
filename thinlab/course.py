"""The course as data (lesson → notebook → modules → test) and a headless runner.

``python -m thinlab.course run [--fast 1] [--data auto|synthetic|PATH] [--only 00,01]`` executes every
lesson with papermill into ``build/lessons/`` (executed copies are build artefacts; the notebooks in
``lessons/`` stay without outputs), then prints each lesson's time, peak memory and headline numbers.
``--fast 1`` injects each lesson's CI-size parameters (``FAST_PARAMS``).
``release OUT``, ``grade SUBMISSIONS --out gradebook.csv`` and ``site``: the classroom tools
(:mod:`thinlab.classroom`).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from thinlab._io import atomic_file

REPO = Path(__file__).resolve().parents[1]
LESSON_DIR = REPO / "lessons"
BUILD_DIR = REPO / "build" / "lessons"


@dataclass(frozen=True)
class Lesson:
    key: str
    notebook: str
    title: str
    modules: tuple
    test: str


LESSONS = [
    Lesson("00", "00_speech_commands.ipynb", "Speech Commands, speaker-disjoint splits, baselines",
           ("data", "models", "train", "charts"), "tests/test_lessons.py::test_lesson_00"),
    Lesson("01", "01_pruning.ipynb", "Pruning: magnitude, sensitivity, CSR bytes, structured, gradual",
           ("prune", "nn", "experiments", "size", "widgets"), "tests/test_lessons.py::test_lesson_01"),
    Lesson("05", "05_fp16_transfer.ipynb", "FP16 and transfer: range, epsilon, loss scaling, FP32 -> FP16, bfloat16",
           ("precision", "nn", "train", "charts"), "tests/test_lesson_05.py"),
    Lesson("04", "04_quantization.ipynb", "Quantization: int8 cast, fixed point, uniform, k-means, OMSE, multi-bit, "
           "packing, Huffman", ("quant", "nn", "experiments", "size", "widgets"), "tests/test_lesson_04.py"),
    Lesson("02", "02_svd.ipynb", "Low rank: singular values, energy, truncated SVD, fine-tuning, factorized training",
           ("lowrank", "nn", "size", "widgets"), "tests/test_lesson_02.py"),
    Lesson("03", "03_deepthin.ipynb", "DeepThin: auxiliary matrix, re-layout, LCM size solver, the paper's "
           "comparison, fused inference", ("deepthin", "hashednet", "lowrank", "prune", "nn", "experiments", "widgets"),
           "tests/test_lesson_03.py"),
    Lesson("06", "06_pipeline.ipynb", "The full pipeline: prune -> low rank / DeepThin -> quantize, distillation, "
           "Pareto chart of every method, save / reload / timing",
           ("prune", "lowrank", "deepthin", "quant", "nn", "experiments", "size", "train", "charts"), "tests/test_lesson_06.py"),
    Lesson("07", "07_deploy.ipynb", "Deploy: ONNX export, onnxruntime FP32 and int8 (dynamic, static), bytes, latency "
           "and accuracy beside thinlab's stored formats", ("deploy", "nn", "experiments", "train", "charts"),
           "tests/test_lesson_07.py"),
]

LESSONS.sort(key=lambda l: l.key)

#: CI-size parameters injected by ``--fast 1`` and by the lesson tests
FAST_PARAMS = {
    "00": {"FAST": True, "EPOCHS": 8, "MAX_PER_CLASS": 24, "LEAK_EPOCHS": 2, "LEAK_SEEDS": [0], "MODELS": ["cnn", "lstm", "dnn"]},
    "01": {"FAST": True, "EPOCHS": 8, "MAX_PER_CLASS": 24, "FINETUNE_EPOCHS": 2, "SPARSITIES": [0.0, 0.5, 0.9, 0.99],
           "MODEL_SPARSITIES": [0.5, 0.9], "MODEL_FINETUNE_EPOCHS": 1, "SEEDS": [0, 1, 2], "CHALLENGE_MARGIN": 0.15},
    "05": {"FAST": True, "EPOCHS": 8, "MAX_PER_CLASS": 24, "HALF_EPOCHS": 2, "TRANSFER_EPOCHS": 1, "SEEDS": [0]},
    "04": {"FAST": True, "EPOCHS": 8, "MAX_PER_CLASS": 24, "BITS": [2, 4, 8], "FINETUNE_BITS": [2],
           "FINETUNE_EPOCHS": 1, "SEEDS": [0], "MODEL_QUANTIZERS": ["uniform_asym_channel", "kmeans"],
           "SCAN_BITS": [2, 4, 8], "FIXED_BITS": [16, 8, 4, 2]},
    "02": {"FAST": True, "EPOCHS": 8, "MAX_PER_CLASS": 24, "RANKS": [1, 4, 16, 64], "FINETUNE_RANKS": [2, 16],
           "FINETUNE_EPOCHS": 1, "SEEDS": [0, 1]},
    "03": {"FAST": True, "EPOCHS": 2, "MAX_PER_CLASS": 24, "FACTORS": [20, 350], "SEEDS": [0], "TIMING_SECONDS": 0.02},
    "06": {"FAST": True, "EPOCHS": 2, "MAX_PER_CLASS": 24, "FINETUNE_EPOCHS": 1, "DISTILL_EPOCHS": 2,
           "PARETO_METHODS": ["prune", "lowrank", "deepthin", "hashed", "narrow"], "PARETO_FRACTIONS": [0.05],
           "QUANT_METHODS": ["uniform_sym_channel", "kmeans"], "QUANT_SWEEP_BITS": [4]},
    "07": {"FAST": True, "EPOCHS": 2, "MAX_PER_CLASS": 24, "FINETUNE_EPOCHS": 1, "CALIB_CLIPS": 32,
           "LATENCY_REPEATS": 5},
}


def markdown_table() -> str:
    """The README's lesson table (lesson → notebook → modules → test), made from ``LESSONS``."""
    rows = ["| lesson | notebook | library modules | test |", "|---|---|---|---|"]
    for l in LESSONS:
        mods = ", ".join(f"`thinlab.{m}`" for m in l.modules)
        rows.append(f"| {l.key} {l.title} | `lessons/{l.notebook}` | {mods} | `{l.test}` |")
    return "\n".join(rows)


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_results(path, results: dict) -> dict:
    """Write a lesson's headline numbers to ``path`` as JSON (atomically), adding its peak memory.

    Taught in: all lessons (the last cell of each)
    """
    results = dict(results, peak_memory_mb=round(peak_memory_mb(), 1))
    with atomic_file(path, "w") as f:
        f.write(json.dumps(results, indent=2, default=_jsonable))
    return results


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def lesson(key: str) -> Lesson:
    for l in LESSONS:
        if l.key == key:
            return l
    raise KeyError(f"no lesson {key!r}; lessons are {[l.key for l in LESSONS]}")


def run_lesson(key: str, *, fast: bool = False, data: str | None = None, out_dir: Path = BUILD_DIR,
               extra: dict | None = None, progress: bool = True) -> dict:
    """Execute one lesson with papermill; returns its JSON results plus ``seconds``."""
    import papermill as pm

    l = lesson(key)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(l.notebook).stem
    results_path = (out_dir / f"{stem}.json").resolve()
    params = dict(FAST_PARAMS.get(key, {}) if fast else {})
    params["RESULTS"] = str(results_path)
    params["SOLUTIONS"] = True  # unattended runs fill the "your turn" cells with the reference answers
    if data:
        params["DATA"] = data
    params.update(extra or {})
    if results_path.exists():
        results_path.unlink()
    t0 = time.perf_counter()
    # a per-cell time limit turns a stuck cell (e.g. nbclient's widget-comm deadlock, jupyter/nbclient#312)
    # into a clear failure instead of a silent hang
    from thinlab._progress import headless_env  # the kernel inherits THINLAB_HEADLESS=1: text bars, static explorers
    with headless_env():
        pm.execute_notebook(str(LESSON_DIR / l.notebook), str(out_dir / l.notebook), parameters=params,
                            cwd=str(LESSON_DIR), progress_bar=progress, kernel_name="python3",
                            execution_timeout=600 if fast else 3600)
    seconds = time.perf_counter() - t0
    if not results_path.exists():
        raise RuntimeError(f"lesson {key} ran but wrote no results to {results_path}")
    results = json.loads(results_path.read_text())
    results["seconds"] = round(seconds, 1)
    results_path.write_text(json.dumps(results, indent=2))
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m thinlab.course", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute lessons headless into build/lessons/")
    r.add_argument("--fast", type=int, default=0, help="1: CI-size parameters")
    r.add_argument("--data", default=None, help="auto (default), synthetic, or a Speech Commands folder")
    r.add_argument("--only", default="", help="comma-separated lesson keys, e.g. 00,03")
    ls = sub.add_parser("list", help="print the lesson table")
    ls.add_argument("--markdown", action="store_true", help="as the README's markdown table")
    from thinlab.classroom import cli as classroom  # release, grade, site (see thinlab/classroom/)
    classroom.add_parsers(sub)
    args = ap.parse_args(argv)
    if args.cmd in classroom.COMMANDS:
        return classroom.run(args)
    if args.cmd == "list" and args.markdown:
        print(markdown_table())
        return 0
    if args.cmd == "list":
        for l in LESSONS:
            print(f"{l.key}  lessons/{l.notebook:<28} thinlab.{{{','.join(l.modules)}}}  {l.test}")
        return 0
    keys = [k.strip() for k in args.only.split(",") if k.strip()] or [l.key for l in LESSONS]
    summary, t0 = {}, time.perf_counter()
    for key in keys:
        print(f"== lesson {key}: {lesson(key).notebook} ({'fast' if args.fast else 'full size'})", flush=True)
        res = run_lesson(key, fast=bool(args.fast), data=args.data)
        summary[key] = res
        print(f"   {res['seconds']:.0f} s, peak {res.get('peak_memory_mb', float('nan')):.0f} MB", flush=True)
    total = time.perf_counter() - t0
    (BUILD_DIR / "summary.json").write_text(json.dumps({"total_seconds": round(total, 1), "lessons": summary},
                                                       indent=2))
    print(f"all {len(keys)} lesson(s) ran in {total / 60:.1f} min; executed notebooks and results in {BUILD_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
