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


def stylize_video(model: Model, source: Path, target: Path, options: StyleOptions,
                  video: VideoOptions | None = None, progress: bool = True) -> list[str]:
    """Stylise every frame of ``source`` into ``target``; returns notes for a person (audio
    re-encoded or dropped, odd sizes, ...)."""
    video = video or VideoOptions()
    encoding = Encoding.for_path(target, video.codec, video.crf, video.preset)
    reader = VideoReader(source)
    stabilizer = Stabilizer(model, options, video.stabilize)
    bar = tqdm(total=reader.frame_count(), unit="frame", desc=source.name, leave=False,
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    frames = 0
    try:
        with atomic_video(target) as tmp:
            writer = VideoWriter(tmp, reader, encoding)
            try:
                for packet in reader.packets():
                    if packet.stream.type != "video":
                        writer.write_audio(packet)
                        continue
                    for frame, pts in reader.decode(packet):
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
