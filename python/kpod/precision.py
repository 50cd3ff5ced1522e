"""Precision by capability: bf16 where the hardware computes it natively, float32 elsewhere.

Every ``bf16`` / ``dtype`` setting in kpod accepts ``"auto"`` (the default).
``auto`` means bf16 on a CUDA device that supports it and on a CPU with native
bf16 units (AVX512-BF16 or AMX on x86, the ``bf16`` feature on Arm), float32
otherwise. The reason matters: on a CPU without native bf16, PyTorch emulates
bf16 autocast and a training step becomes dozens of times slower than float32
(measured on a 2-core AMD EPYC with AVX2 only: a SmolLM2-135M forward +
backward at 8 x 256 tokens took 14.5 s in float32 and had not finished after
9.5 minutes under bf16 autocast). An explicit ``bf16: true`` on such a CPU is
obeyed, with a warning naming that cost and the fix.

The resolution is a pure function of :class:`Capabilities`, so it is tested on
every kind of machine it distinguishes without owning one. Nothing here
imports torch at module level.

``KPOD_CPU_BF16=0`` (or ``1``) overrides what the CPU is taken to compute
natively: kpod's own test suite sets 0 so that its numerics do not depend on
the machine it runs on.
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Setting = bool | Literal["auto"]

#: /proc/cpuinfo flags that mean the CPU computes bf16 natively.
X86_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
ARM_BF16_FLAGS = frozenset({"bf16"})

SLOW_CPU_BF16 = (
    "bf16 on a CPU without native bf16 units (no AVX512-BF16 or AMX) is emulated and far "
    "slower than float32: a SmolLM2-135M training step at 8 x 256 tokens took 14.5 s in "
    "float32 and did not finish in 9.5 minutes under bf16 autocast (2-core AMD EPYC, AVX2). "
    "Use bf16: auto (the default) or false"
)


@dataclass(frozen=True)
class Capabilities:
    """What the machine offers, as far as precision is concerned."""

    cuda: bool = False
    cuda_bf16: bool = False
    cuda_name: str = ""
    cpu_flags: frozenset[str] = frozenset()
    cpu_model: str = ""
    machine: str = ""

    @property
    def cpu_native_bf16(self) -> bool:
        if self.machine.lower() in ("aarch64", "arm64"):
            return bool(self.cpu_flags & ARM_BF16_FLAGS)
        return bool(self.cpu_flags & X86_BF16_FLAGS)

    def cpu_description(self) -> str:
        native = sorted(self.cpu_flags & (X86_BF16_FLAGS | ARM_BF16_FLAGS))
        flags = ", ".join(native) if native else "no native bf16 flag"
        return f"{self.cpu_model or self.machine or 'CPU'} ({flags})"


@dataclass(frozen=True)
class Precision:
    """A resolved precision: whether to use bf16, on which device kind, and why."""

    bf16: bool
    device: Literal["cuda", "cpu"]
    reason: str

    @property
    def dtype(self) -> str:
        """The torch dtype name for weights or autocast: ``bfloat16`` or ``float32``."""
        return "bfloat16" if self.bf16 else "float32"


def _read_cpuinfo() -> tuple[frozenset[str], str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset(), platform.processor()
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
        if flags and model:
            break
    return frozenset(flags), model


@functools.lru_cache(maxsize=1)
def detect() -> Capabilities:
    """This machine's capabilities (imports torch for the CUDA part)."""
    flags, model = _read_cpuinfo()
    override = os.environ.get("KPOD_CPU_BF16", "").strip()
    if override in ("0", "1"):
        native = X86_BF16_FLAGS | ARM_BF16_FLAGS
        flags = (flags | {"avx512_bf16", "bf16"}) if override == "1" else (flags - native)
    cuda = cuda_bf16 = False
    name = ""
    try:
        import torch

        cuda = bool(torch.cuda.is_available())
        if cuda:
            cuda_bf16 = bool(torch.cuda.is_bf16_supported())
            name = str(torch.cuda.get_device_name(0))
    except ImportError:  # the scheduler-only install has no torch: CPU it is
        pass
    return Capabilities(
        cuda=cuda,
        cuda_bf16=cuda_bf16,
        cuda_name=name,
        cpu_flags=flags,
        cpu_model=model,
        machine=platform.machine(),
    )


