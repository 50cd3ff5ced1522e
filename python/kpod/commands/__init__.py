"""Command groups of the ``kpod`` CLI; each module exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
from typing import Any


def parse_set(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE`` (``kpod run``, ``kpod train``): the key and its value read as YAML.

    YAML reads numbers, ``true``/``false``, ``null``, lists and mappings, and
    leaves other text a string. A number JSON reads but YAML 1.1 leaves as text
    (``1e-4``: YAML wants ``1.0e-4``) is a number too. A bare ``no`` is YAML's
    false; the configs turn it back into ``"no"`` for the ``*_strategy`` fields.
    """
    import json

    # yaml is in the `train` extra: imported here, not at module import, so that
    # `kpod --help` works on a numpy-only install (kpod.cli names the extra).
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, got {text!r}")
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            number = json.loads(raw)
        except ValueError:
            return key.strip(), value
        if isinstance(number, (int, float)):
            return key.strip(), number
    return key.strip(), value
