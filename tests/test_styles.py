import hashlib

import pytest

from fast_style.errors import FastStyleError
from fast_style.styles import resolve_style_image


def test_explicit_path_wins(style_path, tmp_path):
    assert resolve_style_image("x", image=str(style_path), file="nope.jpg") == style_path
    with pytest.raises(FastStyleError, match="style.image"):
        resolve_style_image("x", image=str(tmp_path / "missing.jpg"))


def test_found_in_fast_style_data(data_dir):
    assert resolve_style_image("starry_night", file="starry_night.jpg") == (
        data_dir / "styles" / "starry_night.jpg")


def test_cache_then_download_with_sha256(style_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_DATA", str(tmp_path / "nodata"))
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "cache"))
    sha = hashlib.sha256(style_path.read_bytes()).hexdigest()
    url = style_path.as_uri()  # a file:// URL exercises the real download path offline
    with pytest.raises(FastStyleError, match="sha256"):
        resolve_style_image("s", file="s.jpg", url=url, sha256="0" * 64)
    assert not (tmp_path / "cache" / "styles" / "s.jpg").exists()  # bad bytes are not kept
    got = resolve_style_image("s", file="s.jpg", url=url, sha256=sha)
    assert got == tmp_path / "cache" / "styles" / "s.jpg"
    assert got.read_bytes() == style_path.read_bytes()
    # Now served from the cache, without the URL.
    assert resolve_style_image("s", file="s.jpg") == got


def test_nowhere_to_be_found(tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path))
    with pytest.raises(FastStyleError, match="FAST_STYLE_DATA"):
        resolve_style_image("ghost", file="ghost.jpg")
    with pytest.raises(FastStyleError, match="cannot download"):
        resolve_style_image("ghost", file="ghost.jpg", url=(tmp_path / "no.jpg").as_uri())
