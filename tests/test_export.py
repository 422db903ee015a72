"""Export to ONNX / TorchScript: dynamic sizes, parity with PyTorch, and running the export."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, write_photo

from fast_style.callbacks import INFERENCE_FORMAT
from fast_style.errors import FastStyleError
from fast_style.export import export, run_exported
from fast_style.stylize import OnnxModel, load_model, load_transformer
from fast_style.transformer_net import InstanceNorm2d, TransformerNet


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual_blocks=1, output_activation="tanh")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"format": INFERENCE_FORMAT, "style_name": "tiny", "global_step": 3,
                "transformer_hparams": {"width": 8, "num_residual_blocks": 1,
                                        "output_activation": "tanh"},
                "state_dict": net.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def onnx_file(tiny_ckpt, tmp_path_factory):
    result = export(tiny_ckpt, "onnx", tmp_path_factory.mktemp("onnx") / "tiny.onnx",
                    check_size=(120, 160))
    assert result.ok, result.max_abs_error
    return result.path


@pytest.mark.parametrize("h,w", [(1, 1), (37, 53), (64, 64), (5, 130)])
def test_onnx_has_dynamic_size_and_parity(onnx_file, tiny_ckpt, h, w):
    net, _ = load_transformer(tiny_ckpt)
    image = torch.rand(1, 3, h, w)
    with torch.inference_mode():
        expected = net(image)
    out = run_exported(onnx_file, "onnx", image)
    assert out.shape == (1, 3, h, w)
    assert (out - expected).abs().max().item() < 1e-3


def test_onnx_runs_through_infer_like_a_checkpoint(onnx_file, tiny_ckpt):
    model = load_model(onnx_file)
    assert isinstance(model, OnnxModel) and model.info == {"style_name": "tiny", "global_step": 3}
    image = torch.rand(1, 3, 45, 31)
    torch_out = load_model(tiny_ckpt, "cpu", "fp32")(image)
    assert (model(image) - torch_out).abs().max().item() < 1e-3
    with pytest.raises(FastStyleError, match="fp32"):
        load_model(onnx_file, precision="bf16")


def test_foreign_onnx_is_refused(tmp_path):
    path = tmp_path / "other.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 3, 1), (torch.rand(1, 3, 8, 8),), str(path),
                      dynamo=False)
    with pytest.raises(FastStyleError, match="something other than"):
        load_model(path)


def test_torchscript_has_dynamic_size_and_parity(tiny_ckpt, tmp_path):
    result = export(tiny_ckpt, "torchscript", tmp_path / "tiny.pt", check_size=(96, 64))
    assert result.ok and result.path.is_file()
    net, _ = load_transformer(tiny_ckpt)
    for h, w in [(1, 1), (29, 71)]:
        image = torch.rand(1, 3, h, w)
        with torch.inference_mode():
            assert (run_exported(result.path, "torchscript", image) - net(image)).abs().max() < 1e-3
    # infer.py never runs a file's own code: it says what the export is for, in one line.
    with pytest.raises(FastStyleError, match="TorchScript export, made for runtimes without Python"):
        load_model(result.path)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_residual_output_exports_with_parity(tmp_path, fmt):
    torch.manual_seed(1)
    net = TransformerNet(width=8, num_residual_blocks=1, output_activation="residual")
    torch.nn.init.normal_(net.decoder[-1].weight, std=0.05)  # starts at zero: give it weights
    path = tmp_path / "residual.pth"
    torch.save({"format": INFERENCE_FORMAT, "style_name": "tiny", "global_step": 3,
                "transformer_hparams": {"width": 8, "num_residual_blocks": 1,
                                        "output_activation": "residual"},
                "state_dict": net.state_dict()}, path)
    result = export(path, fmt, tmp_path / f"residual.{'onnx' if fmt == 'onnx' else 'pt'}",
                    check_size=(45, 70))
    assert result.ok, result.max_abs_error
    image = torch.rand(1, 3, 29, 71)
    with torch.inference_mode():
        assert (run_exported(result.path, fmt, image) - net.eval()(image)).abs().max() < 1e-3


def test_parity_failure_is_reported(tiny_ckpt, tmp_path, monkeypatch):
    """The parity check is real: a wrong export is caught."""
    import fast_style.export as ex

    real = ex.run_exported
    monkeypatch.setattr(ex, "run_exported", lambda *a: real(*a) + 0.01)
    assert not export(tiny_ckpt, "torchscript", tmp_path / "t.pt", check_size=(32, 32)).ok


@pytest.mark.slow
def test_export_script_says_parity(tiny_ckpt, tmp_path):
    env = {**os.environ}
    out = tmp_path / "m.onnx"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "export.py"),
                             f"ckpt={tiny_ckpt}", "format=onnx", f"out={out}",
                             "check_size=300x400"],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "parity OK" in result.stdout and out.is_file()
    photo = write_photo(tmp_path / "p.png", size=(33, 21))
    result = subprocess.run([sys.executable, str(REPO / "infer.py"), f"ckpt={out}",
                             f"input={photo}", f"output={tmp_path / 'o.png'}"],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
