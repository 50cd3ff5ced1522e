"""kpod: Keypoint-based Progressive Chain-of-Thought Distillation (Feng et al., ICML 2024).

``import kpod`` needs numpy only. The scheduler (:func:`kpod.select`,
:class:`kpod.Curriculum`) lives in the native core; the training stack
(``kpod.data``, ``kpod.weighting``, ``kpod.training``) needs the ``kpod[train]``
extra and is imported lazily, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Curriculum", "Selection", "StageResult", "__version__", "select"]

if TYPE_CHECKING:  # pragma: no cover
    from kpod.schedule import Curriculum, Selection, StageResult, select

    __version__: str


def __getattr__(name: str) -> Any:
    # Lazy so that `import kpod` stays cheap and a missing native build only
    # fails where the scheduler is actually used.
    if name in {"select", "Selection", "Curriculum", "StageResult"}:
        from kpod import schedule

        return getattr(schedule, name)
    if name == "__version__":
        # Declared once, in Cargo.toml; maturin copies it into the package
        # metadata (pyproject.toml's version is dynamic).
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("kpod")
        except PackageNotFoundError:  # pragma: no cover - a source tree never installed
            return "0+unknown"
    raise AttributeError(f"module 'kpod' has no attribute {name!r}")
