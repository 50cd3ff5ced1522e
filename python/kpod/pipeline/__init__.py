"""``kpod run CONFIG.yaml``: the paper's Algorithm 1 end to end, cached step by step.

- :mod:`kpod.pipeline.config`: the YAML config as typed sections (:class:`RunConfig`).
- :mod:`kpod.pipeline.cache`: fingerprints, completion markers, resumption (:class:`StepCache`).
- :mod:`kpod.pipeline.steps`: the nine steps (:data:`STEPS`), :class:`Run` and :func:`run`;
  :func:`prepare_training_data` is the data step ``kpod data prepare`` shares.
- :mod:`kpod.pipeline.console`: the curriculum preview and the accuracy table.

Each step writes into ``<run_dir>/<step>/`` and is skipped when its marker
holds the fingerprint of everything it depends on: its config section, the
upstream steps' fingerprints, the content of the input files and the kpod
version. A step interrupted midway leaves no marker and is redone, except that
training resumes from its last checkpoint and evaluation from its saved
generations. Importing this package needs numpy only.
"""

from __future__ import annotations

from kpod.pipeline.cache import StepCache
from kpod.pipeline.config import RunConfig
from kpod.pipeline.steps import DEPENDS, STEPS, Run, prepare_training_data, run

__all__ = ["DEPENDS", "STEPS", "Run", "RunConfig", "StepCache", "prepare_training_data", "run"]
