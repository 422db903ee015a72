"""Inference on real-world photos: any size, tiling, colour, strength, files, checkpoints."""

from __future__ import annotations

import argparse
import errno
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import REPO, write_photo
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from fast_style.batch import plan_jobs, run_jobs
from fast_style.callbacks import INFERENCE_FORMAT
from fast_style.errors import FastStyleError
from fast_style.image_io import load_photo
from fast_style.stylize import (
    StyleOptions,
    TorchModel,
    blend_weights,
    load_model,
    plan_spans,
    stylize_photo,
    stylize_tiled,
    tile_grid,
)
from fast_style.transformer_net import InstanceNorm2d, TransformerNet

CPU = torch.device("cpu")


def tiny_net(seed: int = 0, output_activation: str = "sigmoid") -> TransformerNet:
    """A small network with non-trivial norm parameters, so statistics matter to the output."""
    torch.manual_seed(seed)
    net = TransformerNet(width=8, num_residual_blocks=2, output_activation=output_activation)
    if output_activation == "residual":  # its last conv starts at zero: give it weights
        torch.nn.init.normal_(net.decoder[-1].weight, std=0.05)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    net = tiny_net()
    torch.save({"format": INFERENCE_FORMAT, "style_name": "tiny", "global_step": 7,
                "transformer_hparams": {"width": 8, "num_residual_blocks": 2},
                "state_dict": net.state_dict()}, path)
    return path


def fp32_model(seed: int = 0, output_activation: str = "sigmoid") -> TorchModel:
    return TorchModel(tiny_net(seed, output_activation), {"style_name": "tiny"}, CPU, "fp32")


