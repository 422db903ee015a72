"""Stylise many photos: a file, a folder tree or a glob, mapped to outputs with mirrored names.

Planning happens before any pixel is touched, so a run that would overwrite one of its inputs,
or write two photos to one file, stops at once with nothing written. While running, one bad
photo is reported and the rest go on; the caller turns the failures into the exit status.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from fast_style.errors import FastStyleError
from fast_style.image_io import INFER_SUFFIXES, MAX_PIXELS, Photo, load_photo, save_photo
from fast_style.stylize import Model, StyleOptions, stylize_photo
from fast_style.video import VIDEO_SUFFIXES, VideoOptions, is_video, stylize_video

GLOB_CHARS = frozenset("*?[")
# Photos and videos; an animated GIF is a video, a still one a photo (decided when it is run).
MEDIA_SUFFIXES = INFER_SUFFIXES | VIDEO_SUFFIXES


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Summary:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _suffix(fmt: str | None) -> str | None:
    """format=jpg / .png / TIFF -> '.jpg' / '.png' / '.tiff', checked against PIL's writers."""
    if not fmt:
        return None
    suffix = "." + str(fmt).lower().lstrip(".")
    if suffix in VIDEO_SUFFIXES:
        return suffix
    writer = Image.registered_extensions().get(suffix)
    if writer is None or writer not in Image.SAVE:
        raise FastStyleError(f"format={fmt} is not an image format that can be written; use "
                             "jpg, png, webp, tif or bmp (photos), mp4, mov, mkv, webm, avi or "
                             "gif (videos)")
    return suffix


def _is_hidden(path: Path, root: Path) -> bool:
    # Dot files are our own temp files (atomic writes), .DS_Store, .git: never photos to stylise.
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _photos_under(root: Path, exclude: Path | None) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if (path.suffix.lower() in MEDIA_SUFFIXES and path.is_file()
                and not _is_hidden(path, root)
                and not (exclude and path.resolve().is_relative_to(exclude))):
            found.append(path)
    return sorted(found)


def _through_linked_folder(path: Path, base: Path) -> bool:
    """Whether ``path`` lies inside a symlinked folder below ``base``. A ``**`` glob follows such
    links (a link cycle turned one photo into dozens of copies); folder inputs never do, and
    globs now match them."""
    try:
        parts = path.parent.relative_to(base).parts
    except ValueError:
        return False
    folder = base
    for part in parts:
        folder = folder / part
        if folder.is_symlink():
            return True
    return False


def _glob_base(pattern: str) -> Path:
    """The folder a glob's results are named relative to: its parts before the first wildcard."""
    parts = []
    for part in Path(pattern).parts:
        if GLOB_CHARS & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _looks_like_folder(path: Path, raw: str) -> bool:
    return path.is_dir() or raw.endswith(("/", os.sep)) or not path.suffix


def plan_jobs(input: str, output: str | None = None, fmt: str | None = None) -> list[Job]:
    """Map ``input`` (file, folder, glob) to output files; raise on any unsafe or ambiguous plan."""
    suffix = _suffix(fmt)
    source = Path(input).expanduser()
    out = Path(output).expanduser() if output else None
    if source.is_file():
        new_suffix = _target_suffix(source, suffix)
        if out is None:
            target = source.with_name(f"{source.stem}_stylised{new_suffix}")
        elif _looks_like_folder(out, str(output)):
            target = out / f"{source.stem}{new_suffix}"
        else:
            if suffix and out.suffix.lower() != suffix:
                raise FastStyleError(f"output={output} does not end in {suffix} (format={fmt}): "
                                     "make them agree or drop format=")
            target = out
        jobs = [Job(source, target)]
    else:
        if source.is_dir():
            base = source
            if out is None:
                out = source.parent / f"{source.name}_stylised"
            exclude = out.resolve() if out.resolve() != source.resolve() else None
            sources = _photos_under(source, exclude)
        elif GLOB_CHARS & set(input):
            base = _glob_base(str(source))
            if out is None:
                raise FastStyleError(f"input={input} is a glob: pass output=FOLDER for the results")
            # pathlib's glob, not glob.glob: its ** never descends into symlinked folders, so
            # a link cycle cannot multiply the tree (glob.glob walked 2^depth paths).
            pattern = source.relative_to(base).as_posix()
            sources = sorted(p for p in base.glob(pattern)
                             if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file()
                             and not _through_linked_folder(p, base))
        else:
            raise FastStyleError(f"input={input} not found: pass a photo, a folder or a glob "
                                 "such as 'photos/*.jpg' (quoted)")
        if not sources:
            raise FastStyleError(f"no photos or videos ({', '.join(sorted(MEDIA_SUFFIXES))}) found in "
                                 f"input={input}")
        if out.is_file():
            raise FastStyleError(f"output={output} is a file, but input={input} holds several "
                                 "photos: pass a folder")
        jobs = [Job(p, (out / p.relative_to(base)).with_suffix(_target_suffix(p, suffix)))
                for p in sources]
    _check_safe(jobs)
    _check_kinds(jobs)
    return jobs


