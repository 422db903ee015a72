"""The fixed judge, Gatys et al.'s optimisation baseline, and their helpers."""

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction

import pytest
import torch
from conftest import REPO, write_photo
from PIL import Image
from torch import nn

from fast_style import evaluation as ev
from fast_style.data import PhotoDataModule
from fast_style.errors import FastStyleError
from fast_style.image_io import to_tensor
from fast_style.loss_net import LAYERS


class ScaledIdentity(nn.Module):
    """A stand-in loss network whose 'features' are the pixels times 1, 2, 3, 4 by layer depth,
    so that a hand calculation sees which layer each loss reads."""

    def forward(self, images, until="relu4_3"):
        return {name: images * (k + 1) for k, name in enumerate(LAYERS)
                if LAYERS[name] <= LAYERS[until]}


def test_judge_matches_a_hand_calculation():
    # Output: 1x2 pixels (1,0,0) and (0,1,0); photo: black; style: one pixel (0,0,1).
    output = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]])
    photo = torch.zeros(3, 1, 2)
    style = torch.tensor([[[0.0]], [[0.0]], [[1.0]]])
    judge = ev.Judge(style, vgg=ScaledIdentity())
    scores = judge.score(output, photo)
    # content at relu2_2 (x2): mean((2*output)^2) over 6 values = 4 * 2/6 = 4/3.
    content = Fraction(4, 3)
    # Gram/(C*H*W): output diag(1,1,0)/6, style diag(0,0,1)/3; MSE over 9 entries of the difference
    # diag(1/6, 1/6, -1/3) = (1/36 + 1/36 + 1/9)/9 = 1/54 at scale 1; a layer scaled by k has k^4.
    style_loss = Fraction(1, 54) * (1 + 2**4 + 3**4 + 4**4)
    assert scores["content"] == pytest.approx(float(content), rel=1e-6)
    assert scores["style"] == pytest.approx(float(style_loss), rel=1e-6)
    assert scores["total"] == pytest.approx(float(content + 5 * style_loss), rel=1e-6)  # 307/9


def test_judge_is_caffe_vgg_with_johnsons_weights():
    assert ev.JUDGE_VGG == "caffe" and ev.JUDGE_CONTENT_LAYER == "relu2_2"
    assert ev.JUDGE_STYLE_LAYERS == dict.fromkeys(("relu1_2", "relu2_2", "relu3_3", "relu4_3"), 1.0)
    assert (ev.JUDGE_CONTENT_WEIGHT, ev.JUDGE_STYLE_WEIGHT, ev.JUDGE_STYLE_SIZE) == (1.0, 5.0, 256)


@pytest.fixture(scope="module")
def judge(style_path):
    return ev.Judge.from_image(style_path)  # the real Caffe VGG-16


def test_the_photo_itself_has_zero_content_loss(judge, tmp_path):
    photo = to_tensor(ev.load_image(write_photo(tmp_path / "p.png", size=(40, 30))))
    scores = judge.score(photo, photo)
    assert scores["content"] == 0.0
    assert scores["style"] > 0 and scores["total"] == pytest.approx(5 * scores["style"])


def test_the_style_image_has_zero_style_loss(judge, style_path):
    style = ev.load_photo(style_path, ev.JUDGE_STYLE_SIZE)
    assert judge.score(style, style)["style"] == pytest.approx(0.0, abs=1e-9)


def test_scores_are_of_the_saved_8_bit_image(judge, tmp_path):
    photo = to_tensor(ev.load_image(write_photo(tmp_path / "p.png", size=(24, 20))))
    # Off the 8-bit grid by less than half a level: saved, it is the photo again.
    assert judge.score(photo + 0.4 / 255, photo)["content"] == 0.0
    with pytest.raises(FastStyleError, match="same-size"):
        judge.score(photo[:, :-4], photo)


def test_optimisation_lowers_the_judged_loss(judge, tmp_path):
    photo = to_tensor(ev.load_image(write_photo(tmp_path / "p.png", size=(32, 28))))
    snapshots, _ = ev.optimise(judge, photo, [4, 2])
    assert [s.iterations for s in snapshots] == [2, 4]
    start = judge.score(photo, photo)["total"]
    assert start > snapshots[0].scores["total"] >= snapshots[1].scores["total"]
    assert snapshots[0].evaluations <= snapshots[1].evaluations
    for s in snapshots:
        assert s.image.shape == photo.shape and 0 <= s.image.min() and s.image.max() <= 1


