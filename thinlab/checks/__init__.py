"""Exercise checks: tiny fixtures with exact answers. Each ``check_*`` calls the student's function,
compares with the reference, and raises ``AssertionError`` with a message that says what went wrong
and a hint. ``SOLUTIONS`` maps each exercise name to its reference (used when a lesson runs with
``SOLUTIONS=True``, so unattended runs pass).

One module per lesson (``speech`` for 00, …, ``deploy`` for 07); every ``check_*`` is imported here by name (so grep and an IDE
find its definition) and every module's ``SOLUTIONS`` merged, so a lesson writes ``from thinlab import checks; checks.check_x(fn)``.

Taught in: every lesson's "your turn" cells
"""
from __future__ import annotations

from thinlab.checks.deepthin import SOLUTIONS as _DEEPTHIN
from thinlab.checks.deepthin import (
    check_lower_bound, check_n_alignments, check_relayout,
)
from thinlab.checks.deploy import SOLUTIONS as _DEPLOY
from thinlab.checks.deploy import (
    check_export_int8,
)
from thinlab.checks.fp16 import SOLUTIONS as _FP16
from thinlab.checks.fp16 import (
    check_float_spacing, check_loss_scale_update, check_underflows,
)
from thinlab.checks.hints import Hints, hints
from thinlab.checks.lowrank import SOLUTIONS as _LOWRANK
from thinlab.checks.lowrank import (
    check_lowrank_bytes, check_rank_for_budget, check_truncated_svd,
)
from thinlab.checks.pipeline import SOLUTIONS as _PIPELINE
from thinlab.checks.pipeline import (
    check_distillation_loss, check_stage_factors,
)
from thinlab.checks.pruning import SOLUTIONS as _PRUNING
from thinlab.checks.pruning import (
    check_break_even_density, check_csr_bytes, check_magnitude_prune,
)
from thinlab.checks.quantization import SOLUTIONS as _QUANTIZATION
from thinlab.checks.quantization import (
    check_best_frac_bits, check_packed_bytes, check_symmetric_quantize,
)
from thinlab.checks.speech import SOLUTIONS as _SPEECH
from thinlab.checks.speech import (
    check_accuracy_from_confusion, check_speaker_overlap,
)

SOLUTIONS: dict = {}
for _module, _solutions in [("deepthin", _DEEPTHIN), ("deploy", _DEPLOY), ("fp16", _FP16), ("lowrank", _LOWRANK), ("pipeline", _PIPELINE), ("pruning", _PRUNING), ("quantization", _QUANTIZATION), ("speech", _SPEECH)]:
    for _key, _fn in _solutions.items():
        if _key in SOLUTIONS:
            raise RuntimeError(f"exercise {_key!r} is defined twice (in thinlab.checks.{_module} and elsewhere)")
        SOLUTIONS[_key] = _fn