def photo_tensor(w: int, h: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
    return TF.pil_to_tensor(img)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


# ---------------------------------------------------------------------------------- any size

@pytest.mark.parametrize("w,h", [(1, 1), (3, 5), (53, 37), (7, 101), (16, 16), (130, 67)])
def test_output_size_equals_input_size(w, h):
    model = fp32_model()
    image = photo_tensor(w, h)
    assert stylize_photo(model, image, StyleOptions(tile=0)).shape == (3, h, w)
    if max(w, h) > 64:  # and through the tiled path
        assert stylize_photo(model, image, StyleOptions(tile=64, tile_overlap=16)).shape == (3, h, w)


def test_instance_norm_fast_paths_equal_the_stock_layer():
    norm = InstanceNorm2d(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    stock = torch.nn.InstanceNorm2d(6, affine=True)
    stock.load_state_dict(norm.state_dict())
    x = torch.randn(1, 6, 13, 9) * 3 + 1
    norm.eval()
    torch.testing.assert_close(norm(x), stock(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm(x.repeat(2, 1, 1, 1)), stock(x.repeat(2, 1, 1, 1)))
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
    norm.stats = (mean, var)  # given statistics equal to its own: same result
    torch.testing.assert_close(norm(x), stock(x), atol=1e-5, rtol=1e-5)
    norm.stats = (mean + 1, var)
    assert not torch.allclose(norm(x), stock(x), atol=1e-2)
    assert set(norm.state_dict()) == {"weight", "bias"}  # checkpoints keep loading


# ------------------------------------------------------------------------------------ tiling

@pytest.mark.parametrize("length,window,overlap", [(1080, 512, 64), (3840, 1024, 64),
                                                   (300, 64, 16), (1028, 1024, 64), (68, 64, 16)])
def test_tile_plan_partitions_the_image_and_blends_to_one(length, window, overlap):
    spans = plan_spans(length, window, overlap)
    assert spans[0].start == 0 and spans[-1].end == length
    assert all(s.end - s.start <= window and s.start % 4 == 0 and s.end % 4 == 0 for s in spans)
    assert [s.core_end for s in spans[:-1]] == [s.core_start for s in spans[1:]]
    for s in spans:  # real context on both sides of every core
        assert s.core_start == 0 or s.core_start - s.start >= overlap // 2 - 2
        assert s.core_end == length or s.end - s.core_end >= overlap // 2 - 2
    total = torch.zeros(length)
    for s in spans:
        total[s.start:s.end] += blend_weights(s, length, overlap // 2)
    torch.testing.assert_close(total, torch.ones(length))


def _naive_tiles(model, image, tile, overlap):
    """What the peers do: every tile normalised with its own statistics."""
    h, w = image.shape[-2:]
    out = torch.zeros(3, h, w)
    for ys, xs in tile_grid(h, w, tile, overlap):
        y0, y1, x0, x1 = ys.core_start, min(ys.core_end, h), xs.core_start, min(xs.core_end, w)
        crop = TF.to_dtype(image[:, ys.start:min(ys.end, h), xs.start:min(xs.end, w)],
                           torch.float32, scale=True)
        y = model(crop[None])[0]
        out[:, y0:y1, x0:x1] = y[:, y0 - ys.start:y1 - ys.start, x0 - xs.start:x1 - xs.start]
    return out


@pytest.mark.parametrize("output_activation", ["sigmoid", "residual"])
def test_tiled_matches_untiled(output_activation):
    model = fp32_model(output_activation=output_activation)
    image = photo_tensor(300, 212, seed=3)
    whole = model(TF.to_dtype(image, torch.float32, scale=True)[None])[0]
    tiled = stylize_tiled(model, image, tile=96, overlap=24)
    assert len(tile_grid(212, 300, 96, 24)) >= 9
    assert psnr(tiled, whole) >= 35
    # The test can tell: per-tile statistics are far off on the same image.
    assert psnr(_naive_tiles(model, image, 96, 24), whole) < psnr(tiled, whole) - 15


def test_tiled_bf16_is_close_to_untiled_bf16():
    model = TorchModel(tiny_net(), {}, CPU, "bf16")
    image = photo_tensor(200, 140, seed=4)
    whole = model(TF.to_dtype(image, torch.float32, scale=True)[None])[0]
    assert psnr(stylize_tiled(model, image, tile=64, overlap=16), whole) >= 35


def test_auto_tiling_starts_above_the_pixel_budget():
    options = StyleOptions(auto_tile_pixels=100 * 100)
    assert options.tile_for(100, 100) == 0
    assert options.tile_for(101, 100) > 0
    assert StyleOptions(tile=0).tile_for(10_000, 10_000) == 0
    assert StyleOptions(tile=128).tile_for(100, 120) == 0  # fits one tile: whole
    model = fp32_model()
    image = photo_tensor(120, 90, seed=5)
    auto = stylize_photo(model, image, StyleOptions(auto_tile_pixels=50 * 50))
    whole = stylize_photo(model, image, StyleOptions(tile=0))
    assert (auto.int() - whole.int()).abs().max() <= 1


def test_automatic_tiling_threshold_follows_the_device(monkeypatch):
    from fast_style.stylize import AUTO_TILE_PIXELS, GPU_BYTES_PER_PIXEL, auto_tile_pixels

    free = 141 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, free))
    gpu = torch.device("cuda")
    assert auto_tile_pixels(CPU) == auto_tile_pixels(None) == AUTO_TILE_PIXELS
    assert auto_tile_pixels(gpu) == free // 2 // GPU_BYTES_PER_PIXEL  # ~84 MP
    assert StyleOptions().tile_for(2160, 3840) > 0  # 4K tiles on a CPU ...
    assert StyleOptions().tile_for(2160, 3840, gpu) == 0  # ... and runs whole on this GPU
    assert StyleOptions(auto_tile_pixels=100).tile_for(20, 20, gpu) > 0  # a given value wins
    free = 2**30  # a small card never gets a lower threshold than the CPU's
    assert auto_tile_pixels(gpu) == AUTO_TILE_PIXELS


def test_a_whole_pass_out_of_memory_falls_back_to_tiles():
    class TightMemory(TorchModel):
        def __call__(self, image):  # the whole-image pass; tiles go through the stages
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    net = tiny_net()
    image = photo_tensor(120, 90, seed=6)
    whole = stylize_photo(TorchModel(net, {}, CPU, "fp32"), image, StyleOptions(tile=0))
    tiled = stylize_photo(TightMemory(net, {}, CPU, "fp32"), image, StyleOptions())
    assert (tiled.int() - whole.int()).abs().max() <= 1
    with pytest.raises(torch.OutOfMemoryError):  # tile=0 asked for one pass: no silent tiles
        stylize_photo(TightMemory(net, {}, CPU, "fp32"), image, StyleOptions(tile=0))


# --------------------------------------------------------------------------- colour, strength

def test_strength_zero_is_the_identity_and_strength_blends():
    model = fp32_model()
    image = photo_tensor(40, 30)
    assert torch.equal(stylize_photo(model, image, StyleOptions(strength=0)), image)
    full = stylize_photo(model, image, StyleOptions(strength=1)).float()
    half = stylize_photo(model, image, StyleOptions(strength=0.5)).float()
    assert (half - (full + image.float()) / 2).abs().max() <= 1
    with pytest.raises(FastStyleError, match="strength"):
        stylize_photo(model, image, StyleOptions(strength=1.5))


def _ycbcr(pixels: torch.Tensor) -> np.ndarray:
    return np.asarray(TF.to_pil_image(pixels).convert("YCbCr"), dtype=np.float64)


def test_preserve_color_keeps_the_original_chroma():
    model = fp32_model(seed=1)
    image = photo_tensor(64, 48, seed=6)
    kept = stylize_photo(model, image, StyleOptions(preserve_color=True))
    plain = stylize_photo(model, image, StyleOptions())
    orig, out, sty = _ycbcr(image), _ycbcr(kept), _ycbcr(plain)
    inside = (kept > 2).all(0).numpy() & (kept < 253).all(0).numpy()  # unclipped pixels
    assert inside.mean() > 0.5
    chroma_error = np.abs(out[..., 1:] - orig[..., 1:])[inside]
    assert chroma_error.max() <= 2.5  # 8-bit rounding
    assert np.abs(out[..., 0] - sty[..., 0])[inside].mean() <= 1.5  # the stylised luminance
    assert np.abs(sty[..., 1:] - orig[..., 1:]).mean() > 5  # without it the chroma moves


# ----------------------------------------------------------------------------------- files

def test_alpha_is_reattached(tmp_path, tiny_ckpt):
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., :3] = np.asarray(TF.to_pil_image(photo_tensor(40, 30)))
    rgba[..., 3] = np.linspace(0, 255, 40, dtype=np.uint8)[None]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "la.png")
    model = load_model(tiny_ckpt, "cpu", "fp32")
    summary = run_jobs(model, plan_jobs(str(tmp_path), str(tmp_path / "out")), StyleOptions(),
                       progress=False)
    assert not summary.failed
    out = Image.open(tmp_path / "out" / "a.png")
    assert out.mode == "RGBA" and out.size == (40, 30)
    assert np.array_equal(np.asarray(out)[..., 3], rgba[..., 3])
    assert not np.array_equal(np.asarray(out)[..., :3], rgba[..., :3])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "la.png"))[..., 3],
                          rgba[..., 3])
    # A format without alpha says so instead of failing silently.
    notes = []
    run_jobs(model, plan_jobs(str(tmp_path / "a.png"), str(tmp_path / "a.jpg")), StyleOptions(),
             progress=False, say=notes.append)
    assert any("transparency dropped" in n for n in notes)