def test_optimised_pixels_stay_in_unit_range_where_the_optimum_lies_outside():
    # Style features of 3.0 everywhere pull the pixels far above 1; the bound must hold them.
    judge = ev.Judge(torch.full((3, 2, 2), 3.0), vgg=ScaledIdentity())
    photo = torch.full((3, 2, 2), 0.8)
    snapshots, _ = ev.optimise(judge, photo, [5])
    image = snapshots[0].image
    assert image.min() >= 0 and image.max() == 1.0  # pressed against the upper bound
    assert snapshots[0].scores["total"] < judge.score(photo, photo)["total"]


def test_held_out_photos_are_the_training_split(photo_folder):
    chosen = ev.select_photos(photo_folder, val_count=3)
    datamodule = PhotoDataModule(root=str(photo_folder), val_count=3)
    datamodule.setup()
    assert chosen == datamodule.val_paths and not set(chosen) & set(datamodule.train_paths)
    assert ev.select_photos(photo_folder, val_count=3, limit=2) == chosen[:2]
    assert len(ev.select_photos(photo_folder)) == 10
    with pytest.raises(FastStyleError, match="content="):
        ev.select_photos(photo_folder / "missing")


def test_style_by_name_or_path(style_path):
    assert ev.resolve_style("starry_night", REPO / "configs" / "style") == style_path
    assert ev.resolve_style(str(style_path), REPO / "configs" / "style") == style_path
    with pytest.raises(FastStyleError, match="neither an image file nor a style name"):
        ev.resolve_style("no_such_style", REPO / "configs" / "style")


def test_mean_and_sample_std():
    assert ev.mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0}
    assert ev.mean_std([4.0]) == {"mean": 4.0, "std": 0.0}


def test_key_value_arguments():
    @dataclass
    class Options:
        size: int | None = None
        iters: str = "50"

    opts = ev.parse_key_values(Options, ["size=64", "iters=50,100,300"], "usage")
    assert opts.size == 64 and ev.parse_counts(opts.iters) == [50, 100, 300]
    assert ev.parse_counts(100) == [100] and ev.parse_counts("") == []
    for bad in (["colour=red"], ["size"], ["size=big"]):
        with pytest.raises(FastStyleError):
            ev.parse_key_values(Options, bad, "usage")
    with pytest.raises(FastStyleError):
        ev.parse_counts("0,5")


def test_contact_sheet_lays_out_labelled_tiles():
    # 50x20, 50x30, 50x40 red images in 40 px tiles, two columns: scaled to 40x16, 40x24, 40x32.
    tiles = [(Image.new("RGB", (50, 20 + 10 * i), "red"), f"tile {i}") for i in range(3)]
    sheet = ev.contact_sheet(tiles, columns=2, tile=40)
    assert sheet.width == 2 * (40 + 4) + 4
    label = 12 + 3 + 4  # one line of the 12 px font, plus spacing
    assert sheet.height == 4 + (24 + label + 4) + (32 + label + 4)  # rows as tall as their images
    column = [sheet.getpixel((24, y)) for y in range(4, 4 + 24)]
    # the first image, 16 px tall, centred in its 24 px row, with white above and below
    assert column.count((255, 0, 0)) == 16 and column[0] == column[-1] == (255, 255, 255)


# ----------------------------------------------------------------------------------------------
# The scripts, run as a person runs them


def run_script(script, *args, cwd):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], check=False,
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture
def tiny_network(tmp_path):
    from fast_style.callbacks import INFERENCE_FORMAT
    from fast_style.transformer_net import TransformerNet

    torch.manual_seed(0)
    hparams = {"width": 8, "num_residual_blocks": 1, "norm": "instance", "upsample": "nearest",
               "output_activation": "sigmoid"}
    path = tmp_path / "tiny.pth"
    torch.save({"format": INFERENCE_FORMAT, "transformer_hparams": hparams,
                "state_dict": TransformerNet(**hparams).state_dict(),
                "style_name": "starry_night", "global_step": 7}, path)
    return path


