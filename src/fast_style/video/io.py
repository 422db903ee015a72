"""Reading and writing video with PyAV (FFmpeg's libraries), frame by frame, with the sound.

A video editor expects a filter to change the pictures and nothing else, so:
- every frame of the first video stream is decoded, and written back with its own timestamp
  (same frame count, frame rate, duration and timing, variable frame rates included);
- audio packets are copied unchanged (no re-encoding, no loss) when the output container can
  hold the codec; otherwise they are re-encoded to the container's usual codec, and a note says
  so (AAC into WebM becomes Opus). GIF holds no sound: the note says it was dropped;
- the video codec and quality follow the output's container (``ENCODERS``), overridable.

Nothing is held beyond the frames in flight: ``VideoReader.packets`` streams, ``VideoWriter``
encodes as frames arrive. Errors are one-line FastStyleErrors naming the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.safe_io import atomic_path

try:
    import av
except ImportError:  # a dependency; where it is missing (the GPU benchmark's bare machine),
    av = None        # photos and in-memory frames still work, and a video file says why not.


def _need_pyav() -> None:
    if av is None:
        raise FastStyleError("reading or writing video files needs PyAV: pip install av")


VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif"})

# Per output suffix: the video encoder and its quality options. x264 at CRF 18 is "visually
# lossless" by x264's own guide, and yuv420p plays everywhere (browsers, phones, editors).
# VP9 in constant-quality mode (b=0) at CRF 31 is what Google's VP9 guide gives for 720p-1080p.
# GIF is 256 colours a frame: a palette is made for each frame (see ``_gif_frame``).
ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    ".mp4": ("libx264", {"crf": "18", "preset": "medium"}),
    ".mov": ("libx264", {"crf": "18", "preset": "medium"}),
    ".mkv": ("libx264", {"crf": "18", "preset": "medium"}),
    ".avi": ("libx264", {"crf": "18", "preset": "medium"}),
    ".webm": ("libvpx-vp9", {"crf": "31", "b": "0", "row-mt": "1"}),
    ".gif": ("gif", {}),
}
# When the output container cannot hold the input's audio codec as it is.
AUDIO_FALLBACK = {".webm": "libopus", ".avi": "libmp3lame"}
DEFAULT_AUDIO = "aac"


def is_video(path: str | Path) -> bool:
    """A video suffix; a .gif only when it has more than one frame (a still GIF is a photo)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix != ".gif":
        return suffix in VIDEO_SUFFIXES
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) > 1
    except Exception:  # noqa: BLE001 - unreadable: let the photo path report it in one line
        return False


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclass
class Encoding:
    """How the video stream is written: codec name and FFmpeg options (crf, preset, ...)."""

    codec: str
    options: dict[str, str]

    @classmethod
    def for_path(cls, path: Path, codec: str | None = None, crf: int | None = None,
                 preset: str | None = None) -> Encoding:
        suffix = path.suffix.lower()
        if suffix not in ENCODERS:
            raise FastStyleError(f"{path}: cannot write video as {suffix or 'no suffix'}; use one "
                                 f"of {', '.join(sorted(ENCODERS))}")
        _need_pyav()
        default_codec, options = ENCODERS[suffix]
        options = dict(options)
        if codec and codec != default_codec:
            options = {}  # the defaults are the default codec's; others start from FFmpeg's own
        if crf is not None:
            options["crf"] = str(crf)
            if (codec or default_codec) == "libvpx-vp9":
                options["b"] = "0"
        if preset:
            options["preset"] = preset
        codec = codec or default_codec
        if codec not in av.codecs_available:
            raise FastStyleError(f"video_codec={codec} is not an encoder this FFmpeg has (try "
                                 "libx264, libvpx-vp9, libx265, mpeg4)")
        return cls(codec, options)


