"""Video: clips made here with PyAV (with sound) go through infer's planning and running."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import warnings

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, write_photo
from PIL import Image
from test_infer import fp32_model, psnr, tiny_ckpt  # noqa: F401 - tiny_ckpt is a fixture
from torchvision.transforms.v2 import functional as TF

from fast_style.batch import plan_jobs, run_jobs
from fast_style.errors import FastStyleError
from fast_style.stylize import StyleOptions, stylize_photo
from fast_style.video import StabilizeOptions, Stabilizer, VideoOptions, is_video
from fast_style.video.flicker import WarpingErrorMeter, flicker
from fast_style.video.io import read_frames
from fast_style.video.motion import FlowEstimator, consistent, warp

W, H, FPS, FRAMES = 64, 48, 12, 10


def scene(seed: int, w: int = W, h: int = H) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC))


def clip_frames(count=FRAMES, motion=2, noise=0.0, seed=0, w=W, h=H) -> list[np.ndarray]:
    """A scene sliding ``motion`` px a frame, with Gaussian noise of std ``noise`` (0..255)."""
    rng = np.random.default_rng(seed + 1)
    wide = scene(seed, w + motion * count, h)
    frames = []
    for i in range(count):
        f = wide[:, i * motion:i * motion + w].astype(np.float32)
        f = f + rng.normal(0, noise, f.shape) if noise else f
        frames.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return frames


def write_clip(path, frames, fps=FPS, vcodec="libx264", acodec="aac", audio=True):
    """A clip with a 440 Hz tone as its sound; lossless x264 so that tests see their frames."""
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream(vcodec, rate=fps, options={"crf": "0"})
        video.width, video.height, video.pix_fmt = w, h, "yuv444p"
        sound = out.add_stream(acodec, rate=48000, layout="mono") if audio else None
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            t = np.arange(round(48000 * len(frames) / fps)) / 48000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            samples = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 48000, 0
            out.mux(sound.encode(samples))
            out.mux(sound.encode(None))
    return path


def probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"size": (v.codec_context.width, v.codec_context.height),
                "rate": v.average_rate, "duration": c.duration / av.time_base,
                "audio": [a.codec_context.name for a in c.streams.audio]}
        audio = [bytes(p) for p in c.demux(*c.streams.audio) if p.dts is not None] \
            if c.streams.audio else []
    info["frames"] = sum(1 for _ in read_frames(path))
    return info, audio


def run(model, source, target, max_size=None, **video):
    stabilize = StabilizeOptions.parse(video.pop("stabilize", True))
    jobs = plan_jobs(str(source), str(target))
    said = []
    summary = run_jobs(model, jobs, StyleOptions(), progress=False, say=said.append,
                       video=VideoOptions(stabilize, **video), max_size=max_size)
    return summary, said


# ------------------------------------------------------------------------------- files

def test_mp4_keeps_frames_size_rate_duration_and_audio_bytes(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", clip_frames())
    summary, said = run(fp32_model(), source, tmp_path / "out.mp4")
    assert not summary.failed and said == []
    before, audio_in = probe(source)
    after, audio_out = probe(tmp_path / "out.mp4")
    assert after["frames"] == before["frames"] == FRAMES
    assert after["size"] == (W, H) and after["rate"] == FPS
    assert after["duration"] == pytest.approx(before["duration"], abs=1 / FPS)
    assert after["audio"] == ["aac"] and audio_out == audio_in  # copied, not re-encoded
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_webm_reencodes_audio_it_cannot_hold_and_says_so(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", clip_frames())
    summary, said = run(fp32_model(), source, tmp_path / "out.webm", stabilize=False)
    info, _ = probe(tmp_path / "out.webm")
    assert not summary.failed and info["frames"] == FRAMES and info["audio"] == ["opus"]
    assert any("re-encoded to libopus" in line for line in said)


def test_frame_by_frame_equals_the_photo_path_frame_for_frame(tmp_path):
    frames = clip_frames(count=5, noise=4)
    source = write_clip(tmp_path / "clip.mkv", frames, audio=False)
    # Lossless RGB x264: what is decoded is exactly what was stylised.
    summary, said = run(fp32_model(), source, tmp_path / "out.mkv", stabilize=False,
                        codec="libx264rgb", crf=0)
    assert not summary.failed, said
    model = fp32_model()
    decoded = list(read_frames(source))
    written = list(read_frames(tmp_path / "out.mkv"))
    assert len(written) == len(decoded) == 5
    for image, output in zip(decoded, written):
        assert torch.equal(output, stylize_photo(model, image))


def test_max_size_scales_video_frames_down_as_it_does_photos(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", clip_frames(count=4, w=96, h=64), audio=False)
    summary, said = run(fp32_model(), source, tmp_path / "small.mp4", max_size=40)
    assert not summary.failed, said
    frames = list(read_frames(tmp_path / "small.mp4"))
    assert len(frames) == 4 and frames[0].shape == (3, 26, 40)  # 96x64 -> 40x26.7 -> even 26
    summary, said = run(fp32_model(), source, tmp_path / "same.mp4", max_size=500)  # never up
    assert [f.shape for f in read_frames(tmp_path / "same.mp4")] == [(3, 64, 96)] * 4


def test_animated_gif_in_and_out_keeps_every_frame_and_its_timing(tmp_path):
    frames = [Image.fromarray(f) for f in clip_frames(count=4)]
    source = tmp_path / "anim.gif"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=[100, 200, 100, 300],
                   loop=0)
    assert is_video(source) and not is_video(write_photo(tmp_path / "still.gif"))
    summary, _ = run(fp32_model(), source, tmp_path / "out.gif")
    assert not summary.failed
    with Image.open(tmp_path / "out.gif") as out:
        assert out.n_frames == 4 and out.size == (W, H)
        durations = []
        for i in range(out.n_frames):
            out.seek(i)
            durations.append(out.info["duration"])
    assert durations[:3] == [100, 200, 100]  # GIF's last frame has no end time in FFmpeg's view
    run(fp32_model(), source, tmp_path / "out.mp4")
    assert probe(tmp_path / "out.mp4")[0]["frames"] == 4


def test_corrupt_and_truncated_videos_are_one_line_and_leave_nothing(tmp_path):
    good = write_clip(tmp_path / "in" / "good.mp4", clip_frames())
    (tmp_path / "in" / "garbage.mp4").write_bytes(b"not a video at all" * 100)
    data = good.read_bytes()
    (tmp_path / "in" / "truncated.mp4").write_bytes(data[:len(data) // 2])
    summary, said = run(fp32_model(), tmp_path / "in", tmp_path / "out")
    assert [p.name for p in summary.written] == ["good.mp4"]
    assert sorted(p.name for p, _ in summary.failed) == ["garbage.mp4", "truncated.mp4"]
    for line in said:
        assert line.startswith("error: ") and "\n" not in line and "cannot read video" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4"]


def test_interrupt_leaves_no_half_written_video(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", clip_frames())
    model, calls = fp32_model(), []

    class Interrupted:  # the real model, with Ctrl-C arriving during the fourth frame
        def __getattr__(self, name):
            return getattr(model, name)

        def __call__(self, x):
            calls.append(1)
            if len(calls) == 4:
                raise KeyboardInterrupt
            return model(x)

    with pytest.raises(KeyboardInterrupt):
        run(Interrupted(), source, tmp_path / "out" / "clip.mp4", stabilize=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_folder_of_videos_and_photos_mirrors_names(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    write_clip(root / "a.mp4", clip_frames(count=3))
    (root / "sub").mkdir()
    write_clip(root / "sub" / "b.mkv", clip_frames(count=3), audio=False)
    write_photo(root / "c.jpg")
    frames = [Image.fromarray(f) for f in clip_frames(count=3)]
    frames[0].save(root / "d.gif", save_all=True, append_images=frames[1:], duration=100)
    jobs = plan_jobs(str(root), str(tmp_path / "out"), "png")  # format= applies to the photos
    assert sorted(str(j.target.relative_to(tmp_path / "out")) for j in jobs) == \
        ["a.mp4", "c.png", "d.gif", "sub/b.mkv"]
    summary = run_jobs(fp32_model(), jobs, StyleOptions(), progress=False, say=lambda _: None)
    assert not summary.failed and len(summary.written) == 4
    assert probe(tmp_path / "out" / "sub" / "b.mkv")[0]["frames"] == 3
    with Image.open(tmp_path / "out" / "d.gif") as gif:
        assert gif.n_frames == 3


def test_a_video_written_as_a_photo_is_refused_before_anything_runs(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", clip_frames(count=2), audio=False)
    with pytest.raises(FastStyleError, match="not a video file"):
        plan_jobs(str(source), str(tmp_path / "out.png"))


# ------------------------------------------------------------------------- stability

def stylise(frames, mode, options=None, model=None):
    stabilizer = Stabilizer(model or fp32_model(), options or StyleOptions(),
                            StabilizeOptions(mode))
    try:
        return [stabilizer(torch.from_numpy(f).permute(2, 0, 1)) for f in frames], stabilizer
    finally:
        stabilizer.close()


def shimmer(outputs) -> float:
    """Mean |O_t - O_t-1| on [0, 1] pixels: how much the output moves between frames."""
    return float(np.mean([(b.float() - a.float()).abs().mean() / 255
                          for a, b in itertools.pairwise(outputs)]))


def tensors(frames) -> list[torch.Tensor]:
    return [torch.from_numpy(f).permute(2, 0, 1) for f in frames]


def warping_error(inputs, outputs) -> float:
    meter = WarpingErrorMeter()
    for image, output in zip(inputs, outputs, strict=True):
        meter.add(image, output)
    return meter.value


def detail(outputs) -> float:
    """Mean |Laplacian| of the outputs after the first: how much fine texture they keep."""
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)
    return float(np.mean([F.conv2d(o.float()[None] / 255, kernel, groups=3).abs().mean()
                          for o in outputs[1:]]))


@pytest.mark.parametrize("mode", ["denoise", "features", "denoise+features", "stats+flow",
                                  "stats+blend"])
def test_stabilisation_steadies_a_still_noisy_clip_and_leaves_a_clean_one_still(mode):
    frames = clip_frames(count=8, motion=0, noise=6)
    plain, steady = stylise(frames, "frame")[0], stylise(frames, mode)[0]
    assert shimmer(steady) < 0.5 * shimmer(plain)
    inputs = tensors(frames)
    assert flicker(inputs, steady) < flicker(inputs, plain)
    assert warping_error(inputs, steady) < 0.5 * warping_error(inputs, plain)
    # A still clip without noise: the stabilised output does not move at all.
    still = [frames[0]] * 5
    outputs, _ = stylise(still, mode)
    assert flicker([inputs[0]] * 5, outputs) < 1e-3


@pytest.mark.parametrize("mode", ["denoise", "denoise+features"])
def test_the_default_parts_steady_a_pan_and_keep_each_output_a_full_network_pass(mode):
    """Noise averaged away before the network, features carried along the flow inside it:
    steadier, and no texture averaged after it."""
    assert StabilizeOptions.parse("true").mode == "denoise+features" == StabilizeOptions().mode
    frames = clip_frames(count=8, motion=4, noise=6, w=160, h=120)
    inputs = tensors(frames)
    plain, steady = stylise(frames, "frame")[0], stylise(frames, mode)[0]
    assert warping_error(inputs, steady) < 0.8 * warping_error(inputs, plain)
    clean = stylise(clip_frames(count=8, motion=4, noise=0, w=160, h=120), "frame")[0]
    assert detail(steady) > 0.9 * detail(clean)  # above 0.95 here
    # The output blends average textures: on this clip they keep less detail than denoising.
    assert detail(stylise(frames, "flow")[0]) < detail(steady)


@pytest.mark.parametrize("mode", ["denoise+features", "denoise+features+flow"])
def test_each_frame_takes_its_luma_and_held_still_weight_once(mode, monkeypatch):
    """The parts that follow the flow share one held_still weight, and each frame's luma for the
    flow is made once (as the current frame) and kept for the next: both are full-frame passes,
    what the stabiliser costs beside the network (benchmarks/video.md)."""
    from fast_style.video import motion, stabilize

    calls = {"held_still": 0, "luma": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(stabilize, "held_still", counted("held_still", stabilize.held_still))
    monkeypatch.setattr(motion, "_gray", counted("luma", motion._gray))
    frames = clip_frames(count=5, motion=2, noise=4, w=96, h=64)
    outputs, stabilizer = stylise(frames, mode)
    assert len(outputs) == 5 and stabilizer.cuts == 0
    assert calls == {"held_still": 4, "luma": 5}  # every frame after the first; every frame


def test_the_kept_luma_is_always_the_previous_frames(monkeypatch):
    """The flow of every frame is estimated against the previous frame's own luma, through a
    cut, a change of size and frames too small for flow (which take no flow at all)."""
    from fast_style.video import motion

    pairs = []
    between = motion.FlowEstimator.between
    monkeypatch.setattr(motion.FlowEstimator, "between", lambda self, current, previous, h, w: (
        pairs.append((current, previous)) or between(self, current, previous, h, w)))
    shots = [clip_frames(count=3, motion=2, seed=1, w=96, h=64),
             clip_frames(count=2, motion=2, seed=2, w=96, h=64),  # a cut
             clip_frames(count=2, motion=1, seed=3, w=80, h=48),  # another size
             clip_frames(count=2, motion=0, seed=4, w=12, h=12)]  # too small for flow
    frames = [f for shot in shots for f in shot]
    stylise(frames, "denoise+features")
    luma = [motion.FlowEstimator("dis").luma(TF.to_dtype(t, torch.float32, scale=True))
            for t in tensors(frames)]  # the frame as the Stabilizer converts it
    assert luma[-1] is None  # 12 px: no flow
    # Flow wherever a frame follows one of its own size: the cut's pair too (it is the flow
    # that tells a pan from a cut), the small frames with None for both.
    expected = [(luma[t], luma[t - 1]) for t in range(1, len(frames))
                if frames[t].shape == frames[t - 1].shape]
    assert len(pairs) == len(expected) == 6
    for (current, previous), (want_current, want_previous) in zip(pairs, expected, strict=True):
        for got, want in ((current, want_current), (previous, want_previous)):
            assert (got is None and want is None) or np.array_equal(got, want)


def test_warp_works_on_the_flows_device():
    """The sampling grid is made where the flow lives (a GPU's features): meta tensors stand in
    for a GPU here."""
    moved, inside = warp(torch.zeros(4, 8, 10, device="meta"), torch.zeros(2, 8, 10, device="meta"))
    assert moved.device.type == inside.device.type == "meta" and moved.shape == (4, 8, 10)


def test_features_skip_tiled_frames_with_a_note():
    frames = clip_frames(count=3, noise=4, w=160, h=120)
    outputs, stabilizer = stylise(frames, "features", StyleOptions(tile=96, tile_overlap=24))
    assert len(outputs) == 3 and not stabilizer.features.previous
    assert any("features are skipped" in note for note in stabilizer.notes)


def test_features_start_each_shot_as_the_plain_network_pass():
    """The first frame has no past: the network run stage by stage (FeatureBlend) gives the
    whole pass's output, so the default's first frame is the photo path's."""
    frames = clip_frames(count=2, noise=0)
    first_plain = stylise(frames[:1], "frame")[0][0]
    first_features = stylise(frames[:1], "features")[0][0]
    assert torch.equal(first_features, first_plain)


def test_features_with_compile_compile_each_stage_once(monkeypatch):
    """compile=true reaches the default mode: its stage-by-stage pass compiles the encoder, the
    residual blocks and the decoder, once each, and runs every frame through those graphs."""
    model = fp32_model()
    stages = {id(getattr(model.net, name)): name for name in ("encoder", "residuals", "decoder")}
    compiled, calls = [], []

    def recording_compile(module, **kwargs):
        name = stages[id(module)]
        compiled.append(name)

        def run(x):
            calls.append(name)
            return module(x)  # eagerly: the frames must match the eager model's exactly
        return run

    monkeypatch.setattr(torch, "compile", recording_compile)
    frames = clip_frames(count=3, motion=2, noise=4)
    eager = stylise(frames, "denoise+features")[0]
    model.compile = True
    got = stylise(frames, "denoise+features", model=model)[0]
    assert compiled == ["encoder", "residuals", "decoder"]
    assert calls == ["encoder", "residuals", "decoder"] * 3
    assert all(torch.equal(a, b) for a, b in zip(got, eager, strict=True))
    # Shared statistics reach into the norms: with them every stage runs eagerly.
    calls.clear()
    stylise(frames, "stats+features", model=model)
    assert calls == []


def test_features_fall_back_to_eager_when_a_later_stage_fails_to_compile(monkeypatch):
    model = fp32_model()

    def compile_all_but_residuals(module, **kwargs):
        def run(x):
            if module is model.net.residuals:
                raise RuntimeError("backend='inductor' raised:\nLoweringException: ...")
            return module(x)
        return run

    monkeypatch.setattr(torch, "compile", compile_all_but_residuals)
    frames = clip_frames(count=3, motion=2, noise=4)
    eager = stylise(frames, "denoise+features")[0]
    model.compile = True
    with pytest.warns(UserWarning, match="compile=true failed, running uncompiled instead"):
        got = stylise(frames, "denoise+features", model=model)[0]
    assert not model.compile
    assert all(torch.equal(a, b) for a, b in zip(got, eager, strict=True))


@pytest.mark.slow
def test_features_compiled_for_real_match_the_eager_frames():
    frames = clip_frames(count=3, motion=2, noise=4)
    eager = stylise(frames, "denoise+features")[0]
    model = fp32_model()
    model.compile = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = stylise(frames, "denoise+features", model=model)[0]
    assert model.compile, [str(w.message) for w in caught]  # no fallback to eager
    for a, b in zip(got, eager, strict=True):
        assert psnr(a.float() / 255, b.float() / 255) >= 45


def test_frames_too_small_for_optical_flow_are_taken_as_still():
    outputs, _ = stylise(clip_frames(count=3, noise=4, w=10, h=8), "denoise+flow")
    assert [tuple(o.shape) for o in outputs] == [(3, 8, 10)] * 3


@pytest.mark.parametrize("mode", ["stats+denoise", "denoise+flow", "stats+denoise+blend", "frame"])
def test_modes_combine_their_parts(mode):
    assert StabilizeOptions.parse(mode).mode == mode
    outputs, _ = stylise(clip_frames(count=3, noise=4), mode)
    assert len(outputs) == 3 and outputs[0].shape == (3, H, W)


@pytest.mark.parametrize("mode", ["blend+flow", "stats+wobble", "+", "frame+stats"])
def test_a_mode_that_is_not_one_is_one_line(mode):
    with pytest.raises(FastStyleError, match=f"stabilize={re.escape(mode)} is not a mode"):
        StabilizeOptions.parse(mode)


def test_optical_flow_finds_a_pan_and_warps_the_previous_frame_onto_the_next():
    previous, current = (TF.to_dtype(t, torch.float32, scale=True)
                         for t in tensors(clip_frames(count=2, motion=3, w=160, h=120)))
    for method in ("dis", "farneback"):
        flow = FlowEstimator(method)(current, previous)  # current(x) = previous(x + 3)
        assert abs(flow[0, 10:-10, 10:-20].median() - 3) < 0.2, method
        assert flow[1, 10:-10, 10:-20].abs().median() < 0.2, method
        warped, inside = warp(previous, flow)
        # Beyond the right edge the previous frame has no pixels: the mask says so.
        assert inside[0, :, -2:].mean() < 0.5 and inside[0, :, :-8].min() == 1
        assert (warped - current)[:, 8:-8, 8:-8].abs().mean() < 0.1 * (previous - current).abs().mean()
    backward = FlowEstimator("farneback")(current, previous)
    forward = FlowEstimator("farneback")(previous, current)
    assert consistent(forward, backward)[0, 8:-8, 8:-8].mean() > 0.95
    assert consistent(forward, -backward)[0, 8:-8, 8:-8].mean() < 0.05  # a wrong flow fails


def test_flow_blend_steadies_a_noisy_pan_and_keeps_its_texture():
    """On a pan (4 px a frame: the network's stride, so that frame-by-frame is itself
    consistent up to the noise), the flow-following blend removes most of the noise's flicker
    and keeps the texture; the in-place blend sees only motion and leaves the pan as it is."""
    frames = clip_frames(count=8, motion=4, noise=6, w=160, h=120)
    inputs = tensors(frames)
    plain, (steady, stabilizer) = stylise(frames, "frame")[0], stylise(frames, "stats+flow")
    assert stabilizer.cuts == 0  # a pan is not a cut
    assert warping_error(inputs, steady) < 0.6 * warping_error(inputs, plain)
    clean = stylise(clip_frames(count=8, motion=4, noise=0, w=160, h=120), "frame")[0]
    assert detail(steady) > 0.8 * detail(clean)  # 0.88 here; 0.64 at 3 px, off the stride
    # A cut in the middle of a pan still restarts the statistics and the blend.
    cut = frames[:4] + clip_frames(count=4, motion=4, noise=6, w=160, h=120, seed=9)
    assert stylise(cut, "stats+flow")[1].cuts == 1


def test_shared_statistics_restart_at_a_cut():
    first, second = clip_frames(count=4, seed=1), clip_frames(count=3, seed=7)
    outputs, stabilizer = stylise(first + second, "stats")
    assert stabilizer.cuts == 1
    fresh, _ = stylise(second, "stats")
    assert torch.equal(outputs[len(first)], fresh[0])  # nothing of the first shot carried over


def test_shared_statistics_under_tiling_match_the_whole_frame():
    frames = clip_frames(count=3, noise=4, w=160, h=120)
    whole, _ = stylise(frames, "stats", StyleOptions(tile=0))
    tiled, _ = stylise(frames, "stats", StyleOptions(tile=96, tile_overlap=24))
    for a, b in zip(whole, tiled):
        assert (a.int() - b.int()).abs().max() <= 2


# ------------------------------------------------------------------------------- CLI

@pytest.mark.slow
def test_infer_cli_stylises_a_clip(tmp_path, tiny_ckpt):  # noqa: F811 - the fixture
    source = write_clip(tmp_path / "clip.mp4", clip_frames(count=4))
    result = subprocess.run([sys.executable, str(REPO / "infer.py"), f"ckpt={tiny_ckpt}",
                             f"input={source}", f"output={tmp_path / 'out.webm'}",
                             "video.crf=40", "progress=false"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "re-encoded to libopus" in result.stderr
    assert probe(tmp_path / "out.webm")[0]["frames"] == 4


@pytest.mark.slow
def test_evaluate_video_prints_flicker_and_warp_error_per_mode(tmp_path, tiny_ckpt):  # noqa: F811
    source = write_clip(tmp_path / "clip.mp4", clip_frames(count=4, noise=6, w=96, h=64))
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_video.py"),
                             f"ckpt={tiny_ckpt}", f"input={source}", "judge_frames=0",
                             "modes=frame,denoise,stats+flow", f"strip={tmp_path / 'strip.png'}"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(payload["flicker"]) == set(payload["warp_error"]) == {"frame", "denoise",
                                                                     "stats+flow"}
    assert payload["warp_error"]["denoise"] < payload["warp_error"]["frame"]
    assert payload["modes"]["frame"]["frames"] == 4 and (tmp_path / "strip.png").is_file()
    assert payload["modes"]["frame"]["steady_fps"] > 0  # frames 3 and 4
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_video.py"),
                          f"ckpt={tiny_ckpt}", f"input={source}", "modes=frame,blend+flow"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False)
    assert bad.returncode != 0 and "stabilize=blend+flow is not a mode" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_video_files_without_pyav_are_one_line(monkeypatch, tmp_path):
    """PyAV is imported only for files (the in-memory stabiliser runs without it): a file
    without it says what to install."""
    from fast_style.video import io

    monkeypatch.setattr(io, "av", None)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 64)
    with pytest.raises(FastStyleError, match="pip install av"):
        io.VideoReader(clip)
    with pytest.raises(FastStyleError, match="pip install av"):
        io.Encoding.for_path(tmp_path / "out.mp4")