def test_odd_modes_and_exif_orientation(tmp_path):
    base = TF.to_pil_image(photo_tensor(40, 30))
    base.convert("L").save(tmp_path / "gray.png")
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    base.convert("CMYK").save(tmp_path / "cmyk.jpg")
    wide = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "gray16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    base.save(tmp_path / "rotated.jpg", exif=exif)
    for name in ("gray.png", "palette.png", "cmyk.jpg", "gray16.png"):
        photo = load_photo(tmp_path / name)
        assert photo.rgb.shape == (3, 30, 40) and photo.rgb.dtype == torch.uint8, name
    # 16-bit is scaled into 8 bits, not clipped to white
    gray16 = load_photo(tmp_path / "gray16.png").rgb[0].int()
    assert (gray16 - torch.from_numpy(np.array(base.convert("L"))).int()).abs().max() <= 1
    assert load_photo(tmp_path / "rotated.jpg").rgb.shape == (3, 40, 30)


def test_a_folder_with_a_corrupt_photo_carries_on(tmp_path, photo_folder, tiny_ckpt):
    (photo_folder / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    jobs = plan_jobs(str(photo_folder), str(tmp_path / "out"), "png")
    assert len(jobs) == 11  # ten photos + the broken one; notes.txt is no photo
    messages = []
    summary = run_jobs(load_model(tiny_ckpt, "cpu", "fp32"), jobs, StyleOptions(),
                       progress=False, say=messages.append)
    assert len(summary.written) == 10 and [p.name for p, _ in summary.failed] == ["broken.jpg"]
    assert any("broken.jpg" in m and m.startswith("error:") for m in messages)
    assert (tmp_path / "out" / "sub" / "h.png").is_file()  # mirrored names, format applied
    assert Image.open(tmp_path / "out" / "b.png").size == Image.open(photo_folder / "b.JPG").size
    assert not list((tmp_path / "out").rglob(".*"))  # no temp files left behind


def test_inputs_are_never_overwritten(tmp_path, photo_folder):
    with pytest.raises(FastStyleError, match="overwrite the input"):
        plan_jobs(str(photo_folder), str(photo_folder))
    with pytest.raises(FastStyleError, match="overwrite the input"):
        plan_jobs(str(photo_folder / "a.jpg"), str(photo_folder / "a.jpg"))
    with pytest.raises(FastStyleError, match="overwrite the input"):  # a.jpg -> a.png exists
        write_photo(photo_folder / "a.png")
        plan_jobs(str(photo_folder), str(photo_folder), "png")
    (photo_folder / "x.png").unlink(missing_ok=True)
    twins = tmp_path / "twins"
    write_photo(twins / "p.jpg")
    write_photo(twins / "p.webp")
    with pytest.raises(FastStyleError, match="both be written"):
        plan_jobs(str(twins), str(tmp_path / "o"), "png")
    # Results kept inside the input folder are not taken for inputs on the next run.
    inner = twins / "stylised"
    write_photo(inner / "p.jpg")
    assert {j.source.name for j in plan_jobs(str(twins), str(inner))} == {"p.jpg", "p.webp"}


def test_globs_and_default_outputs(tmp_path, photo_folder):
    jobs = plan_jobs(str(photo_folder / "**" / "*.jpg"), str(tmp_path / "o"))
    assert sorted(j.target.relative_to(tmp_path / "o").as_posix() for j in jobs) == [
        "a.jpg", "j.jpg", "sub/g.jpg", "sub/i.jpg"]
    (job,) = plan_jobs(str(photo_folder / "d.png"), None, "jpg")
    assert job.target == photo_folder / "d_stylised.jpg"
    assert plan_jobs(str(photo_folder), None)[0].target.parent == tmp_path / "photos_stylised"
    with pytest.raises(FastStyleError, match="not found"):
        plan_jobs(str(tmp_path / "nothing.jpg"))
    with pytest.raises(FastStyleError, match="format"):
        plan_jobs(str(photo_folder), str(tmp_path / "o"), "docx")


def test_writes_are_atomic(tmp_path, tiny_ckpt, monkeypatch):
    src = write_photo(tmp_path / "p.png")
    target = tmp_path / "out" / "p.png"

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    summary = run_jobs(load_model(tiny_ckpt, "cpu", "fp32"), plan_jobs(str(src), str(target)),
                       StyleOptions(), progress=False, say=lambda m: None)
    assert summary.failed and "No space left on device" in summary.failed[0][1]
    assert not target.exists() and not list((tmp_path / "out").iterdir())


def test_max_size_and_skip_existing(tmp_path, tiny_ckpt):
    src = write_photo(tmp_path / "p.png", size=(90, 45))
    model = load_model(tiny_ckpt, "cpu", "fp32")
    jobs = plan_jobs(str(src), str(tmp_path / "o.png"))
    run_jobs(model, jobs, StyleOptions(), max_size=30, progress=False)
    assert Image.open(tmp_path / "o.png").size == (30, 15)
    summary = run_jobs(model, jobs, StyleOptions(), skip_existing=True, progress=False)
    assert summary.skipped and not summary.written


# ----------------------------------------------------------------------------- checkpoints

class Payload:  # any class: weights_only loading must refuse to build it
    pass


def test_checkpoints_are_untrusted_input(tmp_path, tiny_ckpt):
    evil = tmp_path / "evil.pth"
    torch.save({"format": INFERENCE_FORMAT, "state_dict": {}, "payload": Payload()}, evil)
    with pytest.raises(FastStyleError, match="weights_only"):
        load_model(evil)
    namespace = tmp_path / "ns.ckpt"
    torch.save({"hyper_parameters": argparse.Namespace(lr=1), "state_dict": {}}, namespace)
    with pytest.raises(FastStyleError, match="weights_only"):
        load_model(namespace)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(tiny_ckpt.read_bytes()[:5000])
    with pytest.raises(FastStyleError, match="not a readable checkpoint") as info:
        load_model(corrupt)
    assert "\n" not in str(info.value)
    other = tmp_path / "other.ckpt"
    torch.save({"hyper_parameters": {"lr": 1}, "state_dict": {}}, other)
    with pytest.raises(FastStyleError, match="other than"):
        load_model(other)
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"not onnx")
    with pytest.raises(FastStyleError, match="ONNX"):
        load_model(bad_onnx)


