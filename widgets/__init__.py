"""Interactive explorers (ipywidgets + altair), shipped as ``thinlab.widgets``.

Each factory returns an explorer object: display it (or its ``.widget``) in a notebook, move
its ``.slider``; ``.update(value)``, ``.state``, ``.readout``, ``.chart`` and ``.spec`` are there
for code and tests. Widgets never train: pass ``evaluate`` (compressed weight → accuracy) to see
the accuracy of each setting, memoised per slider value.

In a saved notebook an explorer reads "<name> (<its last title>): run the notebook to move the
slider" instead of the raw ``VBox(children=…`` text; run headless (papermill, the grader, CI:
``THINLAB_HEADLESS=1``) it also saves a static image of its chart and readout (see ``base``).
Every chart fits a 900-px notebook column.

============================  ==========================================  ===============
``prune_explorer(W)``         sparsity → histogram, mask, CSR bytes         01_pruning
``rank_explorer(W)``          rank → rank-k weights, spectrum, error        02_svd
``deepthin_explorer(W)``      factor → solver's m, n, r, LCM rule, weights  03_deepthin
``bits_explorer(W)``          bits + method → levels, MSE/SNR, bytes        04_quantization
============================  ==========================================  ===============
"""
from .base import Explorer
from .bits import BitsExplorer, bits_explorer
from .deepthin import DeepThinExplorer, deepthin_explorer
from .rank import RankExplorer, rank_explorer
from .ratio import PruneExplorer, prune_explorer

__all__ = ["BitsExplorer", "DeepThinExplorer", "Explorer", "PruneExplorer", "RankExplorer", "bits_explorer",
           "deepthin_explorer", "prune_explorer", "rank_explorer"]
