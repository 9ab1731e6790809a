"""thinlab: a notebook-first course on neural-network compression.

Kernels (``prune``, ``lowrank``, ``deepthin``, ``hashednet``, ``quant``,
``fp16``, ``size``) depend on numpy only; ``layers`` wraps them for torch;
``charts`` depends on altair only; ``data``/``models``/``train`` feed the
lessons. See ``../shared/DESIGN.md``.
"""

__version__ = "0.1.0"
