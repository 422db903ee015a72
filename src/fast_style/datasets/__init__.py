"""Data that comes by itself: resumable, verified downloads and safe archive extraction.

- ``download``: one file over HTTP(S) into the cache: resumed with a Range request after a cut,
  retried, shown with a progress bar, checked against its sha256, and renamed into place only
  when complete (a partial file is never taken for the whole).
- ``archive``: a zip or tar.gz unpacked into a temp folder beside its destination, then renamed
  (a half-extracted folder is never taken for the whole); members with absolute paths or ``..``
  are refused.
- ``photos``: where the training photos are: ``data.root``, ``$FAST_STYLE_DATA/<folder>``, the
  cache, else a download of ``data.url`` (unless ``data.download=false``).

Style paintings (fast_style.styles) download through the same ``download_file``.
"""

from fast_style.datasets.download import download_file, sha256_of
from fast_style.datasets.photos import locate_photos

__all__ = ["download_file", "locate_photos", "sha256_of"]
