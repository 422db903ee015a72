"""Sweeps, search, DDP and resume: seeded data order, sharding, run names, interruption.

The slow tests run the real train.py in subprocesses on tiny photos and a tiny network (CPU).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, train_config, write_photo
from omegaconf import OmegaConf

from fast_style.data import (
    EpochSampler,
    PhotoDataModule,
    PhotoDataset,
    auto_workers,
    train_transform,
)
from fast_style.runs import run_name

# A tiny network: the tests check plumbing, not style.
TINY = ["debug=tiny", "model.width=8", "model.num_residual_blocks=1"]


# ---------------------------------------------------------------- data order (fast)

def test_seed_fixes_the_order_of_every_epoch():
    def order(seed, epoch):
        sampler = EpochSampler(20, seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, 0) == order(1, 0) and order(1, 3) == order(1, 3)
    assert order(1, 0) != order(1, 1)  # a fresh shuffle every epoch
    assert order(1, 0) != order(2, 0)
    assert sorted(i for i, _ in order(1, 0)) == list(range(20))


def test_ddp_shards_are_disjoint_and_equal():
    shards = [list(EpochSampler(11, seed=5, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # equal steps on every rank (11 // 3)
    photos = [i for shard in shards for i, _ in shard]
    assert len(set(photos)) == 9
    # together the ranks walk the same permutation a single process would
    single = [i for i, _ in EpochSampler(11, seed=5)][:9]
    assert sorted(photos) == sorted(single)


def test_resume_skips_the_samples_done_in_the_interrupted_epoch_only():
    full = EpochSampler(10, seed=3)
    epoch2 = full.indices(2)
    sampler = EpochSampler(10, seed=3, epoch=2, start=4)
    sampler.set_epoch(2)  # Lightning announces the resumed epoch: the skip stays
    assert list(sampler) == epoch2[4:]
    sampler.set_epoch(3)
    assert list(sampler) == full.indices(3)
    assert len(sampler) == 10  # always a whole epoch: Lightning counts the skipped batches


def test_seed_crops_depend_on_the_sample_not_on_the_global_rng(tmp_path):
    photo = write_photo(tmp_path / "wide.jpg", size=(96, 40))
    dataset = PhotoDataset([photo], train_transform(32), 32)
    torch.manual_seed(0)
    a = dataset[(0, 123)]
    torch.manual_seed(1)
    b = dataset[(0, 123)]
    state = torch.get_rng_state()
    crops = {dataset[(0, s)].sum().item() for s in range(8)}
    assert torch.equal(a, b)
    assert len(crops) > 1  # different crop seeds: different crops
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is untouched


def test_resume_position_round_trips_through_the_checkpoint_state(photo_folder):
    data = PhotoDataModule(str(photo_folder), image_size=16, batch_size=2, num_workers=0,
                           val_count=2, seed=9)
    data.setup()
    data.trainer = SimpleNamespace(global_rank=0, world_size=1, global_step=7,
                                   accumulate_grad_batches=1, num_training_batches=4)
    data.train_dataloader()
    state = data.state_dict()
    assert state == {"seed": 9, "epoch": 1, "samples": 6, "world_size": 1,  # 7 = 4 + 3 batches
                     "image_size": 16, "load_size": 16, "batch_size": 2}  # a resume sees changes

    resumed = PhotoDataModule(str(photo_folder), image_size=16, batch_size=2, num_workers=0,
                              val_count=2, seed=1234)  # the checkpoint's seed wins
    resumed.setup()
    resumed.trainer = SimpleNamespace(global_rank=0, world_size=1)
    resumed.load_state_dict(state)
    loader = resumed.train_dataloader()
    assert list(loader.sampler) == EpochSampler(8, seed=9).indices(1)[6:]
    assert len(loader) == 4


FILL_CACHE = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from fast_style.runs import cache_lock

    target, log = Path(sys.argv[1]), sys.argv[2]
    with cache_lock(target):
        if not target.exists():
            with open(log, "a") as f:
                f.write("filled\\n")
            time.sleep(0.5)  # a slow download: the others must wait, not start their own
            target.write_text("weights")
    assert target.read_text() == "weights"
''')


def test_ddp_cache_is_filled_by_one_process_while_the_others_wait(tmp_path):
    target, log = tmp_path / "cache" / "vgg.pth", tmp_path / "fills.log"
    procs = [subprocess.Popen([sys.executable, "-c", FILL_CACHE, str(target), str(log)])
             for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert log.read_text() == "filled\n"


# ---------------------------------------------------------------- run names (fast)

def test_sweep_jobs_get_run_names_from_their_overrides():
    from hydra.types import RunMode

    assert run_name("mosaic", RunMode.RUN, "loss.style_weight=2") == "mosaic"
    assert run_name("mosaic", None, "x=1") == "mosaic"  # composed outside a run
    assert run_name("mosaic", RunMode.MULTIRUN, "loss.style_weight=2,style=mosaic") == (
        "mosaic/loss.style_weight=2,style=mosaic")
    assert run_name("mosaic", "MULTIRUN", "data.root=/a/b") == "mosaic/data.root=_a_b"
    assert run_name("mosaic", RunMode.MULTIRUN, "") == "mosaic"


def test_sweep_identity_ignores_keys_that_do_not_change_training():
    cfg = OmegaConf.load(REPO / "configs" / "train.yaml")
    excluded = set(cfg.hydra.job.config.override_dirname.exclude_keys)
    assert {"ckpt_path", "overwrite", "trainer.devices", "trainer.num_nodes", "ckpt_dir",
            "log_dir", "hparams_search"} <= excluded
    assert not {"seed", "lr", "loss.style_weight", "style", "data.root"} & excluded
    raw = OmegaConf.to_container(cfg)  # unresolved
    assert raw["ckpt_dir"] == "checkpoints/${run_name}"
    for logger in ("tensorboard", "csv"):
        logger_cfg = OmegaConf.load(REPO / "configs" / "logger" / f"{logger}.yaml")
        assert OmegaConf.to_container(logger_cfg)["name"] == "${run_name}"


# ---------------------------------------------------------------- real CLI runs (slow)

def run(*args, cwd, timeout=600):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], check=False,
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def cli_args(photos, tmp, name, *extra):
    return [*TINY, f"data.root={photos}", f"ckpt_dir={tmp}/{name}/ckpt",
            f"log_dir={tmp}/{name}/logs", f"hydra.run.dir={tmp}/{name}/out", "logger=csv",
            *extra]


def train_losses(tmp, name) -> dict[int, float]:
    """step -> train/loss from the CSV logger (every step with debug=tiny)."""
    import csv

    losses = {}
    for metrics in sorted((tmp / name / "logs").rglob("metrics.csv")):
        with open(metrics, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    losses[int(row["step"])] = float(row["train/loss"])
    return losses


@pytest.fixture(scope="module")
def baseline(photos, tmp_path_factory):
    """An uninterrupted 8-step run: the reference for resume and reproducibility."""
    tmp = tmp_path_factory.mktemp("baseline")
    result = run(*cli_args(photos, tmp, "a", "trainer.max_steps=8", "seed=7"), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = train_losses(tmp, "a")
    assert sorted(losses) == list(range(8))
    return losses


def interrupt(args, tmp, name, sig, after_file):
    """Start train.py, send ``sig`` once ``after_file`` appears, wait for it to exit."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not after_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, stdout, stderr


