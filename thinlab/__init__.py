"""thinlab: a notebook-first course on neural-network compression.

Kernels (``prune``, ``lowrank``, ``deepthin``, ``hashednet``, ``quant``,
``precision``, ``size``) depend on numpy only; ``nn`` wraps them for torch
(with the registry of compression methods); ``experiments`` hold the drivers
the lessons run; ``charts`` depends on altair only; ``data``/``models``/
``train`` feed the lessons. See ``DESIGN.md`` in the repository.
"""

__version__ = "0.1.0"
