"""Install the pinned torch into the running Python, the right build for this machine.

* No NVIDIA GPU: torch comes from PyTorch's CPU wheel index (about 200 MB instead of the
  multi-GB CUDA build that the default package index serves for Linux).
* Where that index cannot be reached (a mirror-only network), fall back at once to the default
  index: one short timeout, no retry loop.
* An NVIDIA GPU: the default index's wheel (CUDA build).

``THINLAB_TORCH_INDEX`` overrides the choice: ``cpu``, ``default`` or an index URL.
``python tools/install_torch.py --dry-run`` prints the pip commands instead of running them.
Run by ``make`` when it creates ``.venv``; the pin is read from ``pyproject.toml``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TIMEOUT_S = 6
ROOT = Path(__file__).resolve().parents[1]


def torch_requirement(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The ``torch==…`` pin of ``pyproject.toml``'s dependencies."""
    m = re.search(r'"(torch\s*==\s*[^"]+)"', pyproject.read_text())
    if not m:
        raise SystemExit(f"no torch==<version> pin in {pyproject}; add one to [project] dependencies")
    return m.group(1).replace(" ", "")


def has_nvidia_gpu() -> bool:
    """True when an NVIDIA GPU is visible (``nvidia-smi -L`` lists one, or the driver exposes one)."""
    if os.environ.get("THINLAB_FAKE_GPU") in ("0", "1"):         # for tests of this script
        return os.environ["THINLAB_FAKE_GPU"] == "1"
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
            return out.returncode == 0 and "GPU" in out.stdout
        except (OSError, subprocess.SubprocessError):
            return False
    return False


def plan(requirement: str, *, gpu: bool, choice: str = "") -> list[list[str]]:
    """The pip argument lists to try in order (the first that succeeds wins)."""
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    default = pip + [requirement]
    choice = choice.strip()
    if choice == "default" or (not choice and gpu):
        return [default]
    index = CPU_INDEX if choice in ("", "cpu") else choice
    return [pip + ["--index-url", index, "--timeout", str(TIMEOUT_S), "--retries", "0", requirement], default]


def main(argv: list[str]) -> int:
    dry = "--dry-run" in argv
    req = torch_requirement()
    gpu = has_nvidia_gpu()
    steps = plan(req, gpu=gpu, choice=os.environ.get("THINLAB_TORCH_INDEX", ""))
    print(f">> torch: {req}, {'an NVIDIA GPU' if gpu else 'no NVIDIA GPU'} here -> "
          + ("the default index (CUDA build)" if len(steps) == 1 else f"PyTorch's CPU index, else the default index"),
          flush=True)
    for i, cmd in enumerate(steps):
        if dry:
            print(" ".join(cmd[1:]))
            continue
        if subprocess.run(cmd).returncode == 0:
            return 0
        if i + 1 < len(steps):
            print(">> PyTorch's index did not answer; falling back to the default package index", flush=True)
    return 0 if dry else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