@pytest.mark.slow
def test_seed_makes_cpu_runs_identical_with_or_without_workers(photos, baseline, tmp_path):
    # default precision (auto) and channels_last, as a user runs it
    same = run(*cli_args(photos, tmp_path, "b", "trainer.max_steps=4", "seed=7",
                         "data.num_workers=2"), cwd=tmp_path)
    other = run(*cli_args(photos, tmp_path, "c", "trainer.max_steps=2", "seed=8"), cwd=tmp_path)
    assert same.returncode == 0 and other.returncode == 0, (same.stderr + other.stderr)[-3000:]
    b, c = train_losses(tmp_path, "b"), train_losses(tmp_path, "c")
    assert b == {step: baseline[step] for step in range(4)}  # bit for bit
    assert c[0] != baseline[0] and c[1] != baseline[1]


@pytest.mark.slow
def test_resume_after_sigterm_continues_the_step_and_the_loss_curve(photos, baseline, tmp_path):
    # No periodic checkpoint: the one to resume from is written on the way out. The signal comes
    # from outside while step 3's sample grid is saved, so it lands wherever that happens to be
    # (an epoch is 4 steps, validation every 2): the tests below pin the points down one by one.
    args = cli_args(photos, tmp_path, "r", "trainer.max_steps=8", "seed=7",
                    "checkpoint_every_n_steps=1000", "sample_every_n_steps=3")
    code, _, stderr = interrupt(args, tmp_path, "r", signal.SIGTERM, tmp_path / "r" / "logs" /
                                "starry_night" / "version_0" / "samples" / "step_0000003.png")
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr
    [line] = [ln for ln in stderr.splitlines() if ln.startswith("stopped by SIGTERM")]
    state = torch.load(tmp_path / "r" / "ckpt" / "last.ckpt", weights_only=True)
    stopped = state["global_step"]
    assert 3 <= stopped < 8 and f"holds step {stopped}" in line and "ckpt_path=last" in line
    assert (tmp_path / "r" / "ckpt" / f"step={stopped}.ckpt").is_file()  # saved on the way out
    assert state["optimizer_states"][0]["state"], "no Adam moments saved"
    assert state["PhotoDataModule"]["seed"] == 7

    resumed = run(*args, "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(tmp_path / "r" / "ckpt" / "last.ckpt", weights_only=True)[
        "global_step"] == 8
    assert_same_curve(tmp_path, "r", baseline)