class VideoReader:
    """An open input: its first video stream, its audio streams and their packets, in order."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise FastStyleError(f"video not found: {path}")
        _need_pyav()
        try:
            self.container = av.open(str(path), metadata_errors="ignore")
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            raise FastStyleError(f"cannot read video {path}: {_first_line(e)} (corrupt, "
                                 "truncated or not a video)") from None
        if not self.container.streams.video:
            self.container.close()
            raise FastStyleError(f"{path} holds no video stream")
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"  # decode on several threads (frame and slice)
        self.audio = list(self.container.streams.audio)
        ctx = self.video.codec_context
        self.width, self.height = ctx.width, ctx.height
        if not self.width or not self.height:
            self.close()
            raise FastStyleError(f"cannot read video {path}: its video stream has no size "
                                 "(corrupt or truncated)")
        self.rate = self.video.average_rate or self.video.guessed_rate or Fraction(25)

    def frame_count(self) -> int | None:
        """The number of frames if the container says so, else estimated from the duration."""
        if self.video.frames:
            return self.video.frames
        if self.video.duration and self.video.time_base:
            return round(self.video.duration * self.video.time_base * self.rate)
        if self.container.duration:
            return round(self.container.duration / av.time_base * self.rate)
        return None

    def packets(self) -> Iterator[av.Packet]:
        """Video and audio packets in file order (so that audio can be written as it comes)."""
        try:
            yield from self.container.demux(self.video, *self.audio)
        except av.error.FFmpegError as e:
            raise FastStyleError(f"cannot read video {self.path}: {_first_line(e)} (corrupt or "
                                 "truncated)") from None

    def decode(self, packet: av.Packet) -> list[tuple[torch.Tensor, int | None]]:
        """The frames a video packet completes: (3, H, W) uint8 RGB and the presentation time
        (in the video stream's time base)."""
        try:
            frames = packet.decode()
        except av.error.FFmpegError as e:
            raise FastStyleError(f"cannot decode video {self.path}: {_first_line(e)} (corrupt "
                                 "or truncated)") from None
        return [(torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1), f.pts)
                for f in frames]

    def close(self) -> None:
        self.container.close()


