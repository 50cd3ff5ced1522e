"""The CLI on a numpy-only install (`pip install kpod`, no extras).

Each test runs the CLI in a fresh interpreter. Where the optional stack must be
absent, an import hook makes torch, yaml, pyarrow & co. unimportable, as they
are in a base install (this environment has them installed).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets", "yaml", "pyarrow", "sklearn", "tqdm", "peft")

# Runs kpod.cli.main(argv) with HEAVY unimportable, or (argv None) prints which
# HEAVY modules `import kpod` + building the parser loaded.
_DRIVER = textwrap.dedent(
    """
    import importlib.abc, json, sys
    heavy, block, argv = json.loads(sys.argv[1])

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in heavy:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    if block:
        sys.meta_path.insert(0, Block())
    import kpod.cli
    if argv is None:
        import kpod
        kpod.cli.build_parser()
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
    else:
        raise SystemExit(kpod.cli.main(argv))
    """
)


def _kpod(argv: list[str] | None, *, block: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps([HEAVY, block, argv])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_import_kpod_and_help_load_no_heavy_module() -> None:
    # Not blocked: the modules are installed here, so this fails if any command
    # module (or kpod/__init__) imports one of them at import time.
    proc = _kpod(None, block=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_help_lists_the_base_commands_without_the_training_stack() -> None:
    proc = _kpod(["--help"])
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "train", "bench", "schedule"):
        assert re.search(rf"^\s+{command}\s", proc.stdout, re.M), proc.stdout


def test_version_is_the_one_declared_in_cargo_toml() -> None:
    cargo = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    m = re.search(r'^version\s*=\s*"([^"]+)"', cargo, re.M)
    assert m is not None
    proc = _kpod(["--version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"kpod {m.group(1)}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert not re.search(r"^version\s*=", pyproject, re.M), "declare the version in Cargo.toml"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "examples/demo.yaml", "--set", "training.num_train_epochs=1"],
        ["run", "examples/demo.yaml"],
        ["data", "inspect", "examples/data/gsm8k_train.jsonl", "--tokenizer", "smollm2-135m"],
    ],
)
def test_a_training_command_names_the_extra_instead_of_a_traceback(argv: list[str]) -> None:
    proc = _kpod(argv)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"kpod {argv[0]}: error:" in proc.stderr
    assert 'pip install "kpod[train]"' in proc.stderr


def test_missing_extra_message_maps_modules_to_extras() -> None:
    from kpod.cli import missing_extra_message

    def msg(name: str) -> str | None:
        return missing_extra_message(ModuleNotFoundError(f"No module named {name!r}", name=name))

    assert 'pip install "kpod[train]"' in (msg("torch.nn") or "")
    assert 'pip install "kpod[parquet]"' in (msg("pyarrow") or "")
    assert 'pip install "kpod[bench]"' in (msg("submodlib") or "")
    assert msg("kpod.nonexistent") is None  # a real bug stays a traceback