# train.py, with SIGTERM sent to itself when a chosen hook runs at a chosen global step: a
# preemption landing at an exact point of the loop, every time. Or a crash inside a step.
SIGNAL_AT_STEP_SCRIPT = textwrap.dedent('''
    import os, runpy, signal, sys

    import lightning as L

    hook, step, train_py = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sys.argv = [train_py, *sys.argv[4:]]

    class Preempt(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if hook == "train_step" and trainer.global_step == step:
                os.kill(os.getpid(), signal.SIGTERM)

        def on_validation_start(self, trainer, *args):
            if hook == "validation" and trainer.global_step == step:
                os.kill(os.getpid(), signal.SIGTERM)

        def on_before_optimizer_step(self, trainer, *args):
            if hook == "crash" and trainer.global_step == step:
                raise RuntimeError("a crash half-way through a step")

    init = L.Trainer.__init__

    def with_preempt(self, *args, callbacks=(), **kwargs):
        init(self, *args, callbacks=[*callbacks, Preempt()], **kwargs)

    L.Trainer.__init__ = with_preempt
    runpy.run_path(train_py, run_name="__main__")
''')


def run_preempted(hook, at, args, cwd):
    """train.py under SIGNAL_AT_STEP_SCRIPT: ``hook`` ("train_step", "validation", "crash") at
    global step ``at``."""
    script = cwd / "signal_at_step.py"
    script.write_text(SIGNAL_AT_STEP_SCRIPT)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(script), hook, str(at), str(REPO / "train.py"),
                           *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300, check=False)

def assert_same_curve(tmp, name, baseline):
    """The interrupted and the resumed run's logs together: every step once, the baseline's losses."""
    import csv

    steps, val_losses = [], []
    for metrics in sorted((tmp / name / "logs").rglob("metrics.csv")):
        with open(metrics, newline="") as f:
            for row in csv.DictReader(f):
                steps += [int(row["step"])] if row.get("train/loss") else []
                val_losses += [row["val/loss"]] if row.get("val/loss") else []
    assert sorted(steps) == list(range(8)), "a step logged twice, or not at all"
    assert len(set(val_losses)) == len(val_losses), "a validation result logged again later"
    losses = train_losses(tmp, name)  # same weights, Adam state, photos and crops: same curve
    assert losses == {step: pytest.approx(baseline[step], rel=1e-6) for step in range(8)}


