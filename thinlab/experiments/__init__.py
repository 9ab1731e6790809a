"""The experiments the lessons run, as tested library functions: the DeepThin paper's comparison
(:mod:`~thinlab.experiments.compare`, :mod:`~thinlab.experiments.deepthin_rank`), gradual pruning
(:mod:`~thinlab.experiments.gradual`), quantisation sweeps (:mod:`~thinlab.experiments.quant_sweep`),
the prune → factorize → quantize pipeline with distillation (:mod:`~thinlab.experiments.pipeline`)
and timing (:mod:`~thinlab.experiments.timing`).

Experiments use :mod:`thinlab.nn`, :mod:`thinlab.train` and the numpy kernels; nothing below them
imports this package.

Taught in: 01_pruning … 07_deploy
"""
