"""Real command-line runs of a two-style network: train, stylise with style= and mix=, add a
third style by fine-tuning, and the first two stay bit-identical."""

import numpy as np
import pytest
import torch
from conftest import write_photo
from PIL import Image
from test_cli import run

pytestmark = pytest.mark.slow


def test_train_two_styles_stylise_blend_and_add_a_third(tmp_path):
    root = tmp_path / "photos"
    for i in range(6):
        write_photo(root / f"p{i}.jpg", size=(72 + i, 64), seed=i)
    tiny = ["debug=tiny", "model.width=8", "model.num_residual_blocks=1", f"data.root={root}",
            "trainer=cpu", f"log_dir={tmp_path}/logs", f"hydra.run.dir={tmp_path}/out"]
    result = run("train.py", "style=[starry_night,mosaic]", f"ckpt_dir={tmp_path}/two", *tiny,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    two = tmp_path / "two" / "starry_night+mosaic.pth"
    payload = torch.load(two, weights_only=True)
    assert payload["format"] == "fast-style/transformer-v2"
    assert payload["style_names"] == ["starry_night", "mosaic"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = next((tmp_path / "logs").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent), size_guidance={"images": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in ("train/loss_style", "train/loss_style/starry_night", "train/loss_style/mosaic",
                "val/loss_style/mosaic", "val/loss_johnson/starry_night", "val/loss"):
        assert tag in scalars, tag
    grid = acc.Images("samples/content_vs_stylised")[-1]
    assert grid.height > 3 * grid.width / 4 * 0.5  # photos, then one row per style: 3 rows

    photo = write_photo(tmp_path / "photo.png", size=(90, 70), seed=9)
    outputs = {}
    for name, arg in (("mosaic", "style=mosaic"), ("blend", "mix=starry_night:0.7,mosaic:0.3")):
        out = tmp_path / f"{name}.png"
        result = run("infer.py", f"ckpt={two}", f"input={photo}", f"output={out}", "device=cpu",
                     arg, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[name] = np.asarray(Image.open(out))
    assert not np.array_equal(outputs["mosaic"], outputs["blend"])  # (4 tiny steps: close)
    result = run("infer.py", f"ckpt={two}", f"input={photo}", "style=wave", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: style 'wave' is not in this network; it knows starry_night, mosaic")

    result = run("train.py", f"finetune={two}", "style=[candy]", f"ckpt_dir={tmp_path}/three",
                 *tiny, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    three = tmp_path / "three" / "starry_night+mosaic+candy.pth"
    assert torch.load(three, weights_only=True)["style_names"] == ["starry_night", "mosaic", "candy"]
    again = tmp_path / "mosaic_again.png"
    result = run("infer.py", f"ckpt={three}", f"input={photo}", f"output={again}", "device=cpu",
                 "style=mosaic", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.array_equal(np.asarray(Image.open(again)), outputs["mosaic"])
