"""HiFiC (Mentzer et al. 2020): :mod:`~hific_lit.models.hific.arch` (the presets), :mod:`~hific_lit.models.hific.model`
(the codec), its coding path in latent bands and the reader of .hfc format version 1."""
