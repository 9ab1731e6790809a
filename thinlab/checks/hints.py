"""Tiered hints for every exercise: the concept, then the approach, then the shape of the code –
never the answer itself.

A lesson shows them with ``checks.hints("magnitude_prune")``: in a notebook each tier is a
collapsed section the student opens one at a time; as text (a terminal, a headless run) the three
tiers are listed. ``tests/test_checks_hints.py`` checks that every exercise in ``SOLUTIONS`` has
three tiers and that no tier contains its reference solution's code.

Taught in: every lesson's "your turn" cells
"""
from __future__ import annotations

import html
from dataclasses import dataclass

TIERS = ("concept", "approach", "shape of the code")


@dataclass(frozen=True)
class Hints:
    """Three tiers of hints for one exercise. Taught in: every lesson's "your turn" cells"""

    exercise: str
    concept: str
    approach: str
    shape: str

    def tiers(self) -> tuple[str, str, str]:
        return self.concept, self.approach, self.shape

    def __str__(self) -> str:
        return "\n".join(f"Hint {i + 1} ({name}): {text}" for i, (name, text) in enumerate(zip(TIERS, self.tiers())))

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        # the shape of the code keeps its line breaks and indentation (a skeleton with blanks)
        parts = [f"<details><summary>Hint {i + 1}: {name}</summary>"
                 + (f"<pre>{html.escape(text)}</pre>" if "\n" in text else f"<p>{html.escape(text)}</p>")
                 + "</details>"
                 for i, (name, text) in enumerate(zip(TIERS, self.tiers()))]
        return (f"<div class='thinlab-hints'><b>Stuck on <code>{html.escape(self.exercise)}</code>?</b> "
                "Open one hint at a time." + "".join(parts) + "</div>")


