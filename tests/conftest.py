"""Test-suite settings shared by every test module."""

from __future__ import annotations

import os

# precision="auto" resolves by the CPU's bf16 units; the suite pins it to float32 so
# that losses and generations do not depend on the machine it runs on (subprocesses
# such as the torchrun tests inherit it). tests/test_precision.py covers the resolution.
os.environ.setdefault("KPOD_CPU_BF16", "0")
