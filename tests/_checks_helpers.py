"""Assertions shared by tests/test_checks_*.py: a right answer passes its exercise check, a wrong
one fails with an ``AssertionError`` that says what went wrong and gives a "Hint:", and an unwritten
exercise (``NotImplementedError``) fails naming itself."""
from __future__ import annotations

import pytest

from thinlab import checks


def assert_passes(check, fn) -> None:
    """``check(fn)`` passes with the message ``"✓ <exercise> is right"``."""
    name = check.__name__.removeprefix("check_")
    result = check(fn)
    assert result.startswith(f"✓ {name} is right"), f"{check.__name__} returned {result!r}"


def assert_reference_passes(name: str) -> None:
    """The reference answer ``checks.SOLUTIONS[name]`` passes ``checks.check_<name>``."""
    assert_passes(getattr(checks, f"check_{name}"), checks.SOLUTIONS[name])


def assert_fails_with_hint(check, wrong, *, what: str = "", hint: str = "") -> str:
    """``check(wrong)`` raises an ``AssertionError`` whose message contains ``what`` and a "Hint:"
    whose text contains ``hint``; returns the message."""
    with pytest.raises(AssertionError) as err:
        check(wrong)
    message = str(err.value)
    assert what in message, f"{what!r} is not in the failure message: {message}"
    assert "Hint:" in message, f"the failure message has no 'Hint:': {message}"
    assert hint in message.split("Hint:", 1)[1], f"{hint!r} is not in the hint: {message}"
    return message


def assert_unwritten_says_so(name: str) -> None:
    """``checks.check_<name>`` given a stub that raises ``NotImplementedError`` fails with
    "<name> is not written yet"."""
    def student(*args):
        raise NotImplementedError("your turn")

    student.__name__ = name
    with pytest.raises(AssertionError, match=f"{name} is not written yet"):
        getattr(checks, f"check_{name}")(student)


def exercise_tests(names, wrong: dict):
    """The three tests of a lesson's checks, for its exercise ``names`` and its ``wrong`` answers
    (case name → ``(check, wrong answer, a phrase the failure message must contain, a phrase the hint
    must contain)``): the reference passes, each wrong answer fails with a hint, an unwritten exercise
    says so. Bind them to module-level ``test_*`` names so that pytest collects them there::

        test_reference_passes_its_check, test_wrong_answer_fails_with_a_hint, test_unwritten_exercise_says_so = (
            exercise_tests(NAMES, WRONG))
    """
    @pytest.mark.parametrize("name", names)
    def test_reference_passes_its_check(name):
        assert_reference_passes(name)

    @pytest.mark.parametrize("case", list(wrong))
    def test_wrong_answer_fails_with_a_hint(case):
        check, fn, what, hint = wrong[case]
        assert_fails_with_hint(check, fn, what=what, hint=hint)

    @pytest.mark.parametrize("name", names)
    def test_unwritten_exercise_says_so(name):
        assert_unwritten_says_so(name)

    return test_reference_passes_its_check, test_wrong_answer_fails_with_a_hint, test_unwritten_exercise_says_so
