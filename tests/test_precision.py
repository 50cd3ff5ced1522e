"""Precision by capability (kpod.precision): bf16 only where the device computes it natively."""

from __future__ import annotations

import warnings

import pytest

from kpod.precision import Capabilities, parse_setting, resolve, resolve_dtype

AMX_XEON = Capabilities(cpu_flags=frozenset({"avx2", "avx512f", "amx_bf16"}), machine="x86_64")
AVX512_BF16 = Capabilities(cpu_flags=frozenset({"avx2", "avx512_bf16"}), machine="x86_64")
EPYC_AVX2 = Capabilities(cpu_flags=frozenset({"avx2", "fma"}), machine="x86_64")
ARM_BF16 = Capabilities(cpu_flags=frozenset({"asimd", "bf16"}), machine="aarch64")
ARM_PLAIN = Capabilities(cpu_flags=frozenset({"asimd"}), machine="aarch64")
A100 = Capabilities(
    cuda=True, cuda_bf16=True, cuda_name="A100", cpu_flags=EPYC_AVX2.cpu_flags, machine="x86_64"
)
T4 = Capabilities(
    cuda=True, cuda_bf16=False, cuda_name="T4", cpu_flags=AMX_XEON.cpu_flags, machine="x86_64"
)


@pytest.mark.parametrize(
    ("caps", "bf16", "device"),
    [
        (AMX_XEON, True, "cpu"),
        (AVX512_BF16, True, "cpu"),
        (EPYC_AVX2, False, "cpu"),
        (ARM_BF16, True, "cpu"),
        (ARM_PLAIN, False, "cpu"),
        (A100, True, "cuda"),
        (T4, False, "cuda"),
    ],
)
def test_auto_picks_bf16_only_where_native(caps: Capabilities, bf16: bool, device: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        p = resolve("auto", caps)
    assert (p.bf16, p.device) == (bf16, device)
    assert p.dtype == ("bfloat16" if bf16 else "float32")
    assert "auto" in p.reason


def test_use_cpu_resolves_on_the_cpu_even_with_cuda() -> None:
    # A100 host with an AVX2-only CPU: forced onto the CPU, auto must mean float32.
    on_cpu = resolve("auto", A100, use_cpu=True)
    assert (on_cpu.bf16, on_cpu.device) == (False, "cpu")
    # T4 (no bf16) in an AMX host: the CPU can.
    assert resolve("auto", T4, use_cpu=True).bf16


def test_explicit_bf16_on_emulating_cpu_warns_with_cost_and_fix() -> None:
    with pytest.warns(RuntimeWarning, match=r"14\.5 s.*9\.5 minutes.*bf16: auto"):
        p = resolve(True, EPYC_AVX2)
    assert p.bf16  # obeyed
    with pytest.warns(RuntimeWarning, match="does not support bf16"):
        resolve("true", T4)


def test_explicit_settings_do_not_warn_where_native_or_off() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve(True, AMX_XEON).bf16
        assert not resolve(False, AMX_XEON).bf16
        assert not resolve("false", EPYC_AVX2).bf16


def test_parse_setting_accepts_config_and_cli_spellings() -> None:
    assert parse_setting(None) == "auto"
    assert parse_setting("AUTO") == "auto"
    assert parse_setting("true") is True and parse_setting("no") is False
    with pytest.raises(ValueError, match="bf16 must be true, false or 'auto', got 'fast'"):
        parse_setting("fast")


def test_resolve_dtype() -> None:
    assert resolve_dtype("auto", AMX_XEON) == "bfloat16"
    assert resolve_dtype(None, EPYC_AVX2) == "float32"
    assert resolve_dtype("float16", EPYC_AVX2) == "float16"
    with pytest.warns(RuntimeWarning, match="emulated"):
        assert resolve_dtype("bfloat16", EPYC_AVX2) == "bfloat16"


def test_training_configs_resolve_auto_on_this_machine() -> None:
    pytest.importorskip("torch")
    from kpod.precision import detect
    from kpod.training.config import KpodConfig
    from kpod.weighting.train import WeightingConfig

    want = resolve("auto", detect(), use_cpu=True)
    for cls in (KpodConfig, WeightingConfig):
        cfg = cls(output_dir="unused", bf16="auto", use_cpu=True)  # type: ignore[arg-type]
        assert cfg.bf16 is want.bf16
        default = cls(output_dir="unused", use_cpu=True)
        assert default.bf16 is want.bf16
        off = cls(output_dir="unused", bf16=False)
        assert off.bf16 is False


def test_env_override_decides_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from kpod import precision

    for value, native in (("0", False), ("1", True)):
        monkeypatch.setenv("KPOD_CPU_BF16", value)
        precision.detect.cache_clear()
        try:
            assert precision.detect().cpu_native_bf16 is native
        finally:
            precision.detect.cache_clear()
