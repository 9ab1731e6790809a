"""Exercise checks for lesson 00 (accuracy from a confusion matrix, speaker overlap).

Taught in: 00_speech_commands
"""
from __future__ import annotations

import numpy as np

from thinlab.checks._common import call as _call, fail as _fail


def accuracy_from_confusion_reference(cm) -> float:
    """Accuracy = correct / total = trace / sum of the confusion matrix. Taught in: 00_speech_commands"""
    cm = np.asarray(cm)
    return float(np.trace(cm) / cm.sum())


def check_accuracy_from_confusion(fn) -> str:
    """Check the student's ``accuracy_from_confusion(cm) -> float``. Taught in: 00_speech_commands"""
    cases = [np.array([[5, 0], [0, 5]]), np.array([[3, 1], [2, 4]]), np.array([[0, 7, 1], [2, 0, 0], [1, 1, 8]])]
    for cm in cases:
        got, want = _call(fn, cm.copy()), accuracy_from_confusion_reference(cm)
        if not np.isscalar(got) and np.ndim(got) != 0:
            _fail(f"expected one number, got {type(got).__name__} of shape {np.shape(got)}",
                  "return one float: the share of all predictions that are correct")
        if not np.isclose(float(got), want):
            _fail(f"for cm={cm.tolist()} you returned {float(got):.4f}, expected {want:.4f}",
                  "rows are true classes, columns predictions: correct ones sit on the diagonal (np.trace)")
    return "✓ accuracy_from_confusion is right"


def speaker_overlap_reference(speakers_a, speakers_b) -> set:
    """Speakers present in both splits. Taught in: 00_speech_commands"""
    return set(np.unique(speakers_a)) & set(np.unique(speakers_b))


def check_speaker_overlap(fn) -> str:
    """Check the student's ``speaker_overlap(a, b) -> set``. Taught in: 00_speech_commands"""
    cases = [(["a", "b", "a"], ["c", "d"]), (["a", "b"], ["b", "c", "b"]), (["x"], ["x"])]
    for a, b in cases:
        got, want = _call(fn, np.array(a), np.array(b)), speaker_overlap_reference(a, b)
        if set(got) != want:
            _fail(f"for {a} and {b} you returned {sorted(set(got))}, expected {sorted(want)}",
                  "a speaker leaks when the same id appears in both arrays: use set intersection")
    return "✓ speaker_overlap is right"


SOLUTIONS = {
    "accuracy_from_confusion": accuracy_from_confusion_reference,
    "speaker_overlap": speaker_overlap_reference,
}
