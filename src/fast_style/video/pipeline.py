"""A video file in, a stylised video file out: decode, stylise and encode as the frames go.

Memory stays bounded whatever the clip's length: only the frames the decoder and encoder hold
(a handful) and one frame being stylised are alive at once, and frames too large to stylise
whole are tiled exactly as photos are. The output is written to a temp file beside the target
and renamed at the end: an error, Ctrl-C or SIGTERM leaves no half-written video.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torchvision.transforms.v2.functional as TF
from tqdm import tqdm

from fast_style.errors import FastStyleError
from fast_style.stylize import Model, StyleOptions
from fast_style.video.io import Encoding, VideoReader, VideoWriter, atomic_video
from fast_style.video.stabilize import StabilizeOptions, Stabilizer


@dataclass
class VideoOptions:
    """infer.py's video settings: stabilisation and the encoder (None: the container's default)."""

    stabilize: StabilizeOptions = field(default_factory=StabilizeOptions)
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None


def scaled_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """(width, height) scaled down (never up) so the long side is at most ``max_size``, with
    even sides (4:2:0 video needs them; an odd-sized input stays as it is when not scaled)."""
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def stylize_video(model: Model, source: Path, target: Path, options: StyleOptions,
                  video: VideoOptions | None = None, progress: bool = True,
                  max_size: int | None = None) -> list[str]:
    """Stylise every frame of ``source`` into ``target``; returns notes for a person (audio
    re-encoded or dropped, odd sizes, ...). ``max_size``: as for photos, frames are scaled down
    first so that the long side is at most that many px."""
    video = video or VideoOptions()
    encoding = Encoding.for_path(target, video.codec, video.crf, video.preset)
    reader = VideoReader(source)
    size = scaled_size(reader.width, reader.height, max_size)
    resize = size != (reader.width, reader.height)
    stabilizer = Stabilizer(model, options, video.stabilize)
    bar = tqdm(total=reader.frame_count(), unit="frame", desc=source.name, leave=False,
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    frames = 0
    try:
        with atomic_video(target) as tmp:
            writer = VideoWriter(tmp, reader, encoding, size)
            try:
                for packet in reader.packets():
                    if packet.stream.type != "video":
                        writer.write_audio(packet)
                        continue
                    for frame, pts in reader.decode(packet):
                        if resize:
                            frame = TF.resize(frame, [size[1], size[0]], antialias=True)
                        writer.write_frame(stabilizer(frame), pts)
                        frames += 1
                        bar.update()
                writer.close()
            except BaseException:
                writer.abort()
                raise
            if not frames:
                raise FastStyleError(f"cannot read video {source}: no frame could be decoded "
                                     "(corrupt or truncated)")
    finally:
        bar.close()
        stabilizer.close()
        reader.close()
    return writer.notes + stabilizer.notes
