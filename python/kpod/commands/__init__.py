"""Command groups of the ``kpod`` CLI; each module exposes ``register(subparsers)``."""
