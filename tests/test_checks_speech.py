"""Exercise checks pass the reference answers and fail wrong ones with a helpful message.

Lesson 00's wrong answers are here; each later lesson has tests/test_checks_<topic>.py."""
from __future__ import annotations

import numpy as np
import pytest
from _checks_helpers import assert_fails_with_hint, assert_reference_passes, assert_unwritten_says_so

from thinlab import checks

# (check, a wrong answer, a phrase the failure message must contain)
WRONG = {
    "accuracy_from_confusion": (checks.check_accuracy_from_confusion, lambda cm: float(np.trace(cm)), "expected"),
    "speaker_overlap": (checks.check_speaker_overlap, lambda a, b: set(a) | set(b), "expected"),
}


@pytest.mark.parametrize("name", sorted(checks.SOLUTIONS))
def test_every_reference_passes_its_check(name):
    assert_reference_passes(name)


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_answer_fails_with_a_hint(name):
    check, wrong, phrase = WRONG[name]
    assert_fails_with_hint(check, wrong, what=phrase)


@pytest.mark.parametrize("name", sorted(WRONG))
def test_unwritten_exercise_says_so(name):
    assert_unwritten_says_so(name)
