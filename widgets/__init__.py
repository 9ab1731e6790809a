"""Interactive explorers (ipywidgets + altair), shipped as ``thinlab.widgets``."""
