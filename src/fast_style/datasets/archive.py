"""Unpacking a downloaded zip or tar.gz into a folder, safely and all-or-nothing."""

from __future__ import annotations

import gzip
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from fast_style.errors import FastStyleError


class ArchiveError(FastStyleError):
    """The archive is damaged, unsafe, or holds none of the folders asked for."""


def _is_safe(name: str) -> bool:
    """A member name that stays inside the destination: relative, without '..' or a drive."""
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and ":" not in path.parts[0]


def _wanted(name: str, folders: list[str]) -> bool:
    name = name.rstrip("/")
    return not folders or any(name == f or name.startswith(f"{f}/") for f in folders)


def extract_archive(archive: Path, dest: Path, folders: list[str] | tuple[str, ...] = ()) -> Path:
    """Unpacks ``archive`` (zip, tar, tar.gz, tgz) into ``dest``, which must not exist yet.

    ``folders`` (paths inside the archive) keeps only the members below them; empty keeps all.
    Members keep their paths inside the archive. The members go to a temp folder beside ``dest``
    that is renamed to ``dest`` at the end, so ``dest`` either holds everything or does not exist.
    A member with an absolute path or a '..' refuses the whole archive (before anything is written);
    tar links, devices and the like are refused by tarfile's 'data' filter.
    """
    archive, dest = Path(archive), Path(dest)
    folders = [f.strip("/") for f in folders]
    tmp = dest.with_name(f".{dest.name}.extracting")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a process killed while extracting
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            count = _extract_zip(archive, tmp, folders)
        elif tarfile.is_tarfile(archive):
            count = _extract_tar(archive, tmp, folders)
        else:
            raise ArchiveError(f"{archive} is neither a zip nor a tar archive")
        if count == 0:
            raise ArchiveError(f"{archive} holds no files under {', '.join(folders) or '/'}")
        tmp.rename(dest)
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise ArchiveError(f"{archive} is damaged ({e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract_zip(archive: Path, into: Path, folders: list[str]) -> int:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        unsafe = [m.filename for m in members if not _is_safe(m.filename)]
        if unsafe:
            raise ArchiveError(f"{archive} has members outside its folder ({unsafe[0]}): refused")
        chosen = [m for m in members if _wanted(m.filename, folders)]
        for member in chosen:  # reading checks each member's CRC: a damaged file raises
            zf.extract(member, into)
        return sum(not m.is_dir() for m in chosen)


def _extract_tar(archive: Path, into: Path, folders: list[str]) -> int:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()  # reads the whole stream: a truncated gzip raises here
        unsafe = [m.name for m in members if not _is_safe(m.name)]
        if unsafe:
            raise ArchiveError(f"{archive} has members outside its folder ({unsafe[0]}): refused")
        chosen = [m for m in members if _wanted(m.name, folders)]
        tf.extractall(into, members=chosen, filter="data")
        return sum(m.isfile() for m in chosen)
