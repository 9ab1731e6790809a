"""Exercise checks for lesson 04 (symmetric quantise-dequantise with a given scale, the packed bytes
of n codes at b bits, the best fraction bits F of W/F fixed point).

Taught in: 04_quantization
"""
from __future__ import annotations

import math

import numpy as np

from thinlab import quant
from thinlab.checks._common import call as _call, fail as _fail

#: candidate fraction bits the exercise asks the student to search
FRAC_CANDIDATES = range(-8, 25)


def symmetric_quantize_reference(W, scale, n_bits):
    """Symmetric quantise-dequantise with a given ``scale``:
    ``clip(round(W / scale), -(2**(n_bits-1) - 1), 2**(n_bits-1) - 1) * scale``. Taught in: 04_quantization"""
    qmax = 2 ** (n_bits - 1) - 1
    return np.clip(np.rint(np.asarray(W, dtype=np.float64) / scale), -qmax, qmax) * scale


def _symmetric_cases():
    rng = np.random.default_rng(4)
    return [(np.array([0.31, -0.07, 0.12, -0.49, 0.02]), 0.1, 4),        # -0.49 → code -5: inside ±7
            (np.array([[0.9, -1.3], [0.26, -0.04]]), 0.25, 3),           # 0.9 → 4 clips to 3, -1.3 → -5 to -3
            (np.array([0.013, -0.052, 0.038, 0.2, -0.2]), 0.02, 2),      # ternary: codes -1, 0, 1
            (rng.normal(0, 0.05, (6, 7)) + 0.0013, 0.01, 8)]              # + 0.0013: no exact .5 ties


def check_symmetric_quantize(fn) -> str:
    """Check the student's ``symmetric_quantize(W, scale, n_bits) -> array``. Taught in: 04_quantization"""
    for W, scale, b in _symmetric_cases():
        original = W.copy()
        got = _call(fn, W, scale, b)
        if not np.array_equal(W, original):
            _fail("your function changed the W it was given", "compute on a copy: W / scale makes a new array")
        got = np.asarray(got, dtype=np.float64) if got is not None else None
        want = symmetric_quantize_reference(W, scale, b)
        if got is None or got.shape != W.shape:
            _fail(f"for W of shape {W.shape} you returned {None if got is None else got.shape}",
                  "return an array of W's shape: the dequantised values code * scale")
        if np.allclose(got, want, rtol=0, atol=1e-12 + 1e-9 * scale):
            continue
        qmax = 2 ** (b - 1) - 1
        codes = np.rint(W / scale)
        hint = ("three steps: round W / scale to the nearest integer code, clip the codes to the symmetric "
                "range of the docstring, and dequantise the codes with the scale")
        if np.allclose(got, np.clip(codes, -qmax, qmax)):
            hint = "you returned the integer codes; dequantise them: multiply by scale. " + hint
        elif np.allclose(got, codes * scale):
            hint = f"values beyond ±{qmax}·scale must saturate: clip the codes before multiplying. " + hint
        elif np.allclose(got, np.clip(codes, -qmax - 1, qmax) * scale):
            hint = (f"symmetric codes use the narrow range ±{qmax} (not -{qmax + 1}) so that +x and -x "
                    "quantise alike. " + hint)
        elif np.allclose(got, np.clip(np.trunc(W / scale), -qmax, qmax) * scale) or \
                np.allclose(got, np.clip(np.floor(W / scale), -qmax, qmax) * scale):
            hint = "round to the nearest code (np.round), do not truncate or floor. " + hint
        _fail(f"for W={np.round(original, 4).tolist()}, scale={scale}, n_bits={b} you returned "
              f"{np.round(got, 6).tolist()}, expected {np.round(want, 6).tolist()}", hint)
    return "✓ symmetric_quantize is right"


def packed_bytes_reference(n, n_bits) -> int:
    """Bytes of ``n`` codes of ``n_bits`` each, packed densely: ``ceil(n * n_bits / 8)``. Taught in: 04_quantization"""
    return math.ceil(n * n_bits / 8)


