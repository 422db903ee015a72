"""Every config composes, and the documented override keys exist."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

import fast_style  # noqa: F401 - registers ${fast_style.run_name:...} used by train.yaml

CONFIGS = REPO / "configs"
GROUPS = ["style", "model", "loss", "data", "trainer", "logger", "experiment", "debug",
          "hparams_search"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def compose_train(overrides=()):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    # ${hydra:...} then resolves as inside a run (set_config makes its argument read-only)
    HydraConfig.instance().set_config(cfg.copy())
    return cfg


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes(group, option):
    overrides = [f"{group}={option}"]
    if group == "style" and option == "custom":
        overrides.append("style.image=/some/painting.jpg")
    cfg = compose_train(overrides)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    assert (cfg.data.root or cfg.data.folder) and cfg.style.name
    assert cfg.trainer.max_steps > 0 or cfg.trainer.max_time  # every run has an end


def test_infer_config_composes():
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("infer", overrides=["ckpt=a.ckpt", "input=b.jpg"])
    assert cfg.ckpt == "a.ckpt"


def test_every_painting_has_a_style_config(data_dir):
    painted = {p.stem.replace("-", "_") for p in (data_dir / "styles").glob("*.jpg")
               if "crop" not in p.stem}
    assert painted <= set(options("style"))
    for name in painted:
        cfg = compose_train([f"style={name}"])
        assert cfg.style.name == name and (data_dir / "styles" / cfg.style.file).is_file()
        assert len(cfg.style.sha256) == 64 and cfg.style.url.startswith("https://")


def test_documented_override_keys():
    cfg = compose_train([
        "data.root=/photos", "data.image_size=128", "data.batch_size=8", "trainer.max_steps=7",
        "trainer.accelerator=cpu", "loss.content_weight=2", "loss.style_weight=3",
        "loss.tv_weight=0", "style.size=512", "seed=3",
    ])
    assert (cfg.data.root, cfg.data.image_size, cfg.data.batch_size) == ("/photos", 128, 8)
    assert (cfg.trainer.max_steps, cfg.trainer.accelerator) == (7, "cpu")
    assert (cfg.loss.content_weight, cfg.loss.style_weight, cfg.loss.tv_weight) == (2, 3, 0)
    assert (cfg.style.size, cfg.seed) == (512, 3)


def test_defaults_are_johnsons():
    cfg = compose_train()
    assert (cfg.data.image_size, cfg.data.batch_size, cfg.lr, cfg.trainer.max_steps) == (
        256, 4, 1e-3, 40000)
    assert (cfg.loss.content_weight, cfg.loss.style_weight, cfg.loss.tv_weight) == (1.0, 5.0, 1e-6)
    assert cfg.loss.content_layer == "relu2_2"
    assert list(cfg.loss.style_layers) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert (cfg.model.width, cfg.model.num_residual_blocks, cfg.model.norm) == (32, 5, "instance")
    assert cfg.style.size == 256 and cfg.loss.vgg_weights == "caffe"


def test_paper_experiment_is_a_delta():
    cfg = compose_train(["experiment=johnson2016"])
    assert cfg.model.upsample == "transposed" and cfg.data.folder == "coco/train2014"
    assert cfg.data.url.endswith("train2014.zip")


def test_cpu_budget_is_the_measured_recipe_on_top_of_the_defaults():
    # benchmarks/time_to_quality.md: what each of these bought, at equal steps
    cfg = compose_train(["experiment=cpu_budget"])
    assert (cfg.data.image_size, cfg.data.load_size, cfg.loss.content_weight) == (128, 321, 2.0)
    assert (cfg.lr, cfg.lr_warmup_steps, cfg.lr_decay) == (2e-3, 100, "linear")
    # A budget in minutes (20 from the command, start-up included), not in steps.
    assert (cfg.trainer.max_time, cfg.trainer.max_steps) == ("00:00:19:35", -1)
    longer = compose_train(["experiment=cpu_budget", "trainer.max_time=00:01:00:00"])
    assert longer.trainer.max_time == "00:01:00:00"  # a string, as Lightning's Timer wants
    assert (cfg.loss.style_weight, cfg.data.batch_size, cfg.model.width) == (5.0, 4, 32)
    assert compose_train().data.load_size is None  # the default stays Johnson's whole photo


def test_unknown_style_lists_the_known_ones():
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "style=nope"],
                            capture_output=True, text=True, cwd=Path(REPO), check=False)
    assert result.returncode != 0
    assert "starry_night" in result.stderr and "mosaic" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_tiny_writes_to_folders_of_its_own():
    tiny, real = compose_train(["debug=tiny"]), compose_train([])
    assert tiny.ckpt_dir.startswith("checkpoints/debug/") and tiny.log_dir == "logs/debug"
    assert not real.ckpt_dir.startswith("checkpoints/debug") and real.log_dir == "logs"


def test_the_download_command_the_data_configs_name_exists():
    for config in (CONFIGS / "data").glob("*.yaml"):
        for script in re.findall(r"python (scripts/\S+\.py)", config.read_text()):
            assert (CONFIGS.parent / script).is_file(), f"{config.name} names {script}"