def test_device_and_precision_choices(tiny_ckpt):
    model = load_model(tiny_ckpt, "auto", "auto")
    assert model.precision in ("fp32", "bf16", "fp16")
    assert load_model(tiny_ckpt, "cpu", "fp32").precision == "fp32"
    with pytest.raises(FastStyleError, match="precision"):
        load_model(tiny_ckpt, "cpu", "fp8")
    if not torch.cuda.is_available():
        with pytest.raises(FastStyleError, match="not available"):
            load_model(tiny_ckpt, "cuda")


def test_bf16_stays_close_to_fp32(tiny_ckpt):
    image = photo_tensor(96, 80, seed=8)
    fp32 = stylize_photo(load_model(tiny_ckpt, "cpu", "fp32"), image).float() / 255
    bf16 = stylize_photo(load_model(tiny_ckpt, "cpu", "bf16"), image).float() / 255
    assert psnr(bf16, fp32) >= 35


@pytest.mark.slow
def test_compiled_model_matches_eager_on_every_size(tiny_ckpt):
    """compile=true: torch.compile (Inductor, freezing) gives the eager result, on a first
    shape, on a second (recompiled with symbolic sizes) and on a third (no new compilation)."""
    eager = load_model(tiny_ckpt, "cpu", "fp32")
    compiled = load_model(tiny_ckpt, "cpu", "fp32", compile=True)
    assert compiled.describe().endswith(", compiled")
    for w, h in [(96, 80), (120, 64), (72, 104)]:
        image = photo_tensor(w, h, seed=w)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = stylize_photo(compiled, image)
        assert compiled.compile, [str(w.message) for w in caught]  # no fallback to eager
        assert psnr(got.float() / 255, stylize_photo(eager, image).float() / 255) >= 45


