"""Pixel sizes of the site's own images, for email ``width``/``height`` attributes.

Outlook for Windows ignores CSS ``height:auto`` and lays an image out at its
attribute size, and every client reserves space from the attributes before
the image loads; so each ``<img>`` gets both. The size is read from the
file's header with a small reader (PNG IHDR, GIF logical screen, JPEG SOFn):
rendering must never touch the network and needs no imaging library for
three fixed layouts. When the size cannot be known (a remote image, a
missing file, a header we cannot read) the height comes from the configured
aspect ratio instead, and ``dispatch check`` says so.
"""

from __future__ import annotations

import functools
import html as htmllib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from dispatch.render.links import is_site_link

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF0–SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the
# range but are other segments.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_MAX_SEGMENTS = 1024
"""A guard against a crafted file made of endless empty segments."""
_MAX_SIDE = 65535
_SRC = re.compile(r'<img\b[^>]*?\ssrc="([^"]*)"', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PixelSize:
    width: int
    height: int


def _png(head: bytes) -> PixelSize | None:
    # Signature, then the first chunk must be IHDR: length 13, type, width, height.
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return PixelSize(width, height)


def _gif(head: bytes) -> PixelSize | None:
    if len(head) < 10:
        return None
    width, height = struct.unpack("<HH", head[6:10])
    return PixelSize(width, height)


def _jpeg(stream: BinaryIO) -> PixelSize | None:
    """Walk the segments after SOI until a start-of-frame marker."""
    stream.seek(2)
    for _ in range(_JPEG_MAX_SEGMENTS):
        byte = stream.read(1)
        if byte != b"\xff":
            return None
        marker = stream.read(1)
        while marker == b"\xff":  # fill bytes before a marker are allowed
            marker = stream.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in _JPEG_STANDALONE:
            continue
        if code in (0xD9, 0xDA):  # end of image or start of scan: no frame header came
            return None
        length_bytes = stream.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if length < 2:
            return None
        if code in _JPEG_SOF:
            frame = stream.read(5)  # precision, height, width
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return PixelSize(width, height)
        stream.seek(length - 2, 1)
    return None


def read_pixel_size(path: Path) -> PixelSize | None:
    """The pixel size in a PNG, GIF or JPEG header; None when unreadable or absurd."""
    try:
        with path.open("rb") as stream:
            head = stream.read(32)
            if head.startswith(_PNG_SIGNATURE):
                size = _png(head)
            elif head[:6] in (b"GIF87a", b"GIF89a"):
                size = _gif(head)
            elif head.startswith(b"\xff\xd8"):
                size = _jpeg(stream)
            else:
                size = None
    except (OSError, ValueError):
        return None
    if size is None or not (0 < size.width <= _MAX_SIDE and 0 < size.height <= _MAX_SIDE):
        return None
    return size


def local_file(url: str, site_url: str, root: Path) -> Path | None:
    """The file under ``root`` that the site URL ``url`` is served from, if any.

    ``static/<path>`` is tried before ``<path>``. Whatever the URL says
    (``..``, percent-encoded dots, symlinks), a candidate that resolves
    outside the root is never opened.
    """
    if not is_site_link(url, site_url):
        return None
    base_path = urlsplit(site_url.rstrip("/")).path
    path = unquote(urlsplit(url).path)
    if not path.startswith(base_path):
        return None
    relative = path[len(base_path):].lstrip("/")
    if not relative or "\x00" in relative:
        return None
    try:
        top = root.resolve()
        for candidate in (top / "static" / relative, top / relative):
            resolved = candidate.resolve()
            if resolved.is_relative_to(top) and resolved.is_file():
                return resolved
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    return None


@functools.lru_cache(maxsize=512)
def _cached_size(path: str, _mtime_ns: int, _bytes: int) -> PixelSize | None:
    # Keyed on mtime and size too, so a replaced image is read again.
    return read_pixel_size(Path(path))


def site_image_size(url: str, site_url: str, root: Path) -> PixelSize | None:
    """The pixel size of a site image given by absolute URL; None when unknown."""
    path = local_file(url, site_url, root)
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return _cached_size(str(path), stat.st_mtime_ns, stat.st_size)


def scaled_height(width: int, size: PixelSize | None, aspect: tuple[int, int]) -> int:
    """The height for ``width`` keeping the image's (or the assumed) aspect ratio."""
    across, down = (size.width, size.height) if size else aspect
    return max(1, round(width * down / across))


def image_urls(html: str) -> list[str]:
    """The ``src`` of every ``<img>`` in sanitised HTML (double-quoted attributes)."""
    return [htmllib.unescape(src) for src in _SRC.findall(html)]


def unknown_sizes(urls: Iterable[str], site_url: str, root: Path) -> list[str]:
    """The URLs among ``urls`` whose pixel size cannot be read, each once, in order."""
    out: list[str] = []
    for url in urls:
        if url and url not in out and site_image_size(url, site_url, root) is None:
            out.append(url)
    return out
