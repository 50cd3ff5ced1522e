"""Keypoint token weighting (kpod-method section 2, Eqs. 2-7).

Submodules: :mod:`~kpod.weighting.module` (the networks), :mod:`~kpod.weighting.losses`
(Eqs. 5-7 as pure functions), :mod:`~kpod.weighting.train` (Trainer-based
training), :mod:`~kpod.weighting.score` (the ``token_weights`` column),
:mod:`~kpod.weighting.view` (the Figure-2 style HTML/PNG view) and
:mod:`~kpod.weighting.analysis` (mean weight per token class).
This package imports torch; import it only where training is intended.
"""