def parse_setting(value: Any, name: str = "bf16") -> Setting:
    """``True``, ``False`` or ``"auto"`` from a config value, a CLI string or ``None`` (auto)."""
    if value is None or isinstance(value, bool):
        return "auto" if value is None else value
    if isinstance(value, str):
        low = value.strip().lower()
        if low == "auto":
            return "auto"
        if low in ("true", "yes", "on", "1", "bf16", "bfloat16"):
            return True
        if low in ("false", "no", "off", "0", "fp32", "float32"):
            return False
    raise ValueError(f"{name} must be true, false or 'auto', got {value!r}")


def resolve(
    value: Any = "auto",
    caps: Capabilities | None = None,
    *,
    use_cpu: bool = False,
    name: str = "bf16",
) -> Precision:
    """Resolve a ``bf16`` setting on ``caps`` (this machine when ``None``).

    ``use_cpu`` forces the CPU even where CUDA is available (the Trainer's
    ``use_cpu``). An explicit ``True`` that the device cannot compute natively
    warns (:data:`SLOW_CPU_BF16` on a CPU) but is obeyed.
    """
    setting = parse_setting(value, name)
    caps = detect() if caps is None else caps
    on_cuda = caps.cuda and not use_cpu
    if on_cuda:
        native = caps.cuda_bf16
        where = f"CUDA device {caps.cuda_name or '0'}"
        why_native = "supports bf16" if native else "does not support bf16"
    else:
        native = caps.cpu_native_bf16
        where = f"CPU {caps.cpu_description()}"
        why_native = "computes bf16 natively" if native else "has no native bf16 (emulated: slow)"
    device: Literal["cuda", "cpu"] = "cuda" if on_cuda else "cpu"
    if setting == "auto":
        return Precision(native, device, f"{name}=auto: {where} {why_native}")
    if setting and not native:
        message = SLOW_CPU_BF16 if device == "cpu" else f"{where} does not support bf16"
        warnings.warn(f"{name}=true on {where}: {message}", RuntimeWarning, stacklevel=3)
    return Precision(bool(setting), device, f"{name}={str(setting).lower()} (set explicitly)")


def resolve_dtype(
    value: Any = "auto", caps: Capabilities | None = None, name: str = "dtype"
) -> str:
    """A model ``dtype`` setting: ``auto`` becomes ``bfloat16`` or ``float32`` as :func:`resolve`.

    Other names (``float16``, ``float32``, ``bfloat16``) pass through;
    ``bfloat16`` on a device without native bf16 warns as in :func:`resolve`.
    """
    if value is None or (isinstance(value, str) and value.lower() == "auto"):
        p = resolve("auto", caps, name=name)
        announce(p)
        return p.dtype
    text = str(value).removeprefix("torch.")
    if text in ("bfloat16", "bf16"):
        resolve(True, caps, name=name)
        return "bfloat16"
    return text


_ANNOUNCED: set[str] = set()


def announce(p: Precision, what: str = "") -> None:
    """Print the resolved precision and its reason, once per distinct message."""
    line = f"kpod: precision {p.dtype}{' for ' + what if what else ''}: {p.reason}"
    if line not in _ANNOUNCED:
        _ANNOUNCED.add(line)
        print(line, flush=True)


def apply_to_training_args(args: Any, what: str) -> None:
    """Resolve ``args.bf16`` (a TrainingArguments subclass) before its ``__post_init__``.

    Also what the hardware implies: no pinned memory without an accelerator.

    bf16 on the CPU also sets ``use_cpu`` (the Trainer refuses bf16 without an
    accelerator unless ``use_cpu`` is set), so one config serves both kinds of
    machine.
    """
    use_cpu = bool(getattr(args, "use_cpu", False))
    if use_cpu or not detect().cuda:
        # Pinned memory only helps copies to an accelerator; without one torch warns
        # on every epoch that it is set but unused.
        args.dataloader_pin_memory = False
    if getattr(args, "fp16", False) and parse_setting(args.bf16) == "auto":
        args.bf16 = False
        return
    p = resolve(args.bf16, use_cpu=use_cpu)
    announce(p, what)
    args.bf16 = p.bf16
    if p.bf16 and p.device == "cpu":
        args.use_cpu = True


def add_bf16_argument(parser: Any, help_what: str = "bf16 mixed precision") -> None:
    """``--bf16 [auto|true|false]`` (default auto; a bare ``--bf16`` means true)."""
    parser.add_argument(
        "--bf16",
        nargs="?",
        const="true",
        default="auto",
        metavar="{auto,true,false}",
        help=f"{help_what}: auto = bf16 where the device computes it natively, float32 elsewhere",
    )