#: exercise name (as in ``checks.SOLUTIONS``) → (concept, approach, shape of the code). Tier 3 names the
#: functions to use and shows a skeleton with blanks (``___``); filling the blanks is the exercise.
HINTS: dict[str, tuple[str, str, str]] = {
    # ---------------------------------------------------------------- 00_speech_commands
    "speaker_overlap": (
        "A speaker 'leaks' when the same speaker id occurs in both splits, no matter how many clips each "
        "split holds. Counting clips is not the question: only which ids are shared.",
        "Reduce each array to its distinct ids first (a Python set does that), then keep the ids that are "
        "in the first collection and also in the second. Return a set.",
        "def speaker_overlap(speakers_a, speakers_b):\n"
        "    ids_a = ___(speakers_a)      # distinct ids of split a\n"
        "    ids_b = ___(speakers_b)\n"
        "    return ___                   # the ids found in both (a set operator does it)",
    ),
    "accuracy_from_confusion": (
        "Each cell cm[i, j] counts clips of true class i that were predicted as class j. A prediction is "
        "right exactly when the predicted class is the true class.",
        "Add up the cells where row index equals column index (the correct predictions), add up all cells "
        "(every prediction), and divide the first by the second.",
        "correct = ___   # numpy has a function that sums the main diagonal\n"
        "total = ___     # every cell of cm\n"
        "return float(___ / ___)",
    ),
    # ---------------------------------------------------------------- 01_pruning
    "magnitude_prune": (
        "A weight's importance is its size |w|, whatever its sign: -2 matters more than 0.1. Pruning to "
        "sparsity s removes the k = round(s * W.size) least important weights and keeps the rest unchanged.",
        "Compute k. Rank all entries of W by their absolute value over the whole array (not per row), pick "
        "the positions of the k smallest, and set those positions to 0 in a copy of W. Leave the caller's W "
        "untouched and return the copy, same shape.",
        "Useful: np.abs, np.argsort (axis=None ranks the flattened array), ndarray.copy, ndarray.ravel "
        "(a flat view you can assign into).\n"
        "k = int(round(___ * ___))\n"
        "out = ___                    # a copy, so the dense W survives\n"
        "order = ___                  # flat positions, smallest magnitude first\n"
        "out.ravel()[___] = 0         # the first k of them\n"
        "return out",
    ),
    "csr_bytes": (
        "CSR keeps three arrays and the shape: one value per nonzero, one column index per nonzero, and one "
        "pointer per row plus one more. An index array costs the width of the smallest unsigned integer that "
        "can hold its largest entry, not always 4 bytes.",
        "Count the four parts separately and add them: values (float32, 4 bytes each), column indices (their "
        "largest value is the last column), row pointers (their largest value is nnz), and the shape (two "
        "uint32). thinlab.size.index_bytes(n) gives the width that holds n.",
        "rows, cols = shape\n"
        "values = ___ * 4\n"
        "col_index = ___ * index_bytes(___)   # how many indices, and the largest one\n"
        "row_ptr = ___ * index_bytes(___)     # how many pointers, and the largest one\n"
        "shape_part = ___                     # two uint32\n"
        "return values + col_index + row_ptr + shape_part",
    ),
    "break_even_density": (
        "Every nonzero kept in CSR pays for its value and its column index, and the row pointers and the "
        "shape cost bytes even when nnz = 0. So CSR is smaller than the dense float32 matrix only while nnz "
        "stays below some count, which is well under rows * cols.",
        "CSR bytes only grow with nnz, so the answer is the largest nnz whose csr_bytes still fit in the dense "
        "bytes 4 * rows * cols. Search for it (count nnz up from 0, or down from rows * cols, and stop at the "
        "last one that fits; or solve the inequality), then turn it into a density by dividing by the number "
        "of weights.",
        "Use your csr_bytes (or thinlab.prune.csr_bytes).\n"
        "rows, cols = shape\n"
        "dense = ___\n"
        "nnz = ___                       # start where it surely fits\n"
        "while ___:                      # does one more nonzero still fit?\n"
        "    nnz = ___\n"
        "return ___ / ___",
    ),
    # ---------------------------------------------------------------- 02_svd
    "truncated_svd": (
        "The SVD writes W as a sum of rank-1 pieces, one per singular value, largest first. Eckart-Young: the "
        "best rank-k approximation keeps the k pieces with the largest singular values and drops the rest.",
        "Take the thin SVD of W. Keep the first k left singular vectors (columns of U), the first k singular "
        "values and the first k right singular vectors (rows of Vt). Fold the singular values into one of the "
        "factors so that you return exactly two matrices, A of shape (Q, k) and B of shape (k, R).",
        "U, s, Vt = np.linalg.svd(W, full_matrices=False)   # U (Q, q), s (q,), Vt (q, R)\n"
        "A = ___   # (Q, k): the kept columns of U, each scaled by its singular value (broadcasting)\n"
        "B = ___   # (k, R): the kept rows of Vt\n"
        "return A, B",
    ),
    "lowrank_bytes": (
        "A rank-k factorisation stores two small matrices instead of one big one; its size grows linearly "
        "with k. A file also records each factor's shape.",
        "Count the float32 values in A (Q, k) and in B (k, R) and multiply by 4 bytes; then add each factor's "
        "shape, 2 dimensions of 4 bytes (uint32) per factor. Return an int.",
        "Q, R = shape\n"
        "n_values = ___ + ___          # entries of A plus entries of B\n"
        "shapes = ___                  # two factors, each 2 dimensions of 4 bytes\n"
        "return int(___ * n_values + shapes)",
    ),
    "rank_for_budget": (
        "Bytes grow with the rank, so a budget allows every rank up to some largest one. A (Q, R) matrix has "
        "rank at most min(Q, R), so no answer can be above that, however big the budget.",
        "Either loop k = 1, 2, ... and keep the last k whose lowrank_bytes is still at most max_bytes, or "
        "solve the inequality 'bytes(k) <= max_bytes' for k (the shapes cost the same for every k) and round "
        "down. Then cap the result at min(Q, R).",
        "Use your lowrank_bytes.\n"
        "Q, R = shape\n"
        "best = ___\n"
        "for k in range(1, ___):       # every rank the matrix can have\n"
        "    if ___:                   # does rank k fit the budget?\n"
        "        best = k\n"
        "return best",
    ),
    # ---------------------------------------------------------------- 03_deepthin
    "relayout": (
        "DeepThin computes a small W_aux (m, n) and reads it as one long stream of numbers, row after row. W "
        "is filled from that stream column by column: column 0 takes the first Q numbers, column 1 the next "
        "Q, and so on. W_aux may hold a few numbers more than W needs; the extra ones at the end are unused.",
        "Flatten W_aux in row-major (C) order, keep the first Q*R numbers, and arrange them so that consecutive "
        "runs of Q numbers become the columns of W. numpy's reshape fills rows, so build the array with one "
        "row per column of W and transpose it (or tell reshape to fill in column-major order). Return a new "
        "array of shape (Q, R).",
        "Useful: ndarray.reshape, slicing, .T (transpose), .copy().\n"
        "flat = ___          # 1-D, row-major, only the first Q*R numbers\n"
        "cols = ___          # shape (R, Q): row j is what column j of W must hold\n"
        "return ___          # shape (Q, R), a new array",
    ),
    "n_alignments": (
        "Column j of W starts at position j*Q of the stream, i.e. at offset (j*Q) mod n inside a W_aux row. "
        "Adding Q again and again modulo n only ever lands on multiples of gcd(n, Q), and it cycles through "
        "all of them before repeating.",
        "Count the offsets that can occur at all (how many multiples of g = gcd(n, Q) lie in 0 ... n-1), then "
        "remember there are only R columns: the number of different offsets cannot exceed R. "
        "(A brute-force set of the R offsets is a good way to test your formula on small numbers.)",
        "Useful: math.gcd, integer division //, min.\n"
        "g = ___             # the step between the offsets that occur\n"
        "possible = ___      # how many multiples of g fit below n\n"
        "return ___          # but at most one per column",
    ),
    "lower_bound": (
        "DeepThin's smallest layer is rank 1 with W_aux (m, n) just big enough: m*n >= Q*R. At rank 1 the "
        "factors hold m + n numbers, so the smallest layer is the pair of whole numbers with the smallest sum "
        "whose product still covers Q*R; for a given n the smallest m is the ceiling of Q*R / n.",
        "Try widths n near sqrt(Q*R) (a few on each side is enough; a range over all n works too), compute m "
        "for each, and keep the smallest m + n. Turn it into bytes the way the lesson counts them (float32 "
        "values plus the two 8-byte factor shapes) and divide by the dense bytes of W.",
        "Useful: math.isqrt or math.sqrt, math.ceil (or -(-a // b)), min.\n"
        "best_sum = ___                       # smallest m + n over the widths n you try\n"
        "for n in range(___, ___):\n"
        "    m = ___                          # smallest m with m * n >= Q * R\n"
        "    best_sum = ___\n"
        "return (___) / (___)                 # bytes at rank 1 over dense bytes",
    ),
    # ---------------------------------------------------------------- 04_quantization
    "best_frac_bits": (
        "With W bits in all, F fraction bits set the step 2**-F and the range: a larger F rounds every weight "
        "more finely but clips more of the large ones. The best F balances rounding error against clipping "
        "error, and the only reliable way to find it is to measure.",
        "For every candidate F in range(-8, 25), quantise W with quant.fixed_point(W, word_bits=..., "
        "frac_bits=F), measure the mean squared error against W, and return the F (an int, not the error) "
        "with the smallest error; on a tie keep the smallest F.",
        "errors = []\n"
        "for F in range(-8, 25):\n"
        "    W_hat = ___\n"
        "    errors.append(___)         # mean squared error of W_hat\n"
        "return ___                     # the F whose error is smallest (np.argmin gives the first index)",
    ),
    "symmetric_quantize": (
        "Quantising maps each weight to an integer code (how many steps of size scale it is from 0); "
        "dequantising maps the code back to a float. Symmetric n-bit codes use the range given in the "
        "docstring, the same on both sides of 0, so +x and -x are treated alike; weights beyond it saturate.",
        "Divide by the scale, round to the nearest integer, clip the codes to the symmetric range (the "
        "largest code is one below 2 to the power n_bits - 1), and multiply the codes by the scale again. "
        "Do not change W in place.",
        "Useful: np.round (or np.rint), np.clip.\n"
        "qmax = ___                     # the largest code\n"
        "codes = ___                    # rounded to the nearest step, then clipped to [-qmax, qmax]\n"
        "return ___                     # back to the weights' units",
    ),
    "packed_bytes": (
        "Packed codes sit back to back, so n codes of b bits take n*b bits in all. Files hold whole bytes: "
        "a last byte that is only partly used still has to be stored.",
        "Work out the total number of bits, then the number of 8-bit bytes needed to hold them, rounding up, "
        "never down. Return an int.",
        "Useful: math.ceil, or integer division on a shifted numerator.\n"
        "bits = ___\n"
        "return ___                     # whole bytes that hold all the bits",
    ),
    # ---------------------------------------------------------------- 05_fp16_transfer
    "float_spacing": (
        "A binary float is 1.f * 2**e with m stored fraction bits: between 2**e and 2**(e+1) the numbers are "
        "evenly spaced, 2**e / 2**m apart. Below the smallest normal number the exponent cannot go lower, so "
        "the subnormals keep the spacing of the lowest exponent.",
        "Find the exponent e of |x| (the integer part of log2 |x|, rounded down), do not let it go below "
        "min_exponent, and return 2 raised to that exponent minus mantissa_bits. For x = 0 use min_exponent.",
        "Useful: math.frexp (x = f * 2**k with f in [0.5, 1), so the exponent is k - 1) or math.floor(math.log2(...)).\n"
        "e = ___                        # exponent of |x|\n"
        "e = ___                        # not below min_exponent (subnormals)\n"
        "return ___                     # the gap at exponent e with mantissa_bits fraction bits",
    ),
    "underflows": (
        "float16 has subnormal numbers down to 2**-24, and rounding to the nearest representable number sends "
        "anything closer to 0 than to that smallest subnormal to 0. Exactly halfway is a tie, which rounds to "
        "the neighbour with an even last bit: 0. And 0 itself loses nothing, so it does not 'underflow'.",
        "A nonzero x underflows when its magnitude is at most half of the smallest float16 subnormal. "
        "Compare the magnitude with that threshold (mind which side the tie falls on) and return a bool.",
        "Useful: abs, the threshold written as a power of two, bool(...).\n"
        "threshold = ___                # half of float16's smallest subnormal\n"
        "return bool(___ and ___)       # nonzero, and small enough to round to 0",
    ),
    "loss_scale_update": (
        "Dynamic loss scaling keeps the scale as high as it can without overflow: an overflow means the scale "
        "is too high right now, a long run of good steps means it can probably go higher.",
        "Two cases. Overflow: skip this step, shrink the scale by backoff_factor and restart the count of good "
        "steps. No overflow: take the step and count it; only when the count reaches growth_interval grow the "
        "scale by growth_factor and restart the count. Return all three values.",
        "if ___:                        # an overflow this step?\n"
        "    return ___, ___, ___       # new scale, new count, skip?\n"
        "count = ___\n"
        "if ___:                        # enough good steps in a row\n"
        "    return ___, ___, ___\n"
        "return ___, ___, ___",
    ),
    # ---------------------------------------------------------------- 06_pipeline
    "stage_factors": (
        "A compression factor compares sizes before and after: 'before / after', so 3.0 means three times "
        "smaller. Factors of consecutive stages multiply, so the total is the dense size over the final size.",
        "Walk along the list in pairs of neighbours (previous entry, this entry) and compute one factor per "
        "pair; the first entry (the dense model) has no factor of its own. The total compares the first and "
        "the last entries. Return both.",
        "Useful: zip(lst, lst[1:]) pairs neighbours.\n"
        "factors = [___ for before, after in ___]\n"
        "total = ___\n"
        "return factors, total",
    ),
    "distillation_loss": (
        "Distillation mixes two targets: the teacher's softened probabilities (a KL divergence at temperature "
        "T, scaled by T² so its gradients match the other term) and the true labels (the ordinary "
        "cross-entropy at T = 1), weighted alpha and 1 - alpha.",
        "Write a numerically stable log-softmax over the class axis (subtract each row's max first). With it: "
        "the teacher's and the student's log-probabilities at T, the KL divergence of the teacher from the "
        "student per example (sum over classes of p_teacher times the difference of the logs), the "
        "cross-entropy of the plain student logits at the true labels, each averaged over the batch; then "
        "combine them as in the formula.",
        "Useful: np.max/np.exp/np.log with keepdims=True, fancy indexing rows[np.arange(B), y].\n"
        "def log_softmax(z):            # z (B, C)\n"
        "    z = ___                    # shift each row by its max\n"
        "    return ___                 # z minus the log of the row sums of exp(z)\n"
        "log_p_t, log_p_s = ___, ___    # at temperature T\n"
        "kl = ___                       # (B,) summed over classes, then the batch mean\n"
        "ce = ___                       # batch mean of -log p_student(y) at T = 1\n"
        "return float(___)",
    ),
    # ---------------------------------------------------------------- 07_deploy
    "export_int8": (
        "onnxruntime quantises a model file, not a torch model: first the torch model is written to a float32 "
        "ONNX file, then that file is rewritten with 8-bit weights. Static int8 also needs sample inputs to fix "
        "each activation's range; dynamic int8 measures them on every batch.",
        "Pick a path for the float32 file next to the one you were given, export the model there with "
        "deploy.export_onnx (it takes sample inputs), then call deploy.quantize_int8 to write the int8 file to "
        "path (mode 'dynamic' or 'static'; static uses the calibration features). Return the int8 path.",
        "fp32_path = ___                # e.g. built from path with Path.with_name\n"
        "deploy.export_onnx(___, ___, ___)\n"
        "deploy.quantize_int8(___, ___, mode=___)\n"
        "return ___",
    ),
}


def hints(exercise: str) -> Hints:
    """The tiered hints of ``exercise`` (a key of ``checks.SOLUTIONS``).

    Taught in: every lesson's "your turn" cells
    """
    if exercise not in HINTS:
        raise KeyError(f"no hints for exercise {exercise!r}; exercises with hints: {sorted(HINTS)}")
    return Hints(exercise, *HINTS[exercise])
