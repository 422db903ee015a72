"""Make test footage from a photo: a slow pan and zoom (or a still shot) with what real cameras
add between frames, to measure flicker on (benchmarks/video.md).

    python scripts/make_clip.py photo=$FAST_STYLE_DATA/content/amber.jpg out=outputs/pan.mp4 \
        motion=pan size=640x360 frames=48 fps=24

Every frame: a crop of the photo (moving a few px a frame and zooming in by ``zoom`` over the
clip for motion=pan; fixed for motion=still), resized to ``size``, plus Gaussian sensor noise of
``noise`` (std on [0, 1] pixels), re-compressed as a JPEG of quality ``jpeg`` (a camera's or a
messenger's compression), then encoded near-losslessly (x264 CRF 10) so that the noise and
compression survive into the file. A 440 Hz tone is the sound track.

Options (key=value): photo=PATH out=FILE motion=pan|still size=WxH frames=N fps=N noise=0.02
jpeg=75 zoom=1.25 seed=0
"""

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from fast_style import evaluation as ev
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.image_io import load_image
from fast_style.video.io import atomic_video


@dataclass
class Options:
    photo: str | None = None
    out: str | None = None
    motion: str = "pan"
    size: str = "640x360"
    frames: int = 48
    fps: int = 24
    noise: float = 0.02
    jpeg: int = 75
    zoom: float = 1.25
    seed: int = 0


def crop_box(photo: Image.Image, aspect: float, t: float, motion: str, zoom: float):
    """The photo's region shown at time t in [0, 1]: the largest box of the frame's aspect that
    fits, shrunk by ``zoom`` at the end and slid from left to right (pan) or fixed (still)."""
    pw, ph = photo.size
    w0 = min(pw, ph * aspect) / 1.05  # a margin so the pan has room
    if motion == "still":
        w = w0 / zoom
        return ((pw - w) / 2, (ph - w / aspect) / 2, (pw + w) / 2, (ph + w / aspect) / 2)
    w = w0 / (1 + (zoom - 1) * t)
    h = w / aspect
    left = (pw - w) * (0.2 + 0.6 * t)
    top = (ph - h) * 0.5
    return (left, top, left + w, top + h)


def frames(opts: Options, width: int, height: int):
    rng = np.random.default_rng(opts.seed)
    photo = load_image(opts.photo)
    for i in range(opts.frames):
        t = i / max(1, opts.frames - 1)
        box = crop_box(photo, width / height, t, opts.motion, opts.zoom)
        pixels = np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC, box=box),
                            np.float32) / 255
        pixels = pixels + rng.normal(0, opts.noise, pixels.shape).astype(np.float32)
        image = Image.fromarray(np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=opts.jpeg)
        yield np.asarray(Image.open(buffer).convert("RGB"))


def main(argv: list[str]) -> None:
    opts = ev.parse_key_values(Options, argv, __doc__)
    if not opts.photo or not opts.out or opts.motion not in ("pan", "still"):
        raise FastStyleError("usage: python scripts/make_clip.py photo=PATH out=FILE.mp4 "
                             "[motion=pan|still] [size=640x360] [frames=48]")
    try:
        width, height = (int(v) for v in opts.size.lower().split("x"))
    except ValueError:
        raise FastStyleError(f"size={opts.size} must be WIDTHxHEIGHT, e.g. 640x360") from None
    with atomic_video(Path(opts.out)) as tmp, av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=opts.fps, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i, pixels in enumerate(frames(opts, width, height)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        seconds = np.arange(round(48000 * opts.frames / opts.fps)) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)[None]
        sound = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        sound.sample_rate, sound.pts = 48000, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    print(f"wrote {opts.out}: {opts.frames} frames {width}x{height} at {opts.fps} fps, "
          f"{opts.motion}, noise {opts.noise}, JPEG {opts.jpeg}")


if __name__ == "__main__":
    with exit_on_user_error():
        main(sys.argv[1:])
