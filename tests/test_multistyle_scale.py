"""Multi-style networks through the machinery single-style runs have: exact resume after a
SIGTERM, DDP (also interrupted and resumed), and Hydra sweeps over style lists with summarize.py.
Real train.py runs in subprocesses, tiny photos and a tiny network (CPU)."""

import csv
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from test_scale import TINY, cli_args, job_dirs, run, run_preempted

pytestmark = pytest.mark.slow

THREE = "style=[starry_night,mosaic,candy]"


def logged(tmp, name) -> dict[int, dict[str, float]]:
    """step -> every train/* value logged at that step (CSV logger, every step with debug=tiny)."""
    rows: dict[int, dict[str, float]] = {}
    for metrics in sorted((tmp / name / "logs").rglob("metrics.csv")):
        with open(metrics, newline="") as f:
            for row in csv.DictReader(f):
                values = {k: float(v) for k, v in row.items() if k.startswith("train/") and v}
                if values:
                    rows.setdefault(int(row["step"]), {}).update(values)
    return rows


def assert_same_run(tmp, interrupted, whole, steps):
    expected, got = logged(tmp, whole), logged(tmp, interrupted)
    assert sorted(expected) == list(range(steps)) and sorted(got) == list(range(steps))
    for step in range(steps):
        assert got[step] == {k: pytest.approx(v, rel=1e-6) for k, v in expected[step].items()}
    assert "train/loss_style/mosaic" in expected[0]


def test_a_multi_style_run_resumes_exactly_after_sigterm(photos, tmp_path):
    args = ["trainer.max_steps=6", "seed=7", "checkpoint_every_n_steps=1000",
            "sample_every_n_steps=1000"]
    whole = run(*cli_args(photos, tmp_path, "w", THREE, *args), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    interrupted = cli_args(photos, tmp_path, "i", THREE, *args)
    stopped = run_preempted("train_step", 2, interrupted, cwd=tmp_path)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert torch.load(tmp_path / "i" / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 3
    resumed = run(*interrupted, "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Same weights, Adam moments, photos, crops and per-photo styles: every loss, per style too.
    assert_same_run(tmp_path, "i", "w", 6)
    pth = tmp_path / "i" / "ckpt" / "starry_night+mosaic+candy.pth"
    assert torch.load(pth, weights_only=True)["style_names"] == ["starry_night", "mosaic", "candy"]


def test_ddp_trains_one_multi_style_network_and_resumes_exactly(photos, tmp_path):
    # 8 photos over 2 processes, batch 2: rank r's photo j of batch k is style (4k + 2r + j) % 3,
    # so the ranks train different styles in the same step and the gradients are averaged.
    ddp = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_steps=4",
           "seed=7", "checkpoint_every_n_steps=1000", "sample_every_n_steps=1000"]
    whole = run(*cli_args(photos, tmp_path, "w", THREE, *ddp), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    ckpt = tmp_path / "w" / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "config.yaml", "last.ckpt", "starry_night+mosaic+candy.pth"]
    state = torch.load(ckpt / "last.ckpt", weights_only=True)
    assert state["global_step"] == 4 and state["PhotoDataModule"]["world_size"] == 2
    scales = state["state_dict"]["transformer.encoder.0.2.style_scale"]
    assert scales.shape == (3, 8) and all(not torch.equal(row, torch.ones(8)) for row in scales)

    args = cli_args(photos, tmp_path, "i", THREE, *ddp)
    stopped = run_preempted("train_step", 1, args, cwd=tmp_path)  # only rank 0 gets the signal
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    resumed = run(*args, "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path, "i", "w", 4)


def test_a_sweep_over_style_lists_trains_each_list_and_is_summarised(photos, tmp_path):
    # Hydra sweeps over lists with `key=[a,b],[c,d]`: two jobs, two two-style networks.
    result = run("-m", *TINY, f"data.root={photos}", "trainer.max_steps=2",
                 "style=[starry_night,mosaic],[candy,mosaic]",
                 f"hydra.sweep.dir={tmp_path}/multirun", f"log_dir={tmp_path}/logs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(job_dirs(tmp_path / "multirun")) == 2
    pths = sorted(p.name for p in (tmp_path / "checkpoints").rglob("*.pth"))
    assert pths == ["candy+mosaic.pth", "starry_night+mosaic.pth"]
    summary = subprocess.run([sys.executable, str(REPO / "scripts" / "summarize.py"),
                              str(tmp_path / "multirun")], capture_output=True, text=True,
                             cwd=tmp_path, check=False)
    assert summary.returncode == 0, summary.stderr[-3000:]
    assert "[starry_night,mosaic]" in summary.stdout and "[candy,mosaic]" in summary.stdout
    assert "val/loss_style/mosaic" in summary.stdout