@pytest.mark.slow
@pytest.mark.parametrize(("hook", "at", "stops_at"), [
    ("train_step", 1, 2),  # the stop falls on a validation step (every 2 steps)
    ("train_step", 2, 3),  # an ordinary step
    ("train_step", 3, 4),  # an epoch's last step (4 per epoch), also a validation step
    ("validation", 2, 3),  # during validation: the next step is finished first
])
def test_resume_after_sigterm_at_any_point_of_the_loop_repeats_the_uninterrupted_run(
        photos, baseline, tmp_path, hook, at, stops_at):
    args = cli_args(photos, tmp_path, "s", "trainer.max_steps=8", "seed=7",
                    "checkpoint_every_n_steps=1000", "sample_every_n_steps=1000")
    stopped = run_preempted(hook, at, args, cwd=tmp_path)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert torch.load(tmp_path / "s" / "ckpt" / "last.ckpt",
                      weights_only=True)["global_step"] == stops_at

    resumed = run(*args, "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_curve(tmp_path, "s", baseline)


@pytest.mark.slow
def test_resume_after_a_crash_inside_a_step_uses_the_last_good_checkpoint(photos, baseline,
                                                                          tmp_path):
    args = cli_args(photos, tmp_path, "x", "trainer.max_steps=8", "seed=7",
                    "checkpoint_every_n_steps=2", "sample_every_n_steps=1000")
    crashed = run_preempted("crash", 3, args, cwd=tmp_path)
    assert crashed.returncode != 0 and "half-way through a step" in crashed.stderr
    # step 3's gradients existed but its update never happened: last.ckpt stays at step 2
    ckpt = tmp_path / "x" / "ckpt"
    assert torch.load(ckpt / "last.ckpt", weights_only=True)["global_step"] == 2
    assert not (ckpt / "step=3.ckpt").exists()

    resumed = run(*args, "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert train_losses(tmp_path, "x") == {step: pytest.approx(baseline[step], rel=1e-6)
                                           for step in range(8)}


@pytest.mark.slow
def test_resume_ctrl_c_stops_at_a_step_boundary_with_a_checkpoint(photos, tmp_path):
    args = cli_args(photos, tmp_path, "k", "trainer.max_steps=40")
    # the first periodic last.ckpt (step 2 with debug=tiny) is being written
    code, _, stderr = interrupt(args, tmp_path, "k", signal.SIGINT,
                                tmp_path / "k" / "ckpt" / "last.ckpt")
    assert code == 128 + signal.SIGINT, stderr[-3000:]
    assert "Traceback" not in stderr
    [line] = [ln for ln in stderr.splitlines() if ln.startswith("stopped by SIGINT")]
    state = torch.load(tmp_path / "k" / "ckpt" / "last.ckpt", weights_only=True)
    assert f"holds step {state['global_step']}" in line and state["global_step"] < 40
    # a whole step: Adam's step counter matches the global step
    adam_steps = {float(s["step"]) for s in state["optimizer_states"][0]["state"].values()}
    assert adam_steps == {float(state["global_step"])}


DDP_SCRIPT = textwrap.dedent('''
    """2-process DDP on CPU (gloo): which photos each rank loaded, and its final weights."""
    import hashlib, json, sys
    from pathlib import Path

    import lightning as L
    import torch

    from fast_style.data import PhotoDataModule, PhotoDataset
    from fast_style.module import StyleTransferSystem

    out, root, style = sys.argv[1:4]
    L.seed_everything(0)
    data = PhotoDataModule(root, image_size=32, batch_size=2, num_workers=0, val_count=2, seed=3)
    seen = []
    load = PhotoDataset.__getitem__

    def recording(self, index):
        if self.paths is data.train_paths:
            seen.append(self.paths[index[0]].name)
        return load(self, index)

    PhotoDataset.__getitem__ = recording

    class Record(L.Callback):
        def on_train_end(self, trainer, system):
            weights = b"".join(p.detach().numpy().tobytes() for p in system.transformer.parameters())
            Path(out, f"rank{trainer.global_rank}.json").write_text(json.dumps({
                "seen": seen, "weights": hashlib.sha256(weights).hexdigest(),
                "world_size": trainer.world_size}))

    # "budget": a linear decay to the end of 8 s of wall clock instead of 4 steps
    budget = sys.argv[4:] == ["budget"]
    system = StyleTransferSystem(style, style_size=32, width=8, num_residual_blocks=1,
                                 vgg_weights="random", channels_last=False,
                                 lr_decay="linear" if budget else "none")
    length = dict(max_steps=-1, max_epochs=-1, max_time={"seconds": 8}) if budget else dict(
        max_steps=4)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", **length,
                        use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, precision="32-true", callbacks=[Record()])
    trainer.fit(system, datamodule=data)
''')


@pytest.mark.slow
def test_ddp_two_processes_train_on_different_photos(photos, style_path, tmp_path):
    script = tmp_path / "ddp_record.py"
    script.write_text(DDP_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path), str(photos),
                             str(style_path)], check=False, capture_output=True, text=True,
                            cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # 8 training photos, 2 per step per rank: 4 steps are 2 epochs of 2 steps on each rank
    for epoch in range(2):
        shards = [set(r["seen"][4 * epoch: 4 * epoch + 4]) for r in ranks]
        assert len(shards[0]) == len(shards[1]) == 4
        assert not shards[0] & shards[1], f"epoch {epoch}: both ranks loaded {shards[0] & shards[1]}"
    assert ranks[0]["seen"][:4] != ranks[0]["seen"][4:]  # a new order in epoch 2
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients were averaged: one model