@pytest.mark.slow
def test_optimize_then_evaluate_beside_it(tmp_path, tiny_network):
    photos = tmp_path / "photos"
    for i in range(3):
        write_photo(photos / f"p{i}.jpg", size=(45 + i, 30), seed=i)
    result = run_script("scripts/optimize.py", f"content={photos}", "style=starry_night",
                        "iters=1,3", "size=32", f"out={tmp_path / 'lbfgs'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    optimised = last_json(result.stdout)
    assert set(optimised) == {"1", "3"}
    assert optimised["3"]["total"]["mean"] < optimised["1"]["total"]["mean"]
    assert Image.open(tmp_path / "lbfgs" / "p0_lbfgs3.png").size == (32, 21)

    result = run_script("scripts/evaluate.py", f"ckpt={tiny_network}", f"content={photos}",
                        "size=32", "baseline=3", f"baseline_from={tmp_path / 'lbfgs'}",
                        f"sheet={tmp_path / 'sheet.png'}", f"out={tmp_path / 'ff'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = last_json(result.stdout)
    for name in ("content", "style", "total"):
        assert set(report[name]) == {"mean", "std"} and report[name]["std"] >= 0
    assert report["total"]["mean"] == pytest.approx(report["content"]["mean"]
                                                    + 5 * report["style"]["mean"], rel=1e-6)
    assert report["ms_per_image"] > 0 and report["images"] == 3 and report["step"] == 7
    assert report["baseline"]["3"] == optimised["3"]  # reused, not recomputed
    assert "| network (step 7) |" in result.stdout and "| L-BFGS, 3 iterations |" in result.stdout
    assert len(list((tmp_path / "ff").glob("*_network.png"))) == 3
    assert Image.open(tmp_path / "sheet.png").width > 3 * 160  # photo | network | L-BFGS 3


@pytest.mark.slow
def test_evaluate_user_errors_are_one_line(tmp_path, tiny_network):
    photos = tmp_path / "photos"
    write_photo(photos / "p.jpg")
    for args, needle in [
        ([f"ckpt={tmp_path / 'missing.pth'}", f"content={photos}"], "not found"),
        ([f"ckpt={tiny_network}", f"content={photos}", "style=nope"], "style="),
        ([f"ckpt={tiny_network}", f"content={photos}", "baseline=1",
          f"baseline_from={tmp_path}"], "optimize.py"),
        ([f"ckpt={tiny_network}", f"content={photos}", "colour=red"], "unexpected argument"),
    ]:
        result = run_script("scripts/evaluate.py", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0] and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_sweep_is_summarised_with_hparams_and_final_metrics(tmp_path):
    """A real two-run multirun of train.py sharing one log folder -> summarize.py."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    photos = tmp_path / "photos"
    for i in range(6):
        write_photo(photos / f"p{i}.jpg", size=(80 + i, 64), seed=i)
    result = run_script(
        "train.py", "-m", "debug=tiny", "trainer=cpu", "loss.style_weight=2,50",
        f"data.root={photos}", "trainer.max_steps=3",  # validates at 2 and, by FinalMetrics, at 3
        f"hydra.sweep.dir={tmp_path / 'multirun'}", "hydra.sweep.subdir=${hydra.job.num}",
        "ckpt_dir=${hydra:runtime.output_dir}/ckpt", f"log_dir={tmp_path / 'logs'}",
        "run_name=starry_night",  # one log folder for both (sweep jobs get their own by default)
        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    versions = sorted((tmp_path / "logs" / "starry_night").glob("version_*"))
    assert len(versions) == 2
    for version in versions:
        acc = EventAccumulator(str(version), size_guidance={"scalars": 0}).Reload()
        val = acc.Scalars("val/loss")
        train_steps = [e.step for e in acc.Scalars("train/loss")]
        assert val[-1].step == max(train_steps)  # the final network was validated
        assert acc.Scalars("final/val_loss")[-1].value == pytest.approx(val[-1].value)
        content = acc.PluginTagToContent("hparams")
        session = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]).session_start_info
        experiment = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/experiment"]).experiment
        assert session.hparams["loss/style_weight"].number_value in (2, 50)
        assert "final/val_loss" in {m.name.tag for m in experiment.metric_infos}

    result = run_script("scripts/summarize.py", tmp_path / "multirun", "--judge", "1",
                        "--size", "48", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "multirun" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["loss.style_weight"] for row in rows) == ["2", "50"]
    losses = [float(row["val/loss"]) for row in rows]
    assert losses == sorted(losses) and all(row["note"] == "" for row in rows)
    assert all(float(row["judge/total"]) > 0 for row in rows)
    # each run found its own log version: the heavier style weight gives the larger val/loss
    by_weight = {row["loss.style_weight"]: float(row["val/loss"]) for row in rows}
    assert by_weight["50"] > by_weight["2"]
    assert "| loss.style_weight |" in (tmp_path / "multirun" / "summary.md").read_text()
    sheet = Image.open(tmp_path / "multirun" / "contact_sheet.png")
    assert sheet.width == 3 * (192 + 4) + 4  # the photo and one tile per run


def fake_job(root, num, style_weight, val_losses):
    """A finished sweep job as Hydra and the CSV logger leave it, without training anything."""
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        f"- loss.style_weight={style_weight}\n- log_dir=$\\{{hydra\\:runtime.output_dir\\}}/logs\n")
    (job / ".hydra" / "config.yaml").write_text(
        f"style: {{name: mine}}\nloss: {{style_weight: {style_weight}}}\n"
        + "log_dir: ${hydra:runtime.output_dir}/logs\nckpt_dir: ${log_dir}/../ckpt\n"
        + "logger: {_target_: lightning.pytorch.loggers.CSVLogger, save_dir: '${log_dir}', "
        + "name: '${style.name}'}\n")
    # output_dir as recorded elsewhere: a moved multirun folder must still be readable
    (job / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  job: {{num: {num}, chdir: false}}\n"
        f"  runtime: {{cwd: {root}, output_dir: /somewhere/else/{num}}}\n")
    metrics = job / "logs" / "mine" / "version_0" / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    lines = ["epoch,step,train/loss,val/loss"]
    for step, loss in val_losses:
        lines += [f"0,{step - 1},{loss * 2},", f"0,{step - 1},,{loss}"]
    metrics.write_text("\n".join(lines) + "\n")
    return job


def test_sweep_runs_are_read_back_from_their_folders(tmp_path):
    from fast_style import sweeps

    fake_job(tmp_path, 0, 10, [(2, 9.0), (4, 7.0)])
    fake_job(tmp_path, 1, 2, [(2, 5.0), (4, 3.0)])
    fake_job(tmp_path, 2, 5, [])  # crashed before validating
    runs = sweeps.load_runs(tmp_path)
    assert [r.num for r in runs] == [0, 1, 2]
    assert runs[0].metrics == {"val/loss": 7.0, "train/loss": 14.0} and runs[0].step == 3
    assert runs[0].overrides["log_dir"] == "${hydra:runtime.output_dir}/logs"
    assert runs[0].config["ckpt_dir"] == str(tmp_path / "0" / "logs" / ".." / "ckpt")
    assert runs[2].problem and not runs[2].metrics
    ranked = sweeps.sort_runs(runs, "val/loss")
    assert [r.num for r in ranked] == [1, 0, 2]  # missing metrics last
    assert [r.num for r in sweeps.sort_runs(runs, "val/loss", descending=True)] == [0, 1, 2]
    assert sweeps.varying_overrides(runs) == ["loss.style_weight"]
    with pytest.raises(FastStyleError, match="--sort"):
        sweeps.metric_columns(runs, "val/missing")


def test_styles_of_ones_own_are_judged_against_the_paintings_given(tmp_path):
    styles = REPO / "configs" / "style"
    painting = tmp_path / "mine.png"
    painting.write_bytes(b"x")
    assert ev.parse_paintings("mine:" + str(painting)) == {"mine": str(painting)}
    assert ev.resolve_style("mine", styles, {"mine": str(painting)}) == painting
    with pytest.raises(FastStyleError, match="paintings=mine:PATH"):
        ev.resolve_style("mine", styles)
    with pytest.raises(FastStyleError, match="NAME:PATH"):
        ev.parse_paintings("mine")