class VideoWriter:
    """Writes stylised frames (re-timed as the input's) and the input's audio into ``path``."""

    def __init__(self, path: Path, reader: VideoReader, encoding: Encoding,
                 size: tuple[int, int] | None = None):
        """``size``: (width, height) of the frames to be written (default: the input's)."""
        self.path, self.reader, self.notes = path, reader, []
        width, height = size or (reader.width, reader.height)
        self.container = av.open(str(path), "w", format=_muxer(path))
        suffix = path.suffix.lower()
        self.gif = encoding.codec == "gif"
        try:
            stream = self.container.add_stream(encoding.codec, rate=reader.rate,
                                               options=encoding.options)
        except ValueError as e:  # "'matroska' format does not support 'png' codec"
            self.container.close()
            raise FastStyleError(f"{path.suffix} cannot hold {encoding.codec} video ({e}): "
                                 "choose another video.codec or output suffix") from None
        stream.width, stream.height = width, height
        # Frames keep the input's timestamps, in the input's time base. (The muxer may give the
        # stream another one, e.g. GIF's 1/100 s; packets are converted to it when written.)
        self.time_base = reader.video.time_base or 1 / reader.rate
        stream.time_base = stream.codec_context.time_base = self.time_base
        if self.gif:
            stream.pix_fmt = "pal8"
        elif encoding.codec in ("libx264", "libx265", "libvpx-vp9"):
            # 4:2:0 halves the colour planes: it needs an even size. Odd sizes keep full colour
            # (4:4:4) rather than losing a row or column of the picture.
            even = width % 2 == 0 and height % 2 == 0
            stream.pix_fmt = "yuv420p" if even else "yuv444p"
            if not even:
                self.notes.append(f"{width}x{height} is odd-sized: written as "
                                  "yuv444p, which some players cannot show")
        else:  # another encoder: RGB where it takes it (png, libx264rgb: lossless), else its own
            formats = [f.name for f in stream.codec_context.codec.video_formats or []]
            if formats:
                stream.pix_fmt = "rgb24" if "rgb24" in formats else formats[0]
        self.stream = stream
        self.next_pts = 0
        self.audio: dict[int, tuple[av.stream.Stream, av.stream.Stream | None]] = {}
        for audio in reader.audio:
            self._add_audio(audio, suffix)

    def _add_audio(self, audio: av.stream.Stream, suffix: str) -> None:
        name = audio.codec_context.name
        if self.gif:
            self.notes.append("GIF holds no sound: the audio was dropped")
            return
        if name in self.container.supported_codecs:
            self.audio[audio.index] = (self.container.add_stream_from_template(audio), None)
            return
        codec = AUDIO_FALLBACK.get(suffix, DEFAULT_AUDIO)
        out = self.container.add_stream(codec, rate=48000 if codec == "libopus" else audio.rate)
        out.layout = audio.layout.name if audio.layout.nb_channels <= 2 else "stereo"
        self.audio[audio.index] = (out, audio)
        self.notes.append(f"{self.path.suffix} cannot hold {name} audio as it is: re-encoded "
                          f"to {codec}")

    def write_audio(self, packet: av.Packet) -> None:
        out, decoder = self.audio.get(packet.stream.index, (None, None))
        if out is None:
            return
        if decoder is None:  # copied as it is
            if packet.dts is None:  # the flush packet demux() yields at the end of a stream
                return
            packet.stream = out
            self.container.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder re-times its own frames from the samples
            self.container.mux(out.encode(frame))

    def write_frame(self, rgb: torch.Tensor, pts: int | None) -> None:
        """(3, H, W) uint8 RGB at the input frame's presentation time."""
        pixels = np.ascontiguousarray(rgb.permute(1, 2, 0).numpy())
        frame = _gif_frame(pixels) if self.gif else av.VideoFrame.from_ndarray(pixels, "rgb24")
        # A frame the decoder could not time follows its predecessor at the nominal rate.
        frame.pts = self.next_pts if pts is None else pts
        self.next_pts = frame.pts + (round(1 / (self.reader.rate * self.time_base)) or 1)
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        self.container.mux(self.stream.encode(None))
        for out, decoder in self.audio.values():
            if decoder is not None:
                self.container.mux(out.encode(None))
        self.container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the half-written file is deleted anyway
            self.container.close()


def _muxer(path: Path) -> str | None:
    return {".mkv": "matroska", ".mov": "mov", ".gif": "gif"}.get(path.suffix.lower())


def _gif_frame(pixels: np.ndarray) -> av.VideoFrame:
    """256 colours chosen for this frame (median cut, Floyd-Steinberg dithering): a fixed
    palette (FFmpeg's default conversion) bands badly on paintings."""
    image = Image.fromarray(pixels).quantize(256, method=Image.Quantize.MEDIANCUT,
                                             dither=Image.Dither.FLOYDSTEINBERG)
    palette = np.zeros((256, 4), np.uint8)
    rgb = np.frombuffer(bytes(image.getpalette()[:768]), np.uint8).reshape(-1, 3)
    palette[:len(rgb), 0] = 255  # ARGB, opaque
    palette[:len(rgb), 1:] = rgb
    return av.VideoFrame.from_ndarray((np.asarray(image), palette), format="pal8")


def read_frames(path: str | Path, limit: int | None = None) -> Iterator[torch.Tensor]:
    """The frames of a video as (3, H, W) uint8 RGB, one at a time (evaluation, tests)."""
    reader = VideoReader(Path(path))
    try:
        count = 0
        for packet in reader.packets():
            if packet.stream.type != "video":
                continue
            for frame, _ in reader.decode(packet):
                if limit is not None and count >= limit:
                    return
                count += 1
                yield frame
    finally:
        reader.close()


def atomic_video(target: Path):
    """A temp file beside ``target`` (same suffix, so the same container), renamed onto it when
    the block ends normally and deleted on any error, Ctrl-C or SIGTERM turned exception."""
    return atomic_path(target)