@pytest.mark.slow
def test_ddp_processes_share_one_time_budget_schedule(photos, style_path, tmp_path):
    """A decay to trainer.max_time reads a clock; each process has its own, so rank 0's
    fraction is used by all (else their rates, then their weights, would differ)."""
    script = tmp_path / "ddp_record.py"
    script.write_text(DDP_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path), str(photos),
                             str(style_path), "budget"], check=False, capture_output=True,
                            text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]["seen"]) > 8  # more than 4 steps: the clock ended it
    assert ranks[0]["weights"] == ranks[1]["weights"]


@pytest.mark.slow
def test_ddp_cli_writes_one_checkpoint_and_one_log(photos, tmp_path):
    result = run(*cli_args(photos, tmp_path, "d", "trainer=ddp", "trainer.devices=2",
                           "trainer.accelerator=cpu", "logger=tensorboard"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = tmp_path / "d" / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.yaml", "last.ckpt",
                                                       "starry_night.pth"]
    state = torch.load(ckpt / "last.ckpt", weights_only=True)
    assert state["global_step"] == 4 and state["PhotoDataModule"]["world_size"] == 2
    versions = list((tmp_path / "d" / "logs" / "starry_night").iterdir())
    assert len(versions) == 1 and len(list(versions[0].glob("events.out.tfevents.*"))) == 1
    assert "All distributed processes registered. Starting with 2 processes" in (
        result.stdout + result.stderr)


@pytest.mark.slow
def test_ddp_sigterm_to_one_process_stops_both_and_the_resumed_run_matches(photos, tmp_path):
    # 8 photos over 2 processes, batch 2: 2 steps per epoch; 4 steps cross an epoch boundary.
    ddp = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_steps=4",
           "seed=7", "checkpoint_every_n_steps=1000", "sample_every_n_steps=1000"]
    whole = run(*cli_args(photos, tmp_path, "w", *ddp), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    # Lightning starts rank 1 by re-running train.py itself: only rank 0 gets the signal.
    args = cli_args(photos, tmp_path, "i", *ddp)
    stopped = run_preempted("train_step", 0, args, cwd=tmp_path)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    state = torch.load(tmp_path / "i" / "ckpt" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 1 and state["PhotoDataModule"]["world_size"] == 2

    resumed = run(*args, "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = train_losses(tmp_path, "w")
    assert sorted(expected) == [0, 1, 2, 3]
    assert train_losses(tmp_path, "i") == {s: pytest.approx(v, rel=1e-6)
                                           for s, v in expected.items()}


def job_dirs(multirun: Path) -> list[Path]:
    return sorted(p.parent.parent for p in multirun.rglob(".hydra/overrides.yaml"))


@pytest.mark.slow
def test_multirun_jobs_in_parallel_write_separate_files(photos, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from fast_style import sweeps

    # With the data config's default loader workers (debug=tiny turns them off): inside joblib's
    # workers they once failed to start ("'Process' object has no attribute 'env'").
    default_workers = OmegaConf.load(REPO / "configs" / "data" / "bsds300.yaml").num_workers
    assert default_workers == "auto"
    default_workers = auto_workers()
    result = run("-m", *TINY, f"data.root={photos}", "trainer.max_steps=2",
                 f"data.num_workers={default_workers}",
                 "style=starry_night,mosaic", "loss.style_weight=2,5",
                 "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 f"hydra.sweep.dir={tmp_path}/multirun", f"log_dir={tmp_path}/logs",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # one folder per job, though data.root (a path) is among the overrides
    assert [d.parent for d in job_dirs(tmp_path / "multirun")] == [tmp_path / "multirun"] * 4
    # checkpoints/debug/<style>/<the job's overrides>/ (debug=tiny's own folder), without the
    # overrides that do not change training
    assert not list((tmp_path / "checkpoints").glob("*/*/last.ckpt"))
    ckpts = sorted((tmp_path / "checkpoints" / "debug").glob("*/*/last.ckpt"))
    jobs = [(p.parent.parent.name, dict(kv.split("=", 1) for kv in p.parent.name.split(",")))
            for p in ckpts]
    assert sorted((style, o["style"], o["loss.style_weight"]) for style, o in jobs) == [
        (style, style, w) for style in ("mosaic", "starry_night") for w in ("2", "5")]
    assert all(o["trainer.max_steps"] == "2" and "log_dir" not in o for _, o in jobs)
    for ckpt in ckpts:  # each job's own inference file and config beside its checkpoint
        saved = OmegaConf.load(ckpt.parent / "config.yaml")
        assert f"{saved.run_name}" == f"{ckpt.parent.parent.name}/{ckpt.parent.name}"
        assert (ckpt.parent / f"{saved.style.name}.pth").is_file()
    runs = sweeps.load_runs(tmp_path / "multirun")  # what scripts/summarize.py reads
    assert [r.problem for r in runs] == [None] * 4
    assert len({r.log_dir for r in runs}) == 4 and all("val/loss" in r.metrics for r in runs)


@pytest.mark.slow
def test_sweep_optuna_search_reports_the_best_trial(photos, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from fast_style import sweeps

    result = run("-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", *TINY,
                 f"data.root={photos}", "trainer.max_steps=2",
                 f"hydra.sweep.dir={tmp_path}/multirun", f"log_dir={tmp_path}/logs",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Best parameters" in result.stdout + result.stderr
    best = OmegaConf.load(tmp_path / "multirun" / "optimization_results.yaml")
    runs = sweeps.load_runs(tmp_path / "multirun")
    assert len(runs) == 2 and len({r.label for r in runs}) == 2
    for r in runs:
        assert 0.5 <= float(r.overrides["loss.style_weight"]) <= 50
        assert 1e-4 <= float(r.overrides["lr"]) <= 1e-2
    # the value minimised is each trial's final val/loss_johnson, and the best is the lowest
    assert best.best_value == pytest.approx(min(r.metrics["val/loss_johnson"] for r in runs),
                                            rel=1e-5)


@pytest.mark.slow
def test_sweep_objective_must_be_a_logged_metric(photos, tmp_path):
    result = run(*cli_args(photos, tmp_path, "o", "objective=val/loss_jonhson"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "val/loss_johnson" in line  # the valid names are listed
    assert not (tmp_path / "o" / "ckpt").exists()  # refused before anything was trained


def test_resume_compares_load_size_as_the_short_side_the_crops_were_cut_at():
    from fast_style.checks import check_training_config
    from fast_style.resume import changed_settings

    def changes(recorded_data, *overrides):
        cfg = train_config(["data.image_size=128", *overrides])
        check_training_config(cfg)  # as train.py does before it reads a checkpoint
        return changed_settings({"PhotoDataModule": recorded_data}, cfg)

    older = {"image_size": 128, "batch_size": 4}  # written before load_size existed
    assert changes(older) == []
    assert changes(older, "data.load_size=128") == []  # the same crops, said explicitly
    assert changes(older, "data.load_size=321") == ["data.load_size=128->321"]
    assert changes({**older, "load_size": 321}, "data.load_size=321") == []
    assert changes({**older, "load_size": 321}) == ["data.load_size=321->128"]
