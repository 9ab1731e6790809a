"""Teaching helpers the lessons share: predict-first cells, readable tables, honest interpretations,
and design challenges with a leaderboard line.

* :func:`predict` / :func:`reveal`: before a key result the student writes a guess in a cell
  (``GUESS = ...``); ``predict`` records it, ``reveal`` compares it with what the run measured and
  says by how much it was off (or that no guess was written).
* :func:`table`: a results table formatted for reading – percentages, thousands separators, bytes in
  KB / MB, a fixed number of digits – with empty columns (all missing or "not available") dropped.
* :func:`interpret`: one sentence from a :class:`thinlab.stats.Comparison` that says which way a
  comparison went, whether that is beyond the speaker-aware noise, and – when it went against the
  lesson's expectation or within noise – the known reasons it can go either way. Nothing in it can be
  contradicted by the numbers beside it: every word is chosen from them.
* :func:`challenge`: the auto-check of a design challenge (a model under a size limit above an
  accuracy bar) and its leaderboard line.

Taught in: 00_speech_commands … 06_pipeline (every lesson's predict-first cells and tables)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from thinlab import stats

_GUESSES: dict[str, dict] = {}


def human_bytes(n) -> str:
    """``1234`` → ``"1.2 KB"``, ``6_200_000`` → ``"6.2 MB"`` (decimal units, as the lessons' byte counts).

    Taught in: 00_speech_commands
    """
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    n = float(n)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{1 if abs(n) / scale < 100 else 0}f} {unit}"
    return f"{n:,.0f} B"


def predict(name: str, guess, *, question: str, unit: str = "") -> str:
    """Record the student's guess for ``name`` before the result is computed; returns what was recorded.

    ``guess`` is a number, a string (one of the answers the question offers) or ``None`` (no guess yet).

    Taught in: 00_speech_commands … 06_pipeline
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string naming the prediction, got {name!r}")
    _GUESSES[name] = dict(guess=guess, question=question, unit=unit)
    if guess is None:
        return (f"Predict first: {question} Write your guess in the cell above (replace None) before you run "
                "the next cells; the lesson compares it with the run.")
    shown = f"{guess:g}{unit}" if isinstance(guess, (int, float)) and not isinstance(guess, bool) else repr(guess)
    return f"Your prediction is recorded: {question} → {shown}"


def reveal(name: str, actual, *, fmt: str = "{:.3g}") -> str:
    """Compare the guess recorded by :func:`predict` under ``name`` with ``actual`` (the run's value).

    Taught in: 00_speech_commands … 06_pipeline
    """
    if name not in _GUESSES:
        raise KeyError(f"no prediction named {name!r} was recorded; call teach.predict({name!r}, GUESS, "
                       f"question=...) before the result (recorded: {sorted(_GUESSES)})")
    g = _GUESSES[name]
    unit = g["unit"]
    shown = (fmt.format(actual) + unit) if isinstance(actual, (int, float, np.floating)) else repr(actual)
    if g["guess"] is None:
        return f"{g['question']} The run measured {shown}. (No guess was written: try predicting first next time.)"
    guess = g["guess"]
    if isinstance(guess, str) or isinstance(actual, str):
        same = str(guess).strip().lower() == str(actual).strip().lower()
        return (f"{g['question']} You said {guess!r}; the run says {shown}: "
                + ("you were right." if same else "not what you expected – read on for why."))
    err = float(actual) - float(guess)
    rel = abs(err) / max(abs(float(actual)), 1e-12)
    closeness = "spot on" if rel <= 0.05 else "close" if rel <= 0.25 else "far off"
    return (f"{g['question']} You guessed {fmt.format(guess)}{unit}; the run measured {shown} "
            f"({'+' if err >= 0 else '−'}{fmt.format(abs(err))}{unit} from your guess: {closeness}).")


def _is_empty(col) -> bool:
    vals = [v for v in col if not (v is None or (isinstance(v, float) and math.isnan(v)))]
    return not vals or all(isinstance(v, str) and v.strip().lower() in ("", "not available", "n/a", "nan")
                           for v in vals)


def table(rows, *, percent=(), bytes_=(), integers=(), digits: int = 3, index=None):
    """A pandas DataFrame of strings formatted for reading.

    Parameters
    ----------
    rows : list of dicts or DataFrame
    percent : columns holding fractions, shown as ``68.6 %``
    bytes_ : columns holding byte counts, shown as ``6.2 MB``
    integers : columns shown with thousands separators (``4,678,028``)
    digits : significant digits of every other float
    index : column(s) to use as the index (kept unformatted)

    Columns with no value (all missing or "not available") are dropped.

    Taught in: 00_speech_commands … 06_pipeline
    """
    import pandas as pd

    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for name in (*percent, *bytes_, *integers):
        if name not in df.columns and name != index:
            raise KeyError(f"table(): no column {name!r} to format; columns are {list(df.columns)}")
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        col = df[c]
        if _is_empty(col.tolist()):
            continue
        if c in percent:
            out[c] = [f"{100 * v:.1f} %" if _num(v) else _blank(v) for v in col]
        elif c in bytes_:
            out[c] = [human_bytes(v) if _num(v) else _blank(v) for v in col]
        elif c in integers:
            out[c] = [f"{int(round(v)):,}" if _num(v) else _blank(v) for v in col]
        elif col.map(lambda v: isinstance(v, (float, np.floating))).all():
            places = _decimals([v for v in col if _num(v)], digits)   # one number of decimals per column
            out[c] = [f"{v:,.{places}f}" if _num(v) else _blank(v) for v in col]
        else:
            out[c] = [_blank(v) if not _num(v) and not isinstance(v, str) else
                      (f"{v:,}" if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v) for v in col]
    if index is not None:
        out = out.set_index(index)
    return out


MAX_DECIMALS = 8          # a column never prints more decimals than this (8 shows 2 digits of 1e-7)


def _decimals(values, digits: int) -> int:
    """One number of decimals for a whole column, by one rule at every magnitude:

    * the largest magnitude gets ``digits`` significant digits, but never more than ``digits`` decimals
      (so 0.019, 0.010 and 0.0336 line up as 0.019, 0.010, 0.034, and 104.4 prints as 104);
    * every non-zero value gets at least 2 significant digits (up to :data:`MAX_DECIMALS` decimals), so
      a small value (an error, a step size) never prints as 0.00 or 0.001 whatever the column's maximum:
      0.0012 prints as 0.0012 beside 0.0099, 0.0101 or 1.01.
    """
    mags = [abs(float(v)) for v in values]
    mags = [v for v in mags if v != 0 and math.isfinite(v)]
    if not mags:
        return digits
    top, small = max(mags), min(mags)
    natural = min(digits, max(0, digits - 1 - _exponent(top)))
    return max(natural, min(MAX_DECIMALS, 2 - 1 - _exponent(small)))


def _exponent(v: float) -> int:
    """The decimal exponent of ``v > 0``: 0 for 1.0–9.99, -3 for 0.001–0.00999."""
    return int(math.floor(math.log10(v)))


def _num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and not math.isnan(v)


def _blank(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def interpret(cmp, *, expected: str = "better", reasons=(), claim: str = "") -> str:
    """One sentence about a :class:`thinlab.stats.Comparison` (``cmp.a`` against ``cmp.b``), from its numbers.

    ``expected``: what the lesson's story predicts for ``a`` ("better", "worse" or "similar").
    ``reasons``: known reasons the comparison can go either way, quoted when the run did not show the
    expectation beyond noise. ``claim``: what is being compared, e.g. "gradual pruning against one-shot".

    Taught in: 00_speech_commands … 06_pipeline
    """
    if expected not in ("better", "worse", "similar"):
        raise ValueError(f"expected={expected!r}: use 'better', 'worse' or 'similar'")
    what = claim or f"{cmp.a} against {cmp.b}"
    way = "ahead" if cmp.diff > 0 else "behind" if cmp.diff < 0 else "level"
    gap = stats.points_text(abs(cmp.diff)).lstrip("+")      # never "0.0 points ahead" for a non-zero gap
    head = (f"{what}: {cmp.a} {cmp.acc_a:.3f} vs {cmp.b} {cmp.acc_b:.3f}, {cmp.a} {gap} points "
            f"{way}" if way != "level" else f"{what}: both {cmp.acc_a:.3f}")
    noise = f" ({stats.level_text(cmp.level)} paired interval over {cmp.n_speakers} speakers {cmp.bounds_text()})"
    if cmp.verdict == "within noise":
        body = ": within noise, so this run cannot tell them apart"
        agrees = expected == "similar"
    else:
        body = f": {cmp.a} is {cmp.verdict}, beyond noise"
        agrees = cmp.verdict == expected
    tail = ""
    if not agrees:
        tail = (" – not the expected outcome" if cmp.verdict != "within noise" else
                " – the expected difference did not show here")
        if reasons:
            tail += ". It can go either way: " + "; ".join(reasons)
    return head + noise + body + tail + "."


@dataclass
class Challenge:
    """The outcome of a design challenge. Taught in: 01_pruning, 02_svd, 04_quantization, 06_pipeline"""

    name: str
    bytes: int
    accuracy: float
    size_limit: int
    accuracy_bar: float
    passed: bool = field(init=False)

    def __post_init__(self):
        self.passed = self.bytes <= self.size_limit and self.accuracy >= self.accuracy_bar

    def text(self) -> str:
        """``✗ not yet: name: 64,040 B (✗ limit 64,000 B), accuracy 0.7496 (✗ bar 0.7498)``.

        Bytes in KB / MB unless the value and the limit would print the same (``64.0 KB`` beside
        ``64.0 KB``): then exact bytes with thousands separators. Accuracies with 3 decimals, or as many
        as it takes for an accuracy that differs from the bar to print differently. So a ✓ or ✗ never
        stands beside two numbers that read the same unless they are the same."""
        size_ok = "✓" if self.bytes <= self.size_limit else "✗"
        acc_ok = "✓" if self.accuracy >= self.accuracy_bar else "✗"
        size, limit = human_bytes(self.bytes), human_bytes(self.size_limit)
        if _shown_bytes(size) == _shown_bytes(limit):
            size, limit = f"{self.bytes:,} B", f"{self.size_limit:,} B"
        places = _places_apart(self.accuracy, self.accuracy_bar, 3)
        return (f"{'✓ challenge met' if self.passed else '✗ not yet'}: {self.name}: {size} "
                f"({size_ok} limit {limit}), accuracy {self.accuracy:.{places}f} "
                f"({acc_ok} bar {self.accuracy_bar:.{places}f})")

    def leaderboard(self, who: str = "you") -> str:
        """``LEADERBOARD | name | who | bytes | accuracy | passed``: one line a class can collect and sort.
        Exact bytes; the accuracy with 4 decimals, or more when :meth:`text` needs more to tell it from
        the bar (so the line never reads 0.7498 beside "fail" against a bar of 0.7498)."""
        places = _places_apart(self.accuracy, self.accuracy_bar, 4)
        return (f"LEADERBOARD | {self.name} | {who} | {self.bytes} | {self.accuracy:.{places}f} | "
                f"{'pass' if self.passed else 'fail'}")


def _shown_bytes(text: str) -> float:
    """The byte count a :func:`human_bytes` text shows: ``"64.0 KB"`` → 64000.0."""
    number, unit = text.split()
    return float(number.replace(",", "")) * {"GB": 1e9, "MB": 1e6, "KB": 1e3, "B": 1.0}[unit]


def _places_apart(x: float, y: float, places: int) -> int:
    """At least ``places`` decimals, more while two different numbers would still print the same."""
    while x != y and f"{x:.{places}f}" == f"{y:.{places}f}" and places < 30:
        places += 1
    return places


def challenge(name: str, *, bytes_: int, accuracy: float, size_limit: int, accuracy_bar: float) -> Challenge:
    """Check a design challenge: ``bytes_`` (from ``size_report``, never typed) under ``size_limit`` and
    ``accuracy`` at or above ``accuracy_bar``.

    Taught in: 01_pruning, 02_svd, 04_quantization, 06_pipeline
    """
    for label, v in (("bytes_", bytes_), ("size_limit", size_limit)):
        if not _num(v) or v <= 0:
            raise ValueError(f"{label}={v!r}: expected a positive byte count (e.g. size_report(model)['bytes'])")
    for label, v in (("accuracy", accuracy), ("accuracy_bar", accuracy_bar)):
        if not _num(v) or not 0 <= v <= 1:
            raise ValueError(f"{label}={v!r}: expected a fraction between 0 and 1")
    return Challenge(name, int(bytes_), float(accuracy), int(size_limit), float(accuracy_bar))
