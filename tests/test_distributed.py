"""KpodTrainer under `torchrun --nproc_per_node 2` (gloo, CPU): every rank sees the same schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from transformers import TrainerCallback
    from _training_toy import toy_dataset, with_difficulty
    from kpod.testing import tiny_causal_lm, tiny_tokenizer
    from kpod.training import KpodConfig, KpodTrainer

    out = sys.argv[1]
    tok = tiny_tokenizer()
    data = with_difficulty(toy_dataset(tok, n=16), tiny_causal_lm(tok, seed=1))
    seen = []

    class Peek(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            ds = kw["train_dataloader"].dataset
            seen.append(ds.given_steps.tolist())

    cfg = KpodConfig(
        output_dir=out, num_train_epochs=3, per_device_train_batch_size=2, learning_rate=3e-3,
        use_cpu=True, ddp_backend="gloo", save_strategy="no", report_to="none",
        disable_tqdm=True, logging_steps=1000, seed=3,
    )
    trainer = KpodTrainer(tiny_causal_lm(tok), cfg, data, processing_class=tok, callbacks=[Peek()])
    trainer.train()
    rank = int(os.environ["RANK"])
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({
            "world": trainer.args.world_size,
            "steps": trainer.state.global_step,
            "history": [[h.stage, h.selected.tolist(), h.given_steps.tolist()]
                        for h in trainer.schedule.history],
            "seen": seen,
            "params": [float(p.double().sum()) for p in trainer.model.parameters()],
        }, fh)
    # Tear the gloo group down, then leave without running C++ static destructors:
    # under load a rank aborted at interpreter exit ("terminate called without an
    # active exception", SIGABRT) after its results were written, twice on this
    # machine, with and without destroy_process_group. The results are on disk.
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
    """
)


@pytest.mark.slow
def test_two_cpu_processes_share_the_schedule(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "worker.py").write_text(WORKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root / "python"), str(root / "tests"), env.get("PYTHONPATH", "")]
    )
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "0",
        "--rdzv_backend",
        "c10d",
        "--rdzv_endpoint",
        "localhost:0",
        str(tmp_path / "worker.py"),
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    r0 = json.loads((tmp_path / "out" / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "out" / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2
    # 16 questions, 2 per device, 2 devices: 4 optimizer steps per epoch, 3 epochs
    assert r0["steps"] == r1["steps"] == 12
    assert [h[0] for h in r0["history"]] == [1, 2, 3]
    assert r0["history"] == r1["history"]
    assert r0["seen"] == r1["seen"] and len(r0["seen"]) == 12
    assert r0["seen"][0] == r0["history"][0][2] and r0["seen"][-1] == r0["history"][-1][2]
    assert r0["params"] == pytest.approx(r1["params"], rel=1e-6, abs=1e-6)  # DDP kept them in sync