def test_compiled_model_falls_back_to_eager_with_one_warning(tiny_ckpt, monkeypatch):
    class BackendCompilerFailed(RuntimeError):  # how Dynamo wraps the backend's error
        def __init__(self):
            super().__init__("backend='inductor' raised:\nInvalidCxxCompiler: ...")
            self.inner_exception = OSError("No working C++ compiler found\nmore lines")

    def broken_compile(module, **kwargs):
        def run(x):
            raise BackendCompilerFailed()
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = load_model(tiny_ckpt, "cpu", "fp32", compile=True)
    image = photo_tensor(64, 48)
    with pytest.warns(UserWarning, match=r"compile=true failed.*\(OSError: No working C\+\+ "
                      r"compiler found\)$"):
        got = stylize_photo(model, image)
    assert not model.compile
    assert torch.equal(got, stylize_photo(load_model(tiny_ckpt, "cpu", "fp32"), image))


def test_compiled_model_leaves_hooked_and_tiled_passes_eager(tiny_ckpt, monkeypatch):
    """Video's shared statistics hook the norms; a frozen graph would skip the hooks."""
    calls, compilations = [], []

    def counting_compile(module, **kwargs):
        compilations.append(kwargs)

        def run(x):
            calls.append(x.shape)
            return module(x)
        return run

    monkeypatch.setattr(torch, "compile", counting_compile)
    model = load_model(tiny_ckpt, "cpu", "fp32", compile=True)
    image = photo_tensor(64, 48)
    stylize_photo(model, image)
    assert len(calls) == 1
    handle = model.norms[0].register_forward_pre_hook(lambda module, args: None)
    stylize_photo(model, image)
    handle.remove()
    stylize_photo(model, photo_tensor(200, 136), StyleOptions(tile=64, tile_overlap=16))
    assert len(calls) == 1
    assert compilations == [{"options": {"freezing": True}}]
    model.use_style_weights(None)  # frozen weights are stale: compile again on the next pass
    stylize_photo(model, image)
    assert len(calls) == 2 and len(compilations) == 2
    with pytest.raises(FastStyleError, match="compile=true needs a PyTorch"):
        load_model(tiny_ckpt.with_suffix(".onnx"), compile=True)


# ------------------------------------------------------------------------------ the CLI

def run_infer(*args, cwd):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(REPO / "infer.py"), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600, check=False)


@pytest.mark.slow
def test_cli_folder_with_a_corrupt_photo_exits_1(tmp_path, photo_folder, tiny_ckpt):
    (photo_folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = run_infer(f"ckpt={tiny_ckpt}", f"input={photo_folder}", f"output={tmp_path}/out",
                       "format=png", "preserve_color=true", "strength=0.8", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "bad.png" in result.stderr and "1 of 11 photos failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(list((tmp_path / "out").rglob("*.png"))) == 10
    assert "wrote 10 of 11 photos" in result.stdout


@pytest.mark.slow
def test_cli_user_errors_are_one_line(tmp_path, tiny_ckpt):
    photo = write_photo(tmp_path / "p.png")
    corrupt = tmp_path / "c.pth"
    corrupt.write_bytes(b"garbage")
    for args, needle in [((f"ckpt={corrupt}", f"input={photo}"), "not a readable checkpoint"),
                         ((f"ckpt={tiny_ckpt}", f"input={photo}", f"output={photo}"),
                          "overwrite the input"),
                         ((f"ckpt={tiny_ckpt}", f"input={photo}", "tile=12"), "tile=12")]:
        result = run_infer(*args, cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and needle in errors[0], result.stderr
        assert "Traceback" not in result.stderr
