"""Real command-line runs: train.py -> checkpoint + TensorBoard -> infer.py, resume, errors."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, write_photo
from PIL import Image

pytestmark = pytest.mark.slow


def run(script, *args, cwd):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                          check=False, text=True, cwd=cwd, env=env, timeout=600)


def train_args(root, tmp, *extra):
    return ["debug=tiny", f"data.root={root}", f"ckpt_dir={tmp}/ckpt", f"log_dir={tmp}/logs",
            f"hydra.run.dir={tmp}/out", *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    root = tmp / "photos"
    for i in range(7):
        write_photo(root / f"p{i}.jpg", size=(80 + i, 64), seed=i)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG")
    result = run("train.py", *train_args(root, tmp), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, root, result


def test_training_writes_checkpoints_and_tensorboard(trained):
    tmp, _, _ = trained
    ckpt = tmp / "ckpt"
    assert (ckpt / "last.ckpt").is_file() and (ckpt / "starry_night.pth").is_file()
    assert (ckpt / "config.yaml").is_file()
    events = list((tmp / "logs").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    for name in ("loss", "loss_content", "loss_style", "loss_tv"):
        assert f"train/{name}" in scalars and f"val/{name}" in scalars
    assert "samples/content_vs_stylised" in acc.Tags()["images"]
    # Something to look at from the start: validation and a grid before the first step.
    assert acc.Scalars("val/loss")[0].step == 0
    assert acc.Images("samples/content_vs_stylised")[0].step == 0
    state = torch.load(ckpt / "last.ckpt", weights_only=True)
    assert state["global_step"] == 4
    assert not any(k.startswith("vgg.") for k in state["state_dict"])  # frozen VGG not stored


def test_a_clean_start_and_a_run_log(trained):
    tmp, _, result = trained
    output = result.stdout + result.stderr
    for noise in ("Tip:", "litlogger", "FLOPs", "LeafSpec", "model summary", "Epoch 0/"):
        assert noise not in output
    assert "step 4/4" in output  # the bar counts steps out of max_steps
    log = (tmp / "out" / "train.log").read_text()
    assert "photos: " in log and "max_steps=4" in log  # ours and Lightning's lines


def test_resuming_with_other_settings_is_refused_in_one_line(trained):
    tmp, root, _ = trained
    result = run("train.py", *train_args(root, tmp, "ckpt_path=last", "data.image_size=96"),
                 cwd=tmp)
    assert result.returncode == 2, result.stderr[-2000:]
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "data.image_size=64->96" in error and "accept_changed_settings=true" in error
    assert "Traceback" not in result.stderr


def test_a_resume_with_a_new_learning_rate_trains_at_that_rate(trained, tmp_path):
    """Fine-tuning after a cosine that ended at 0: the saved optimizer's rate must not win."""
    _, root, _ = trained
    first = run("train.py", *train_args(root, tmp_path, "lr_decay=cosine"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["optimizer_states"][0]["param_groups"][0]["lr"] == 0
    result = run("train.py", *train_args(root, tmp_path, "ckpt_path=last", "lr=5e-4",
                                         "accept_changed_settings=true", "trainer.max_steps=6"),
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 6
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == 5e-4
    # And with a schedule of its own: its base rate is this run's lr, at this run's step.
    result = run("train.py", *train_args(root, tmp_path, "ckpt_path=last", "lr=1e-4",
                                         "lr_warmup_steps=20", "accept_changed_settings=true",
                                         "trainer.max_steps=8"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 8
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 9 / 20)


def test_a_budget_in_minutes_ends_training_with_the_learning_rate_at_zero(trained, tmp_path):
    """trainer.max_time=...: the linear decay follows the clock, not the 100,000 steps."""
    _, root, _ = trained
    result = run("train.py", *train_args(root, tmp_path, "lr_decay=linear",
                                         "trainer.max_steps=100000",
                                         "trainer.max_time=00:00:00:12"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert 4 < state["global_step"] < 100000  # the clock stopped it
    lr = state["optimizer_states"][0]["param_groups"][0]["lr"]
    assert 0 <= lr < 0.15e-3, lr  # lr=1e-3 decayed to (nearly) 0 as the minutes ran out
    assert "time_left=0:0" in result.stdout  # the bar counts down the budget, not 100,000 steps
    # The budget counts the minutes before a resume too (Lightning's Timer is in the checkpoint):
    # continuing a run whose 12 s are spent trains no further.
    again = run("train.py", *train_args(root, tmp_path, "lr_decay=linear", "ckpt_path=last",
                                        "trainer.max_steps=100000",
                                        "trainer.max_time=00:00:00:12"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] <= state["global_step"] + 1


def test_corrupt_photo_is_skipped_with_a_warning(trained):
    _, _, result = trained
    assert "corrupt.jpg" in result.stderr and "skipping 1 unreadable" in result.stderr


@pytest.mark.parametrize("ckpt_name", ["last.ckpt", "starry_night.pth"])
def test_infer_from_either_checkpoint_keeps_the_size(trained, ckpt_name):
    tmp, _, _ = trained
    photo = write_photo(tmp / f"odd_{ckpt_name}.png", size=(45, 31), seed=9)
    out = tmp / f"out_{ckpt_name}.jpg"
    result = run("infer.py", f"ckpt={tmp / 'ckpt' / ckpt_name}", f"input={photo}", f"output={out}",
                 cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(out).size == (45, 31)


def test_resume_continues_the_global_step(trained):
    tmp, root, _ = trained
    result = run("train.py", *train_args(root, tmp, "ckpt_path=last", "trainer.max_steps=6"),
                 cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Restoring states from the checkpoint" in result.stderr + result.stdout
    state = torch.load(tmp / "ckpt" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 6
    assert torch.load(tmp / "ckpt" / "starry_night.pth", weights_only=True)["global_step"] == 6
    # One TensorBoard run whose curves go on: not a version_1 for the resumed part.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [version] = (tmp / "logs" / "starry_night").iterdir()
    assert len(list(version.glob("events.out.tfevents.*"))) == 2
    acc = EventAccumulator(str(version)).Reload()
    assert [event.step for event in acc.Scalars("train/loss")] == list(range(6))


def test_a_fresh_run_never_replaces_earlier_work(trained):
    tmp, root, _ = trained
    result = run("train.py", *train_args(root, tmp), cwd=tmp)
    assert result.returncode == 2
    assert "ckpt_path=last" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args,needle", [
    (["trainer=gpu"], "error:"),
    (["data.root=/no/such/folder"], "data.root"),
    (["style=custom", "style.image=/no/painting.jpg"], "style.image"),
    (["style=custom"], "style.image"),
])
def test_user_errors_are_one_line(tmp_path, args, needle):
    result = run("train.py", *train_args(tmp_path / "photos", tmp_path), *args, cwd=tmp_path)
    if "trainer=gpu" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0]
    assert "Traceback" not in result.stderr


def test_infer_refuses_a_foreign_checkpoint(tmp_path):
    bad = tmp_path / "other.ckpt"
    torch.save({"hyper_parameters": {"lr": 1}, "state_dict": {}}, bad)
    photo = write_photo(tmp_path / "p.png")
    result = run("infer.py", f"ckpt={bad}", f"input={photo}", f"output={tmp_path}/o.png",
                 cwd=tmp_path)
    assert result.returncode == 2 and "other than" in result.stderr
    assert "Traceback" not in result.stderr
