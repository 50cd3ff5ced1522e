"""`kpod difficulty`, `kpod train` and `kpod eval` end to end on a tiny saved student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _training_toy import toy_dataset, toy_records
from kpod.cli import main
from kpod.testing import tiny_causal_lm, tiny_tokenizer

torch.set_num_threads(1)


def test_difficulty_train_eval_commands(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    student = tmp_path / "student"
    tiny_causal_lm(tok).save_pretrained(student)
    tok.save_pretrained(student)
    toy_dataset(tok, n=8).save_to_disk(str(tmp_path / "prepared"))

    scored = tmp_path / "scored"
    assert (
        main(
            [
                "difficulty",
                "--data",
                str(tmp_path / "prepared"),
                "--model",
                str(student),
                "--out",
                str(scored),
                "--batch-size",
                "4",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    import datasets

    ds = datasets.load_from_disk(str(scored))
    assert [len(d) for d in ds["step_difficulty"]] == list(ds["n_steps"])

    cfg = tmp_path / "kpod.yaml"
    cfg.write_text(
        "num_train_epochs: 2\nper_device_train_batch_size: 4\nlearning_rate: 0.003\n"
        "use_cpu: true\nreport_to: none\ndisable_tqdm: true\nsave_strategy: no\n"
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                str(student),
                "--data",
                str(scored),
                "--output-dir",
                str(out),
                "--config",
                str(cfg),
                "--set",
                "beta=6",
            ]
        )
        == 0
    )
    stages = [json.loads(x) for x in (out / "kpod_stages.jsonl").read_text().splitlines()]
    assert [s["stage"] for s in stages] == [1, 2]
    assert (out / "config.json").is_file()

    evalset = tmp_path / "svamp_like.jsonl"
    evalset.write_text(
        "\n".join(
            json.dumps({"question": r["question"], "answer": r["answer"]}) for r in toy_records(3)
        )
    )
    assert (
        main(
            [
                "eval",
                "--model",
                str(out),
                "--data",
                f"ood={evalset}",
                "--out",
                str(tmp_path / "ev"),
                "--max-new-tokens",
                "6",
                "--bootstrap",
                "50",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["ood"]["n"] == 3
    assert len((tmp_path / "ev" / "predictions-ood.jsonl").read_text().splitlines()) == 3

    assert (
        main(
            [
                "train",
                "--model",
                str(student),
                "--data",
                str(scored),
                "--output-dir",
                str(out),
                "--set",
                "no_such_field=1",
            ]
        )
        == 1
    )


def test_set_is_read_as_yaml_by_run_and_train() -> None:
    import argparse

    from kpod.cli import build_parser

    parser = build_parser()
    for argv in (
        ["run", "cfg.yaml"],
        ["train", "--model", "m", "--data", "d", "--output-dir", "o"],
    ):
        args = parser.parse_args(
            [*argv, "--set", "a.b=0.5", "--set", "lr=1e-4", "--set", "s=epoch", "--set", "x=[1, 2]"]
        )
        assert args.overrides == [("a.b", 0.5), ("lr", 1e-4), ("s", "epoch"), ("x", [1, 2])]
    from kpod.commands import parse_set

    assert parse_set("save_strategy=no") == ("save_strategy", False)  # configs read it as "no"
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        parse_set("no_equals_sign")