def _target_suffix(source: Path, suffix: str | None) -> str:
    """format= applies to the files of its kind (photo or video; GIF is both): the others keep
    their own suffix, so format=png over a folder of photos and clips leaves the clips videos."""
    if not suffix or suffix == ".gif":
        return suffix or source.suffix
    return suffix if (suffix in VIDEO_SUFFIXES) == is_video(source) else source.suffix


def _check_kinds(jobs: list[Job]) -> None:
    """A video must be written as a video (a still frame would silently drop the rest)."""
    for job in jobs:
        target = job.target.suffix.lower()
        if target not in VIDEO_SUFFIXES and is_video(job.source):
            raise FastStyleError(f"output {job.target} is not a video file but {job.source} is "
                                 f"a video: name it {', '.join(sorted(VIDEO_SUFFIXES))}")
        if target in VIDEO_SUFFIXES - {".gif"} and job.source.suffix.lower() not in VIDEO_SUFFIXES:
            raise FastStyleError(f"output {job.target} is a video file but {job.source} is a "
                                 "photo: name it .jpg, .png, .webp, .tif or .bmp")


def _check_safe(jobs: list[Job]) -> None:
    inputs = {job.source.resolve(): job.source for job in jobs}
    seen: dict[Path, Path] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in inputs:
            raise FastStyleError(f"output {job.target} would overwrite the input "
                                 f"{inputs[target]}: choose another output= or format=")
        if target in seen:
            raise FastStyleError(f"{seen[target]} and {job.source} would both be written to "
                                 f"{job.target}: pass format= or separate them")
        seen[target] = job.source


def shrink(photo: Photo, max_size: int | None) -> Photo:
    """Scale down (never up) so the long side is at most ``max_size`` px."""
    h, w = photo.rgb.shape[-2:]
    if not max_size or max(h, w) <= max_size:
        return photo
    scale = max_size / max(h, w)
    size = [max(1, round(h * scale)), max(1, round(w * scale))]
    alpha = photo.alpha
    if alpha is not None:
        alpha = TF.resize(alpha[None], size, antialias=True)[0]
    return Photo(TF.resize(photo.rgb, size, antialias=True), alpha, photo.icc_profile)


def run_jobs(model: Model, jobs: list[Job], options: StyleOptions, max_size: int | None = None,
             quality: int = 95, skip_existing: bool = False, progress: bool = True,
             say: Callable[[str], None] | None = None, max_pixels: int | None = MAX_PIXELS,
             video: VideoOptions | None = None) -> Summary:
    """Stylise every job; a failure is reported through ``say`` and the others still run.
    Videos (and animated GIFs) go through fast_style.video with ``video``'s settings."""
    summary = Summary()
    say = say or (lambda line: tqdm.write(line, file=sys.stderr))
    bar = tqdm(jobs, unit="photo", disable=not progress or len(jobs) < 2, file=sys.stderr,
               dynamic_ncols=True)
    for job in bar:
        bar.set_postfix_str(job.source.name, refresh=False)
        if skip_existing and job.target.exists():
            summary.skipped.append(job.target)
            continue
        tiles = _TileBar(enabled=progress)
        try:
            if is_video(job.source):
                for note in stylize_video(model, job.source, job.target, options, video,
                                          progress=progress, max_size=max_size):
                    say(f"note: {job.target}: {note}")
                summary.written.append(job.target)
                continue
            photo = shrink(load_photo(job.source, max_size, max_pixels), max_size)
            rgb = stylize_photo(model, photo.rgb, options, progress=tiles.update)
            for note in save_photo(Photo(rgb, photo.alpha, photo.icc_profile), job.target,
                                   quality=quality):
                say(f"warning: {job.target}: {note}")
            summary.written.append(job.target)
        except KeyboardInterrupt:
            raise
        except FastStyleError as e:
            summary.failed.append((job.source, str(e)))
            say(f"error: {job.source}: {e}")
        except Exception as e:  # noqa: BLE001 - one photo's failure must not stop the others
            message = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            summary.failed.append((job.source, message))
            say(f"error: {job.source}: {message}")
        finally:
            tiles.close()
    return summary


class _TileBar:
    """A second progress bar for the tiles of one large photo, made only when there are tiles."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(total=total, unit="tile", leave=False, file=sys.stderr,
                            dynamic_ncols=True)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