def check_packed_bytes(fn) -> str:
    """Check the student's ``packed_bytes(n, n_bits) -> int``. Taught in: 04_quantization"""
    for n, b in [(8, 1), (10, 3), (1, 1), (1_000_000, 3), (7, 5), (3, 12), (0, 4), (512 * 2000, 2)]:
        got, want = _call(fn, n, b), packed_bytes_reference(n, b)
        if isinstance(got, bool) or not np.isscalar(got) or float(got) != int(got):
            _fail(f"for n={n}, n_bits={b} you returned {got!r}, expected the whole number {want}",
                  "a file holds whole bytes: round the bits up to full bytes with math.ceil and return an int")
        got = int(got)
        if got == want:
            continue
        hint = ("codes packed back to back leave no gaps; a byte holds 8 bits, and a last byte that is only "
                "partly used is still stored, so round up to whole bytes")
        if got == n * b:
            hint = "that is the number of bits; a byte holds 8. " + hint
        elif got == n * b // 8:
            hint = "rounding down drops the last partial byte, which still has to be stored. " + hint
        elif got == n * math.ceil(b / 8):
            hint = "that stores every code in its own whole byte(s); packing puts codes back to back. " + hint
        _fail(f"for n={n} codes of n_bits={b} you returned {got} bytes, expected {want}", hint)
    return "✓ packed_bytes is right"


def best_frac_bits_reference(W, word_bits) -> int:
    """The F in ``FRAC_CANDIDATES`` minimising the MSE of W/F fixed point (smallest F on ties).
    Taught in: 04_quantization"""
    return quant.best_frac_bits(W, word_bits=word_bits, frac_range=FRAC_CANDIDATES)


def _frac_cases():
    rng = np.random.default_rng(7)
    w = rng.normal(0, 0.03, 2000)
    w[:3] = [0.21, -0.18, 0.15]  # a few large weights, as in a trained layer
    return [(w, 8), (w, 4), (w, 2), (rng.normal(0, 2.0, 300), 6), (np.array([0.5, -0.25, 0.126]), 3)]


def check_best_frac_bits(fn) -> str:
    """Check the student's ``best_frac_bits(W, word_bits) -> int``. Taught in: 04_quantization"""
    for W, wb in _frac_cases():
        got = _call(fn, W, wb)
        want = best_frac_bits_reference(W, wb)
        if isinstance(got, bool) or not np.isscalar(got) or float(got) != int(got):
            _fail(f"expected an integer F, got {got!r}", "return the F itself (an int), not its MSE")
        got = int(got)
        if got == want:
            continue
        mse = {f: quant.fixed_point_mse(W, word_bits=wb, frac_bits=f) for f in FRAC_CANDIDATES}
        lo, hi, _ = quant.fixed_point_range(word_bits=wb, frac_bits=want)
        no_clip = max(f for f in FRAC_CANDIDATES if quant.fixed_point_range(word_bits=wb, frac_bits=f)[1]
                      >= np.abs(W).max() and -quant.fixed_point_range(word_bits=wb, frac_bits=f)[0] >= np.abs(W).max())
        hint = ("measure the error of every candidate F in range(-8, 25) (quantise with quant.fixed_point, "
                "then the mean squared difference from W) and return the F with the smallest; a larger F is a "
                "finer step but a narrower range, so the best F balances rounding against clipping")
        if got == no_clip:
            hint = ("that is the largest F that clips nothing; with few bits, clipping a few large weights buys a "
                    "finer step for all the others, so measure the error instead. " + hint)
        elif got == max(FRAC_CANDIDATES) or got > want + 3:
            hint = "a very large F clips almost every weight to the range's end. " + hint
        if got in mse and np.isclose(mse[got], mse[want]):
            hint = "your F ties the best MSE; on ties return the smallest F (the widest range). " + hint
        _fail(f"for {np.size(W)} weights (max |w| {np.abs(W).max():.3g}) at word_bits={wb} you returned F={got} "
              f"(MSE {mse.get(got, float('nan')):.3g}), expected F={want} (MSE {mse[want]:.3g}: step 2^-{want}, "
              f"range [{lo:.4g}, {hi:.4g}])", hint)
    return "✓ best_frac_bits is right"


SOLUTIONS = {
    "symmetric_quantize": symmetric_quantize_reference,
    "packed_bytes": packed_bytes_reference,
    "best_frac_bits": best_frac_bits_reference,
}
