"""Photos that download themselves, against a real HTTP server on 127.0.0.1 serving real archives."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO, write_photo

from fast_style.datasets import download_file, locate_photos
from fast_style.datasets.archive import extract_archive
from fast_style.errors import FastStyleError

# Laid out like BSR_bsds500.tgz: only train + val are unpacked (configs/data/bsds300.yaml).
FOLDERS = ["BSR/BSDS500/data/images/train", "BSR/BSDS500/data/images/val"]


def photo_tgz(path: Path, counts=(("train", 6), ("val", 3), ("test", 2))) -> Path:
    photos = path.parent / "src"
    for split, count in counts:
        for i in range(count):
            write_photo(photos / f"{split}/{split}{i}.jpg", size=(72, 64), seed=i)
    with tarfile.open(path, "w:gz") as tf:
        for split, _ in counts:
            tf.add(photos / split, arcname=f"BSR/BSDS500/data/images/{split}")
        info = tarfile.TarInfo("BSR/BSDS500/data/groundTruth/train/x.mat")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"mat"))
    return path


class Server:
    """Serves ``files`` (name -> bytes) with Range support; ``cut_after`` bytes, the next full
    response is cut mid-file (Content-Length promises all of it, the connection then closes)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_after: int | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.cut_after is not None:
                    cut, server.cut_after = server.cut_after, None
                    self.wfile.write(body[start:start + cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """No $FAST_STYLE_DATA photos, an empty cache: as on a fresh machine."""
    monkeypatch.setenv("FAST_STYLE_DATA", str(tmp_path / "no_shared_data"))
    monkeypatch.delenv("FAST_STYLE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "fast_style"


def test_fresh_download_unpacks_only_the_wanted_folders(server, empty_cache, tmp_path):
    archive = photo_tgz(tmp_path / "made" / "photos.tgz")
    server.files["photos.tgz"] = archive.read_bytes()
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    root = locate_photos(folder="bsds", url=server.url("photos.tgz"), sha256=sha,
                         archive_folders=FOLDERS)
    assert root == empty_cache / "data" / "bsds"
    photos = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert photos == sorted([f"train{i}.jpg" for i in range(6)] + [f"val{i}.jpg" for i in range(3)])
    assert not (empty_cache / "data" / "downloads" / "photos.tgz").exists()  # archive removed
    assert not list((empty_cache / "data").glob(".*extracting"))
    # Found in the cache now: no second request.
    assert locate_photos(folder="bsds", url=server.url("photos.tgz")) == root
    assert len(server.requests) == 1


def test_a_cut_download_resumes_with_a_range_request(server, empty_cache, tmp_path):
    body = os.urandom(300_000)
    server.files["big.bin"] = body
    server.cut_after = 120_000
    dest = download_file(server.url("big.bin"), tmp_path / "big.bin",
                         sha256=hashlib.sha256(body).hexdigest())
    assert dest.read_bytes() == body
    assert server.requests == [("/big.bin", None), ("/big.bin", "bytes=120000-")]
    assert not (tmp_path / "big.bin.part").exists()


def test_a_part_left_by_a_killed_run_is_resumed_not_taken_for_complete(server, tmp_path):
    body = os.urandom(50_000)
    server.files["f.bin"] = body
    (tmp_path / "f.bin.part").write_bytes(body[:20_000])
    assert download_file(server.url("f.bin"), tmp_path / "f.bin").read_bytes() == body
    assert server.requests == [("/f.bin", "bytes=20000-")]


def test_sha256_mismatch_keeps_nothing(server, empty_cache, tmp_path):
    archive = photo_tgz(tmp_path / "made" / "photos.tgz")
    server.files["photos.tgz"] = archive.read_bytes()
    with pytest.raises(FastStyleError, match="sha256") as error:
        locate_photos(folder="bsds", url=server.url("photos.tgz"), sha256="0" * 64,
                      archive_folders=FOLDERS)
    assert "by hand" in str(error.value) and server.url("photos.tgz") in str(error.value)
    assert not (empty_cache / "data" / "bsds").exists()
    downloads = empty_cache / "data" / "downloads"
    assert not (downloads / "photos.tgz").exists() and not (downloads / "photos.tgz.part").exists()


def test_a_corrupt_archive_is_reported_and_deleted(server, empty_cache, tmp_path):
    good = photo_tgz(tmp_path / "made" / "photos.tgz").read_bytes()
    server.files["photos.tgz"] = good[: len(good) // 2]  # complete download of a damaged file
    with pytest.raises(FastStyleError, match="damaged|not a zip"):
        locate_photos(folder="bsds", url=server.url("photos.tgz"), archive_folders=FOLDERS)
    assert not (empty_cache / "data" / "bsds").exists()
    assert not (empty_cache / "data" / "downloads" / "photos.tgz").exists()
    server.files["photos.tgz"] = good  # run again: downloads afresh and works
    assert len(list(locate_photos(folder="bsds", url=server.url("photos.tgz"),
                                  archive_folders=FOLDERS).rglob("*.jpg"))) == 9


def test_members_escaping_the_folder_refuse_the_archive(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tf:
        for name in ("ok/a.jpg", "../escaped.jpg"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(FastStyleError, match="outside"):
        extract_archive(evil, tmp_path / "out" / "photos")
    assert not (tmp_path / "out" / "photos").exists() and not (tmp_path / "out" / "escaped.jpg").exists()
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("/abs.jpg", b"x")
    with pytest.raises(FastStyleError, match="outside"):
        extract_archive(tmp_path / "evil.zip", tmp_path / "out" / "photos")


def test_zip_archives_work_too(server, empty_cache, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(4):
            zf.write(write_photo(tmp_path / f"z{i}.jpg", seed=i), f"train2014/z{i}.jpg")
        zf.writestr("annotations/x.json", "{}")
    server.files["train2014.zip"] = buffer.getvalue()
    root = locate_photos(folder="coco/train2014", url=server.url("train2014.zip"),
                         archive_folders=["train2014"])
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == [f"z{i}.jpg" for i in range(4)]


def test_server_down_is_one_line_naming_the_url_and_the_manual_way(empty_cache):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/BSR_bsds500.tgz"
    with pytest.raises(FastStyleError) as error:
        locate_photos(folder="bsds", url=url, archive_folders=FOLDERS)
    message = str(error.value)
    assert "\n" not in message and url in message and "by hand" in message
    assert "FAST_STYLE_DATA" in message and "download_data.py" in message


def test_download_false_forbids_it(server, empty_cache):
    with pytest.raises(FastStyleError, match="data.download=false"):
        locate_photos(folder="bsds", url=server.url("photos.tgz"), download=False)
    assert server.requests == []


def test_shared_data_and_explicit_root_need_no_download(tmp_path, monkeypatch, empty_cache):
    (tmp_path / "shared" / "bsds").mkdir(parents=True)
    monkeypatch.setenv("FAST_STYLE_DATA", str(tmp_path / "shared"))
    assert locate_photos(folder="bsds", url="http://127.0.0.1:9/x.tgz") == tmp_path / "shared" / "bsds"
    assert locate_photos(root=str(tmp_path), folder="bsds") == tmp_path
    with pytest.raises(FastStyleError, match="data.root"):
        locate_photos(root=str(tmp_path / "missing"), folder="bsds")


@pytest.mark.slow
def test_train_on_photos_that_came_down(server, tmp_path, style_path):
    """A fresh machine: empty cache, no $FAST_STYLE_DATA photos; train.py fetches and trains."""
    archive = photo_tgz(tmp_path / "made" / "photos.tgz")
    server.files["BSR_bsds500.tgz"] = archive.read_bytes()
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "HYDRA_FULL_ERROR": "0",
           "FAST_STYLE_DATA": str(tmp_path / "empty")}
    env.pop("FAST_STYLE_CACHE", None)
    args = ["debug=tiny", "trainer.max_steps=2", "model.width=8", "model.num_residual_blocks=1",
            f"data.url={server.url('BSR_bsds500.tgz')}", "data.sha256=null",
            f"style.image={style_path}", f"ckpt_dir={tmp_path}/ckpt", f"log_dir={tmp_path}/logs",
            f"hydra.run.dir={tmp_path}/out"]
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *args], capture_output=True,
                            text=True, cwd=tmp_path, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    cached = tmp_path / "xdg" / "fast_style" / "data" / "bsds300-train"
    assert len(list(cached.rglob("*.jpg"))) == 9
    assert f"from {cached}" in result.stdout and "downloading" in result.stdout
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    assert "downloading" in (tmp_path / "out" / "train.log").read_text()


@pytest.mark.slow
def test_download_data_fetches_ahead_of_time(server, tmp_path, style_path):
    """The command for clusters whose compute nodes have no internet."""
    server.files["BSR_bsds500.tgz"] = photo_tgz(tmp_path / "made" / "photos.tgz").read_bytes()
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           "FAST_STYLE_DATA": str(tmp_path / "empty")}
    env.pop("FAST_STYLE_CACHE", None)
    args = [f"data.url={server.url('BSR_bsds500.tgz')}", "data.sha256=null", "style=custom",
            f"style.image={style_path}"]
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "download_data.py"), *args],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    cache = tmp_path / "xdg" / "fast_style"
    assert len(list((cache / "data" / "bsds300-train").rglob("*.jpg"))) == 9
    assert (cache / "vgg16_caffe_rgb.pth").is_file()  # the loss network, converted ahead too
    assert f"photos: {cache / 'data' / 'bsds300-train'}" in result.stdout
