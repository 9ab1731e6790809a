"""The experiments the lessons run, as tested library functions.

* shared by every lesson: :mod:`~thinlab.experiments.setup` (threads, device, data, baseline,
  speaker-aware scoring in one call) and :mod:`~thinlab.experiments.timing` (the one timer);
* the DeepThin paper's comparison: :mod:`~thinlab.experiments.compare`,
  :mod:`~thinlab.experiments.deepthin_rank`;
* gradual pruning: :mod:`~thinlab.experiments.gradual` (the one schedule);
* quantisation sweeps: :mod:`~thinlab.experiments.quant_sweep`;
* the prune → factorize → quantize pipeline with distillation and the Pareto front:
  :mod:`~thinlab.experiments.pipeline`, :mod:`~thinlab.experiments.pareto`;
* one study module per lesson for its inline experiments: ``speech`` (00), ``prune_study`` (01),
  ``lowrank_study`` (02), ``deepthin_study`` (03), ``quant_study`` (04), ``precision_study`` (05),
  ``deploy_study`` (07).

Experiments use :mod:`thinlab.nn`, :mod:`thinlab.train` and the numpy kernels; nothing below them
imports this package.

Taught in: 00_speech_commands … 07_deploy
"""
