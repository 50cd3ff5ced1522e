"""KpodTrainer on tiny models: learning, ablations, resume, LoRA, Eq. 8 difficulty."""

from __future__ import annotations

import itertools
import json
import logging
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

import kpod
from _training_toy import toy_dataset, with_difficulty
from kpod.testing import tiny_causal_lm, tiny_seq2seq_lm, tiny_tokenizer
from kpod.training import (
    KpodCollator,
    KpodConfig,
    KpodTrainer,
    load_config,
    stage_example,
    step_difficulties,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def data(tok: Any) -> Any:
    return with_difficulty(toy_dataset(tok, n=16), tiny_causal_lm(tok, seed=1))


def _cfg(out: Path, **kw: Any) -> KpodConfig:
    base: dict[str, Any] = dict(
        output_dir=str(out),
        num_train_epochs=4,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1000,
        seed=7,
    )
    base.update(kw)
    return KpodConfig(**base)


class _Recorder:
    """Wraps kpod.Curriculum to record how the trainer builds it."""

    calls: ClassVar[list[dict[str, Any]]] = []
    advances = 0

    def advance(self) -> Any:
        _Recorder.advances += 1
        return self._inner.advance()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _Recorder.calls.append({"args": args, "kwargs": kwargs})
        self._inner = _REAL_CURRICULUM(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_REAL_CURRICULUM = kpod.Curriculum


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _full_loss(model: Any, data: Any, tok: Any, kind: str) -> float:
    """Unweighted NLL of the whole rationale + answer (stage with no given steps)."""
    feats = [
        stage_example(data[i], 0, kind, eos_token_id=tok.eos_token_id, equal_token_weights=True)
        for i in range(len(data))
    ]
    batch = KpodCollator(pad_token_id=tok.pad_token_id)(feats)
    model.eval()
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
    return float(out.loss)


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_loss_decreases(kind: str, tok: Any, data: Any, tmp_path: Path) -> None:
    make = tiny_causal_lm if kind == "causal" else tiny_seq2seq_lm
    model = make(tok)
    before = _full_loss(model, data, tok, kind)
    trainer = KpodTrainer(model, _cfg(tmp_path, num_train_epochs=6), data, processing_class=tok)
    assert trainer.kind == kind
    trainer.train()
    after = _full_loss(trainer.model, data, tok, kind)
    assert after < before - 0.5, (before, after)
    # one stage per epoch; stages 1..T progressive, then everything written
    hist = trainer.schedule.history
    assert [h.stage for h in hist] == list(range(1, 7))
    assert all((h.given_steps == 0).all() for h in hist[3:])
    lines = (tmp_path / "kpod_stages.jsonl").read_text().splitlines()
    assert [json.loads(x)["stage"] for x in lines] == list(range(1, 7))


def test_stage_data_follow_the_schedule(tok: Any, data: Any, tmp_path: Path) -> None:
    seen: list[list[int]] = []

    class Peek(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            ds = kw["train_dataloader"].dataset
            if not seen or len(seen) <= int(state.epoch):
                seen.append(ds.given_steps.tolist())

    trainer = KpodTrainer(
        tiny_causal_lm(tok),
        _cfg(tmp_path, num_train_epochs=3),
        data,
        processing_class=tok,
        callbacks=[Peek()],
    )
    n = np.asarray(data["n_steps"])
    trainer.train()
    hist = trainer.schedule.history
    assert seen == [h.given_steps.tolist() for h in hist]
    # stage 1 starts from c_i(0) = n_i - 1 and only moves selected questions, by delta_s = 1
    c0 = n - 1
    moved = np.zeros_like(c0)
    moved[hist[0].selected] = 1
    assert (hist[0].given_steps == np.maximum(c0 - moved, 0)).all()
    for prev, cur in itertools.pairwise(hist):
        assert (cur.given_steps <= prev.given_steps).all()


def _trainer_for(flags: dict[str, Any], tok: Any, data: Any, tmp_path: Path) -> KpodTrainer:
    _Recorder.calls.clear()
    kpod.Curriculum = _Recorder  # type: ignore[misc]
    try:
        return KpodTrainer(tiny_causal_lm(tok), _cfg(tmp_path, **flags), data, processing_class=tok)
    finally:
        kpod.Curriculum = _REAL_CURRICULUM  # type: ignore[misc]


def _stage_rows(trainer: KpodTrainer, given: np.ndarray) -> list[dict[str, Any]]:
    trainer.stage_dataset.set_given_steps(given)
    return [trainer.stage_dataset[i] for i in range(len(trainer.stage_dataset))]


def test_each_ablation_changes_only_what_it_names(tok: Any, data: Any, tmp_path: Path) -> None:
    base = _trainer_for({}, tok, data, tmp_path)
    base_kw = _Recorder.calls[0]["kwargs"]
    assert base_kw["beta"] == 12.0
    n = np.asarray(data["n_steps"])
    probe = np.maximum(n - 2, 0)
    base_rows = _stage_rows(base, probe)

    # w.o.-sig: weights 1 on every target; same labels and same curriculum inputs
    sig = _trainer_for({"equal_token_weights": True}, tok, data, tmp_path)
    assert _Recorder.calls[0]["kwargs"] == base_kw
    for a, b in zip(base_rows, _stage_rows(sig, probe), strict=True):
        assert a["labels"] == b["labels"] and a["input_ids"] == b["input_ids"]
        assert b["token_weights"] == [1.0 if t != -100 else 0.0 for t in b["labels"]]
    assert any(
        a["token_weights"] != [1.0 if t != -100 else 0.0 for t in a["labels"]] for a in base_rows
    )

    # w.o.-div: only beta goes to 0
    div = _trainer_for({"no_diversity": True}, tok, data, tmp_path)
    kw = _Recorder.calls[0]["kwargs"]
    assert kw["beta"] == 0.0 and {k: v for k, v in kw.items() if k != "beta"} == {
        k: v for k, v in base_kw.items() if k != "beta"
    }
    assert _stage_rows(div, probe) == base_rows

    # w.o.-prog: no curriculum at all, every stage writes the full rationale, same weights
    prog = _trainer_for({"no_progression": True}, tok, data, tmp_path)
    assert _Recorder.calls == []
    assert (prog.schedule.given_steps == 0).all()
    prog.schedule.advance()
    assert (prog.schedule.given_steps == 0).all()
    zero = np.zeros_like(n)
    assert _stage_rows(prog, zero) == _stage_rows(base, zero)

    # w.o.-sig-dif: only the difficulty scoring changes (the mean instead of the softmax)
    dif = _trainer_for({"uniform_difficulty": True}, tok, data, tmp_path)
    assert _Recorder.calls[0]["kwargs"] == base_kw
    assert _stage_rows(dif, probe) == base_rows


def test_uniform_difficulty_is_the_mean_step_nll(tok: Any, data: Any) -> None:
    model = tiny_causal_lm(tok, seed=1)
    rows = [data[i] for i in range(4)]
    weighted = step_difficulties(model, rows, show_progress=False)
    uniform = step_difficulties(model, rows, uniform=True, show_progress=False)
    # by hand for example 0
    ex = rows[0]
    ids = torch.tensor([ex["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits.float(), -1)[0]
    nll = -logp[:-1].gather(1, ids[0, 1:, None])[:, 0].numpy()
    sid = np.asarray(ex["step_ids"][1:])
    w = np.asarray(ex["token_weights"][1:])
    for k in range(ex["n_steps"]):
        sel = sid == k
        soft = np.exp(w[sel]) / np.exp(w[sel]).sum()
        assert uniform[0][k] == pytest.approx(nll[sel].mean(), rel=1e-4)
        assert weighted[0][k] == pytest.approx(float(soft @ nll[sel]), rel=1e-4)
    assert not np.allclose(np.concatenate(weighted), np.concatenate(uniform))
    # batching and ordering do not change the result
    one_by_one = [step_difficulties(model, [r], batch_size=1, show_progress=False)[0] for r in rows]
    for a, b in zip(weighted, one_by_one, strict=True):
        assert np.allclose(a, b, atol=1e-5)


def test_all_flags_give_plain_cot_distillation(tok: Any, data: Any, tmp_path: Path) -> None:
    flags = dict(
        equal_token_weights=True, uniform_difficulty=True, no_progression=True, no_diversity=True
    )
    trainer = _trainer_for(flags, tok, data, tmp_path)
    assert trainer.args.ablation_name == "cot" and trainer.args.plain_cot
    rows = [trainer.stage_dataset[i] for i in range(4)]
    batch = trainer.data_collator(rows)
    model = trainer.model
    with torch.no_grad():
        ours = trainer.compute_loss(model, batch)
        plain = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        ).loss
    assert torch.allclose(ours, plain, atol=1e-6)
    # and the plain CoT labels are the whole rationale + answer after the prompt
    for i, row in enumerate(rows):
        p = next(j for j, s in enumerate(data[i]["step_ids"]) if s != -1)
        assert row["labels"] == [-100] * p + data[i]["input_ids"][p:]


class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step == self.step:
            control.should_training_stop = True


@pytest.mark.parametrize(("rescore_every", "restore_callbacks"), [(0, False), (1, True)])
def test_resume_equals_uninterrupted(
    rescore_every: int, restore_callbacks: bool, tok: Any, data: Any, tmp_path: Path
) -> None:
    # rescore_every=1 makes the schedule depend on the model's state at each stage;
    # restore_callbacks lets the Trainer re-create our callback from the checkpoint.
    kw = dict(
        save_strategy="steps",
        save_steps=3,
        num_train_epochs=4,
        rescore_every=rescore_every,
        restore_callback_states_from_checkpoint=restore_callbacks,
    )
    full = KpodTrainer(tiny_causal_lm(tok), _cfg(tmp_path / "a", **kw), data, processing_class=tok)
    full.train()
    # 16 questions / batch 4 = 4 steps per epoch; stop mid-stage 2 right after a save
    cut = KpodTrainer(
        tiny_causal_lm(tok),
        _cfg(tmp_path / "b", **kw),
        data,
        processing_class=tok,
        callbacks=[_StopAt(6)],
    )
    cut.train()
    assert cut.state.global_step == 6 and cut.schedule.stage == 2
    ckpt = tmp_path / "b" / "checkpoint-6"
    saved = json.loads((ckpt / "trainer_state.json").read_text())
    assert "KpodScheduleCallback" in saved["stateful_callbacks"]
    resumed = KpodTrainer(
        tiny_causal_lm(tok, seed=99), _cfg(tmp_path / "b", **kw), data, processing_class=tok
    )
    _Recorder.advances = 0
    kpod.Curriculum = _Recorder  # type: ignore[misc]
    warned = _Warnings()
    trainer_log = logging.getLogger("transformers.trainer")
    trainer_log.addHandler(warned)
    try:
        resumed.train(resume_from_checkpoint=str(ckpt))
    finally:
        kpod.Curriculum = _REAL_CURRICULUM  # type: ignore[misc]
        trainer_log.removeHandler(warned)
    # The tied output head is saved once; resuming re-ties it without a data-loss warning.
    assert not [m for m in warned.messages if "missing keys" in m], warned.messages
    out_w = resumed.model.get_output_embeddings().weight
    assert out_w is resumed.model.get_input_embeddings().weight
    # the schedule came from the checkpoint: only stages 3 and 4 were computed again
    assert _Recorder.advances == 2
    assert resumed.schedule.stage == full.schedule.stage == 4
    for a, b in zip(full.schedule.history, resumed.schedule.history, strict=True):
        assert a == b  # the whole record, floats bit for bit
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], rtol=1e-5, atol=1e-6)
    lines = (tmp_path / "b" / "kpod_stages.jsonl").read_text().splitlines()
    assert [json.loads(x)["stage"] for x in lines] == [1, 2, 3, 4]
    rescored = not np.allclose(
        np.concatenate(resumed.schedule._difficulty),
        np.concatenate([np.asarray(d) for d in data["step_difficulty"]]),
    )
    assert rescored == bool(rescore_every)


def test_lora_trains_only_adapters(tok: Any, data: Any, tmp_path: Path) -> None:
    model = tiny_causal_lm(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = KpodTrainer(
        model,
        _cfg(tmp_path, use_lora=True, lora_r=4, lora_alpha=8, num_train_epochs=1),
        data,
        processing_class=tok,
    )
    trainer.train()
    names = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    base = trainer.model.get_base_model().state_dict()
    frozen = [k for k in before if k in base]
    assert frozen and all(torch.equal(before[k], base[k]) for k in frozen)


def test_config_from_yaml_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "kpod.yaml"
    path.write_text(
        "output_dir: " + str(tmp_path / "o") + "\nnum_train_epochs: 10\nbeta: 6.0\n"
        "no_diversity: true\nuse_cpu: true\n"
    )
    cfg = load_config(path)
    assert cfg.num_stages == 5 and cfg.beta == 6.0 and cfg.effective_beta == 0.0
    assert cfg.ablation_name == "w.o.-div" and cfg.save_strategy == "epoch"
    with pytest.raises(ValueError, match="not_a_field"):
        load_config(path, not_a_field=1)
    with pytest.raises(ValueError, match="c0"):
        KpodConfig(output_dir=str(tmp_path), c0=1.5, use_cpu=True)
    with pytest.raises(ValueError, match="token_weight_norm"):
        KpodConfig(output_dir=str(tmp_path), token_weight_norm="softmax", use_cpu=True)
    with pytest.raises(ValueError, match="remove_unused_columns"):
        KpodConfig(output_dir=str(tmp_path), remove_unused_columns=True, use_cpu=True)


def test_missing_columns_are_explained(tok: Any, data: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="step_difficulty"):
        KpodTrainer(
            tiny_causal_lm(tok),
            _cfg(tmp_path),
            data.remove_columns("step_difficulty"),
            processing_class=tok,
        )
    with pytest.raises(ValueError, match="token_weights"):
        KpodTrainer(
            tiny_causal_lm(tok),
            _cfg(tmp_path),
            data.remove_columns("token_weights"),
            processing_class=tok,
        )
    # the ablations that do not need a column accept its absence
    KpodTrainer(
        tiny_causal_lm(tok),
        _cfg(tmp_path, no_progression=True, equal_token_weights=True),
        data.remove_columns(["step_difficulty", "token_weights", "cluster"]),
        processing_class=tok,
    )


def test_train_kpod_scores_missing_difficulties_with_the_pretrained_student(
    tok: Any, data: Any, tmp_path: Path
) -> None:
    from kpod.training import train_kpod

    model = tiny_causal_lm(tok, seed=5)
    rows = [data[i] for i in range(len(data))]
    want = step_difficulties(model, rows, uniform=True, show_progress=False)
    cfg = _cfg(tmp_path, num_train_epochs=1, uniform_difficulty=True)
    trainer = train_kpod(model, tok, data.remove_columns("step_difficulty"), cfg)
    got = trainer.schedule._difficulty
    assert all(np.allclose(a, b) for a, b in zip(want, got, strict=True))
    assert (tmp_path / "config.json").is_file() and (tmp_path / "tokenizer_config.json").is_file()


def test_eval_dataset_reports_the_full_rationale_loss(tok: Any, data: Any, tmp_path: Path) -> None:
    model = tiny_causal_lm(tok)
    trainer = KpodTrainer(
        model, _cfg(tmp_path, num_train_epochs=1), data, processing_class=tok, eval_dataset=data
    )
    got = trainer.evaluate()["eval_loss"]
    rows = [
        stage_example(data[i], 0, "causal", eos_token_id=tok.eos_token_id) for i in range(len(data))
    ]
    batch = trainer.data_collator(rows)
    with torch.no_grad():
        want = float(trainer.compute_loss(model, batch))
    # the Trainer averages per-batch losses (batch 8 here = 2 batches); same data, close values
    assert got == pytest.approx(want, rel=0.05)


def test_gradient_accumulation_gives_the_same_update(tok: Any, data: Any, tmp_path: Path) -> None:
    # one optimizer step over 8 questions: one batch of 8 vs 4 micro-batches of 2
    kw: dict[str, Any] = dict(max_steps=1, optim="sgd", learning_rate=0.5, no_progression=True)
    whole = KpodTrainer(
        tiny_causal_lm(tok),
        _cfg(tmp_path / "a", per_device_train_batch_size=8, **kw),
        data,
        processing_class=tok,
    )
    whole.train()
    split = KpodTrainer(
        tiny_causal_lm(tok),
        _cfg(tmp_path / "b", per_device_train_batch_size=2, gradient_accumulation_steps=4, **kw),
        data,
        processing_class=tok,
    )
    split.train()
    start = tiny_causal_lm(tok).state_dict()
    sa, sb = whole.model.state_dict(), split.model.state_dict()
    assert any(not torch.equal(sa[k], start[k]) for k in sa)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-6)


def test_missing_clusters_come_from_kpod_data_clusters(tok: Any, data: Any, tmp_path: Path) -> None:
    from kpod.data.clusters import cluster_questions

    model = tiny_causal_lm(tok)
    _Recorder.calls.clear()
    kpod.Curriculum = _Recorder  # type: ignore[misc]
    try:
        KpodTrainer(
            model,
            _cfg(tmp_path, n_clusters=3),
            data.remove_columns("cluster"),
            processing_class=tok,
        )
    finally:
        kpod.Curriculum = _REAL_CURRICULUM  # type: ignore[misc]
    got = np.asarray(_Recorder.calls[0]["args"][2])
    want = cluster_questions(data, model=model, k=3, seed=7)
    assert got.tolist() == want.tolist() and set(got.tolist()) <= {0, 1, 2}


def test_collapsed_weights_warn_unless_normalised(tok: Any, data: Any, tmp_path: Path) -> None:
    tiny = data.map(lambda ex: {"token_weights": [w * 1e-3 for w in ex["token_weights"]]})
    with pytest.warns(UserWarning, match="token_weight_norm='mean'"):
        KpodTrainer(tiny_causal_lm(tok), _cfg(tmp_path), tiny, processing_class=tok)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # the remedy silences it, and so do healthy weights
        KpodTrainer(
            tiny_causal_lm(tok),
            _cfg(tmp_path, token_weight_norm="mean"),
            tiny,
            processing_class=tok,
        )
        KpodTrainer(tiny_causal_lm(tok), _cfg(tmp_path), data, processing_class=tok)


def _schedule(n_steps: list[int], diffs: list[list[float]], tmp_path: Path, **kw: Any) -> Any:
    from kpod.training.curriculum import CurriculumSchedule

    clusters = [i % 2 for i in range(len(n_steps))]
    return CurriculumSchedule(n_steps, diffs, clusters, _cfg(tmp_path, **kw))


def test_stage_records_say_whether_the_budget_bound(tmp_path: Path) -> None:
    from kpod.training.curriculum import slack_budget_warning

    rng = np.random.default_rng(0)
    n_steps = [int(k) for k in rng.integers(1, 7, size=40)]
    diffs = [rng.uniform(0.5, 2.0, size=n).tolist() for n in n_steps]

    # Two stages over rationales of up to 6 steps: the budget outgrows one step a
    # stage, so every question that can move does, and nothing else matters.
    slack = _schedule(n_steps, diffs, tmp_path, stages=2)
    preview = slack.preview()
    assert slack.stage == 0 and len(preview) == 2  # the preview leaves the schedule alone
    given = np.maximum(np.asarray(n_steps) - 1, 0)
    for rec in preview:
        assert rec.eligible == int(np.count_nonzero(given))
        assert rec.bound is False and len(rec.selected) == rec.eligible
        given = rec.given_steps
    msg = slack_budget_warning(preview, stages=2, delta_steps=1)
    assert msg is not None and "binds at none of the 2 stages" in msg
    # The same schedule whatever the difficulties and beta: the warning's claim.
    other = _schedule(n_steps, [d[::-1] for d in diffs], tmp_path, stages=2, beta=0.0)
    for a, b in zip(preview, other.preview(), strict=True):
        assert np.array_equal(a.given_steps, b.given_steps)

    # Many stages: the budget limits some stage, and then no warning.
    tight = _schedule(n_steps, diffs, tmp_path, stages=10, num_train_epochs=20).preview()
    assert any(r.bound for r in tight)
    for rec in tight:
        assert rec.bound == (len(rec.selected) < rec.eligible)
    assert slack_budget_warning(tight, stages=10, delta_steps=1) is None
    # Nothing to schedule (single-step rationales), and no progression: no warning.
    ones = _schedule([1, 1], [[1.0], [2.0]], tmp_path, stages=2).preview()
    assert slack_budget_warning(ones, stages=2, delta_steps=1) is None
    assert slack_budget_warning([], stages=2, delta_steps=1) is None


def test_trainer_warns_before_training_when_the_budget_never_binds(
    tok: Any, data: Any, tmp_path: Path
) -> None:
    # The toy rationales have 2-3 steps: one stage cannot bind, two do (stage 1).
    with pytest.warns(UserWarning, match="binds at none of the 1 stages"):
        KpodTrainer(tiny_causal_lm(tok), _cfg(tmp_path, stages=1), data, processing_class=tok)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        KpodTrainer(tiny_causal_lm(tok), _cfg(tmp_path, stages=2), data, processing_class=tok)


def test_group_by_length_trains_every_example_once_per_stage(
    tok: Any, data: Any, tmp_path: Path
) -> None:
    # The fair reproduction groups batches by length (40% of a random SVAMP batch is
    # padding, benches/bench_padding.py): each stage must still see every example once.
    trainer = KpodTrainer(
        tiny_causal_lm(tok),
        _cfg(tmp_path, num_train_epochs=2, train_sampling_strategy="group_by_length"),
        data,
        processing_class=tok,
    )
    sampler = trainer._get_train_sampler()
    assert type(sampler).__name__ == "LengthGroupedSampler"
    assert sorted(sampler) == list(range(len(data)))
    trainer.train()
    assert trainer.schedule.stage == 2 and trainer.state.global_step == 8
