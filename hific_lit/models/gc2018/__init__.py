"""GC2018: extreme-rate generative compression (Agustsson et al. 2018, arXiv:1804.02958) on hific-lit's bitstreams.

Networks and coding only (no Lightning): :mod:`~hific_lit.models.gc2018.model` (:class:`GC2018`, the codec),
:mod:`~hific_lit.models.gc2018.arch` (:class:`GC2018Config`, the presets), :mod:`~hific_lit.models.gc2018.bottleneck`
(the L-center quantizer and the categorical prior), :mod:`~hific_lit.models.gc2018.discriminator` (the
multi-scale D). The training stages and D's losses are in :mod:`hific_lit.training.gc2018` and
:mod:`hific_lit.training.gc2018_losses`.
"""
