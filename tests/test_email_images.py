"""Email images: pixel sizes from file headers, the root guard, width/height on
every ``<img>``, and the aspect-ratio fallback with its ``dispatch check`` warning."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest

from dispatch.checks import all_problems
from dispatch.config import load_settings
from dispatch.errors import ConfigError
from dispatch.render import render_article_edition, render_digest_edition
from dispatch.render.images import (
    PixelSize,
    local_file,
    read_pixel_size,
    scaled_height,
    site_image_size,
)
from dispatch.render.links import email_images
from dispatch.render.settings import load_email_settings
from email_fixtures import NOW, REPO, TOML, articles_of, make_site, write

SITE = "https://journal.test"


# --- minimal valid image files, written byte by byte ------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int) -> bytes:
    """A real greyscale PNG: signature, IHDR, one IDAT of filtered rows, IEND."""
    rows = b"".join(b"\x00" + bytes([(x * 37) % 256 for x in range(width)])
                    for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def gif(width: int, height: int) -> bytes:
    """A GIF89a whose logical screen is width × height, holding one 1×1 image."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
            + b"\x00\x00\x00\xff\xff\xff"                        # 2-colour global table
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)      # image descriptor
            + b"\x02\x02\x44\x01\x00"                            # LZW data: one pixel
            + b"\x3b")


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(width: int, height: int, *, sof: int = 0xC0) -> bytes:
    """A JPEG's marker structure: APP0, a large APP1 (as EXIF makes), DQT, a DHT
    *before* the frame (C4 sits in the SOF range and must be skipped), fill
    bytes, SOFn, SOS, entropy data, EOI."""
    return (b"\xff\xd8"
            + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + _segment(0xE1, b"Exif\x00\x00" + b"\x00" * 6000)
            + _segment(0xDB, b"\x00" + bytes(range(64)))
            + _segment(0xC4, b"\x00" + b"\x01" * 16 + b"\x00" * 16)
            + b"\xff\xff"
            + _segment(sof, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
            + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
            + b"\x12\x34\x56"
            + b"\xff\xd9")


def put(root: Path, relative: str, data: bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- header readers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("maker", "name"), [(png, "a.png"), (gif, "a.gif"), (jpeg, "a.jpg")])
@pytest.mark.parametrize(("width", "height"), [(7, 3), (1200, 675), (640, 960)])
def test_header_gives_pixel_size(tmp_path: Path, maker, name: str,  # type: ignore[no-untyped-def]
                                 width: int, height: int) -> None:
    path = put(tmp_path, name, maker(width, height))
    assert read_pixel_size(path) == PixelSize(width, height)


@pytest.mark.parametrize("sof", [0xC1, 0xC2, 0xC3, 0xC9, 0xCF])
def test_jpeg_reads_every_frame_kind(tmp_path: Path, sof: int) -> None:
    assert read_pixel_size(put(tmp_path, "p.jpg", jpeg(300, 200, sof=sof))) == \
        PixelSize(300, 200)


def test_the_example_sites_images_are_real_jpegs() -> None:
    for name in ("sleep-clock.jpg", "handwashing.jpg"):
        path = REPO / "static" / "images" / name
        assert path.stat().st_size < 30_000
        assert read_pixel_size(path) == PixelSize(800, 500)


@pytest.mark.parametrize("data", [
    b"",
    b"not an image at all",
    png(10, 10)[:20],                                  # IHDR cut short
    b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIDAT" + b"\x00" * 13,   # first chunk not IHDR
    png(0, 10),                                        # zero width
    b"GIF89a\x05",                                     # truncated screen descriptor
    b"\xff\xd8" + _segment(0xE0, b"JFIF\x00") + b"\xff\xda\x00\x02\xff\xd9",  # scan, no frame
    b"\xff\xd8" + _segment(0xE1, b"\x00" * 10)[:6],    # truncated segment
    b"\xff\xd8\x00\x00",                               # garbage where a marker belongs
    b"\xff\xd8" + b"\xff\xe0\x00\x02" * 5000,          # endless empty segments
])
def test_unreadable_headers_give_none(tmp_path: Path, data: bytes) -> None:
    assert read_pixel_size(put(tmp_path, "bad.bin", data)) is None


def test_a_directory_or_missing_file_gives_none(tmp_path: Path) -> None:
    assert read_pixel_size(tmp_path) is None
    assert read_pixel_size(tmp_path / "missing.png") is None


# --- which file a URL means, and the root guard -----------------------------------------------

def test_static_is_tried_before_the_site_folder(tmp_path: Path) -> None:
    root = tmp_path / "site"
    put(root, "images/a.png", png(10, 20))
    assert local_file(f"{SITE}/images/a.png", SITE, root) == (root / "images/a.png").resolve()
    put(root, "static/images/a.png", png(30, 40))
    assert site_image_size(f"{SITE}/images/a.png", SITE, root) == PixelSize(30, 40)
    assert site_image_size(f"{SITE}/images/a.png?v=2#top", SITE, root) == PixelSize(30, 40)
    put(root, "static/images/with space.gif", gif(5, 4))
    assert site_image_size(f"{SITE}/images/with%20space.gif", SITE, root) == PixelSize(5, 4)


def test_only_site_urls_are_looked_up(tmp_path: Path) -> None:
    root = tmp_path / "site"
    put(root, "static/images/a.png", png(10, 20))
    for url in ("https://cdn.example.org/images/a.png", "https://journal.test.evil/images/a.png",
                "/images/a.png", "data:image/png;base64,AAAA", ""):
        assert local_file(url, SITE, root) is None, url


def test_a_site_under_a_path_maps_below_that_path(tmp_path: Path) -> None:
    root = tmp_path / "site"
    put(root, "static/images/a.png", png(10, 20))
    site = "https://example.org/journal"
    assert site_image_size(f"{site}/images/a.png", site, root) == PixelSize(10, 20)
    assert local_file("https://example.org/images/a.png", site, root) is None


@pytest.mark.parametrize("path", [
    "/../secret.png",
    "/../../secret.png",
    "/%2e%2e/secret.png",
    "/static/../../secret.png",
    "/images/..%2F..%2Fsecret.png",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd",
    "/link/secret.png",
])
def test_paths_escaping_the_root_are_never_read(tmp_path: Path, path: str) -> None:
    root = tmp_path / "site"
    put(root, "static/images/inside.png", png(10, 20))
    # A readable image just outside the root: if the guard failed, its size would come back.
    put(tmp_path, "secret.png", png(99, 77))
    (root / "static" / "link").symlink_to(tmp_path)
    url = SITE + path
    assert local_file(url, SITE, root) is None
    assert site_image_size(url, SITE, root) is None
    assert site_image_size(f"{SITE}/images/inside.png", SITE, root) == PixelSize(10, 20)


def test_scaled_height_keeps_the_aspect_ratio() -> None:
    assert scaled_height(536, PixelSize(800, 500), (16, 9)) == 335
    assert scaled_height(600, PixelSize(1200, 675), (1, 1)) == 338
    assert scaled_height(536, None, (4, 3)) == 402
    assert scaled_height(536, PixelSize(5000, 1), (16, 9)) == 1  # never zero


# --- rendered emails --------------------------------------------------------------------------

ARTICLE = """\
---
title: "Hands, soap and water"
date: 2026-10-01T08:00:00
summary: "Twenty seconds is enough."
category: Infections
image: /images/hero.png
image_alt: Hands under a tap
---

Washing your hands works.

![A chart](/img/chart.gif)

<img src="/images/photo.jpg" width="200" alt="A small photo">

<img src="/images/photo.jpg" width="1072" height="500" alt="Too wide">

![A remote picture](https://cdn.example.org/picture.jpg)

## Key takeaway

Soap and water for twenty seconds. ![Soap](/images/photo.jpg)
"""

LOCAL_ONLY = """\
---
title: "Only local images"
date: 2026-10-02T08:00:00
summary: "Every picture is on the site."
image: /images/hero.png
image_alt: A hero
---

![A chart](/img/chart.gif)
"""


@pytest.fixture
def image_site(tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "site"
    settings = make_site(root, {"hands.md": ARTICLE, "local.md": LOCAL_ONLY})
    put(root, "static/images/hero.png", png(1000, 500))   # static/<path>
    put(root, "img/chart.gif", gif(300, 200))             # <root>/<path>
    put(root, "static/images/photo.jpg", jpeg(400, 300))
    return settings


def _images(html: str) -> list[str]:
    return re.findall(r"<img\b[^>]*>", html, re.IGNORECASE)


def _attr(tag: str, name: str) -> str:
    match = re.search(rf'\s{name}="([^"]*)"', tag)
    assert match, f"{name} missing in {tag}"
    return match.group(1)


def test_every_img_in_the_article_email_has_width_height_and_alt(image_site) -> None:  # type: ignore[no-untyped-def]
    article = next(a for a in articles_of(image_site) if a.title.startswith("Hands"))
    html = render_article_edition(image_site, article, "ed-img").html
    tags = _images(html)
    assert len(tags) == 6
    sizes = {}
    for tag in tags:
        assert _attr(tag, "alt").strip()
        assert re.fullmatch(r"[0-9]+", _attr(tag, "width"))
        assert re.fullmatch(r"[0-9]+", _attr(tag, "height"))
        style = _attr(tag, "style").replace(" ", "")
        assert "height:auto" in style and "max-width:536px" in style  # still fluid
        sizes[_attr(tag, "alt")] = (int(_attr(tag, "width")), int(_attr(tag, "height")))
    assert sizes == {
        "Hands under a tap": (536, 268),         # hero PNG 1000×500 from static/
        "A chart": (536, 357),                   # GIF 300×200 from the site folder
        "A small photo": (200, 150),             # author's width kept, JPEG 400×300
        "Too wide": (536, 250),                  # wider than the column: author's proportions
        "A remote picture": (536, 302),          # unknown: default 16:9
        "Soap": (536, 402),                      # in the key takeaway
    }


def test_digest_images_carry_width_and_height(image_site) -> None:  # type: ignore[no-untyped-def]
    html = render_digest_edition(image_site, articles_of(image_site), "dg-img").html
    tags = _images(html)
    assert tags, "the takeaway image should reach the digest card"
    for tag in tags:
        assert _attr(tag, "width") and _attr(tag, "height") and _attr(tag, "alt")


def test_a_replaced_image_is_measured_again(image_site) -> None:  # type: ignore[no-untyped-def]
    url = f"{SITE}/images/hero.png"
    assert site_image_size(url, SITE, image_site.root) == PixelSize(1000, 500)
    put(image_site.root, "static/images/hero.png", png(600, 600) + b"\x00" * 10)
    assert site_image_size(url, SITE, image_site.root) == PixelSize(600, 600)


def test_aspect_fallback_is_configurable(tmp_path: Path) -> None:
    root = tmp_path / "site"
    make_site(root, {"hands.md": ARTICLE})
    write(root, "dispatch.toml", TOML + 'image_aspect = "4:3"\n')
    settings = load_settings(root)
    assert load_email_settings(settings).image_aspect == (4, 3)
    article = articles_of(settings)[0]
    html = render_article_edition(settings, article, "ed-43").html
    heights = {_attr(t, "alt"): _attr(t, "height") for t in _images(html)}
    # Nothing exists locally here: every image falls back to 4:3 at its width.
    assert heights["Hands under a tap"] == "402"
    assert heights["A remote picture"] == "402"
    assert heights["A small photo"] == "150"


@pytest.mark.parametrize("value", ['"wide"', '"16/9"', '"0:9"', '"16:0"', "1.78", '"-16:9"'])
def test_a_bad_aspect_is_a_config_error_naming_the_key(tmp_path: Path, value: str) -> None:
    root = tmp_path / "site"
    make_site(root)
    write(root, "dispatch.toml", TOML + f"image_aspect = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_email_settings(load_settings(root))
    message = str(info.value.problems[0])
    assert "email.image_aspect" in message and "16:9" in message
    assert info.value.problems[0].line == TOML.count("\n") + 1


def test_check_warns_once_per_article_naming_assumed_images(image_site) -> None:  # type: ignore[no-untyped-def]
    problems = [p for p in all_problems(image_site, NOW) if p.field == "image"]
    assert len(problems) == 1, problems
    warning = problems[0]
    assert not warning.is_error
    assert warning.path.endswith("hands.md")
    text = str(warning)
    assert "https://cdn.example.org/picture.jpg" in text
    assert "height assumed from [email] image_aspect" in text
    assert "hero.png" not in text and "chart.gif" not in text and "photo.jpg" not in text


def test_check_names_every_unknown_image_of_an_article_in_one_warning(tmp_path: Path) -> None:
    root = tmp_path / "site"
    settings = make_site(root, {"hands.md": ARTICLE})  # no image files at all
    problems = [p for p in all_problems(settings, NOW) if p.field == "image"]
    assert len(problems) == 1
    text = str(problems[0])
    for name in ("images/hero.png", "img/chart.gif", "images/photo.jpg", "picture.jpg"):
        assert name in text
    assert text.count("images/photo.jpg") == 1


def test_email_images_without_a_sizer_keeps_the_old_behaviour() -> None:
    html = email_images('<p><img src="https://x.test/a.png"></p>', "Illustration")
    assert html == '<p><img src="https://x.test/a.png" alt="Illustration" width="536"></p>'


def test_non_numeric_sizes_are_replaced_not_duplicated() -> None:
    html = email_images('<img src="a" alt="x" width="50%" height="auto">', "I",
                        lambda src, width: width // 2)
    tag = _images(html)[0]
    assert tag.count("width=") == 1 and tag.count("height=") == 1
    assert _attr(tag, "width") == "536" and _attr(tag, "height") == "268"
    html = email_images('<img src="a" alt="x" width="100" height="auto">', "I",
                        lambda src, width: width // 2)
    assert _images(html)[0].count("height=") == 1 and 'height="50"' in html
