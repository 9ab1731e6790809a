"""The grader's run process: ``python -m thinlab.classroom._runner JOB.json`` executes one prepared
submission with papermill, inside the sandbox the grader made (its environment, limits and folders).

Every cell runs even when one raises (``allow_errors``), so one wrong answer does not hide the rest; a
cell that runs past its limit is interrupted and marked with a ``TimeoutError`` (the job's
``cell_limits`` give the course's unchanged cells their own limits; every other cell gets
``cell_timeout``). The executed
notebook is saved as cells finish, so a run the grader has to kill still leaves what it did. The outcome
(``{"ok": true}`` or the exception that ended the run) goes to ``JOB.status.json``.

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from pathlib import Path


def source_key(src) -> str:
    """How a cell is recognised across runs: a hash of its source."""
    src = "".join(src) if isinstance(src, list) else str(src)
    return hashlib.sha1(src.encode("utf-8", "replace")).hexdigest()


def main(argv) -> int:
    job_path = Path(argv[1])
    job = json.loads(job_path.read_text())
    status_path = job_path.with_suffix(".status.json")
    status = {"ok": True}
    try:
        import papermill as pm

        os.environ["THINLAB_HEADLESS"] = "1"  # the kernel inherits it: text progress bars, static explorers

        limit = int(job["cell_timeout"])
        known = job.get("cell_limits", {})

        def timeout_for(cell) -> int:  # the course's own cells get room in proportion to their reference time
            return int(known.get(source_key(cell.source), limit))

        pm.execute_notebook(
            job["input"], job["output"], parameters=job["parameters"], cwd=job["cwd"], kernel_name="python3",
            progress_bar=False, log_output=False, execution_timeout=limit, start_timeout=120,
            allow_errors=True, interrupt_on_timeout=True, iopub_timeout=60,  # a busy machine is slow to flush
            timeout_func=timeout_for,
            error_on_timeout={"ename": "TimeoutError", "evalue": "the grader stopped this cell at its time limit"})
    except Exception as exc:  # noqa: BLE001 - any end of the run is reported, never raised
        if type(exc).__name__ != "PapermillExecutionError":  # cell errors are in the notebook itself
            status = {"ok": False, "error": type(exc).__name__, "message": str(exc)[:500],
                      "traceback": traceback.format_exc()[-3000:]}
    status_path.write_text(json.dumps(status))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
