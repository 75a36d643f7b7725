"""imaging: probing, normalising for providers, embedded provenance metadata, thumbnails."""

from __future__ import annotations

import struct
import warnings
import zlib

import pytest

from imagerelay import imaging
from imagerelay.imaging import DIGITAL_SOURCE_TYPE, CorruptImage, ImageTooLarge, NotAnImage
from tests.images import (
    BLUE,
    EMPTY_BYTES,
    GREEN,
    RED,
    TEXT_BYTES,
    animated_gif_bytes,
    bomb_png_bytes,
    close,
    cmyk_jpeg_bytes,
    decode,
    exif_rotated_jpeg_bytes,
    gif_bytes,
    heic_bytes,
    int32_tiff_bytes,
    jpeg_bytes,
    noise_jpeg_bytes,
    noise_png_bytes,
    palette_png_with_transparency_bytes,
    pixel,
    png16_bytes,
    png_bytes,
    rgba_png_bytes,
    truncated_jpeg_bytes,
    webp_bytes,
)

JPEG_PNG = frozenset({"image/jpeg", "image/png"})
MIB = 1024 * 1024


def normalize(data: bytes, **kw: object) -> tuple[bytes, str, list[str]]:
    args: dict[str, object] = {"accept": JPEG_PNG, "max_bytes": 20 * MIB, "label": "reference 1"}
    args.update(kw)
    return imaging.normalize(data, **args)  # type: ignore[arg-type]


# --- probe -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt", "mime", "size", "frames", "alpha"),
    [
        (jpeg_bytes((64, 48)), "jpeg", "image/jpeg", (64, 48), 1, False),
        (png_bytes((30, 20)), "png", "image/png", (30, 20), 1, False),
        (rgba_png_bytes((30, 20)), "png", "image/png", (30, 20), 1, True),
        (webp_bytes((50, 40)), "webp", "image/webp", (50, 40), 1, False),
        (gif_bytes((40, 30)), "gif", "image/gif", (40, 30), 1, False),
        (animated_gif_bytes((40, 30), frames=12), "gif", "image/gif", (40, 30), 12, False),
        (heic_bytes((64, 48)), "heic", "image/heic", (64, 48), 1, False),
    ],
    ids=["jpeg", "png", "rgba-png", "webp", "gif", "animated-gif", "heic"],
)
def test_probe_describes_each_format(
    data: bytes, fmt: str, mime: str, size: tuple[int, int], frames: int, alpha: bool
) -> None:
    """probe reports format, MIME type, size, frame count and alpha of every supported format."""
    info = imaging.probe(data)
    assert (info.format, info.mime, (info.width, info.height), info.frames, info.has_alpha) == (
        fmt,
        mime,
        size,
        frames,
        alpha,
    )


def test_probe_reports_unusual_modes() -> None:
    """probe keeps the decoded mode, so CMYK and 16-bit images can be recognised for conversion."""
    assert imaging.probe(cmyk_jpeg_bytes()).mode == "CMYK"
    assert imaging.probe(png16_bytes()).mode.startswith("I;16")


def test_probe_refuses_truncated_jpeg() -> None:
    """A JPEG with an intact header but cut-off scan data fails as corrupt, not as a non-image."""
    truncated = truncated_jpeg_bytes()
    with pytest.raises(CorruptImage) as info:
        imaging.probe(truncated)
    assert not isinstance(info.value, NotAnImage)


@pytest.mark.parametrize("data", [TEXT_BYTES, EMPTY_BYTES], ids=["text", "empty"])
def test_probe_refuses_non_images(data: bytes) -> None:
    """Bytes Pillow cannot identify raise NotAnImage."""
    with pytest.raises(NotAnImage):
        imaging.probe(data)


def test_probe_refuses_decompression_bomb_with_declared_size() -> None:
    """A tiny PNG declaring 200000x200000 pixels is refused from its header, naming the size."""
    bomb = bomb_png_bytes(200_000, 200_000)
    assert len(bomb) < 1000
    with pytest.raises(ImageTooLarge) as info:
        imaging.probe(bomb)
    assert (info.value.width, info.value.height) == (200_000, 200_000)
    assert "200000x200000 pixels, over the 64-megapixel limit" in str(info.value)


def test_probe_refuses_image_over_our_limit_below_pillows() -> None:
    """9000x9000 (81 MP) is under Pillow's own bomb threshold but over MAX_PIXELS: refused."""
    with pytest.raises(ImageTooLarge) as info:
        imaging.probe(bomb_png_bytes(9000, 9000))
    assert (info.value.width, info.value.height) == (9000, 9000)


def test_probe_honours_a_lower_pixel_limit() -> None:
    """max_pixels lowers the bomb limit per call (provider responses can use their own)."""
    with pytest.raises(ImageTooLarge):
        imaging.probe(png_bytes((100, 100)), max_pixels=9_999)


def test_bomb_guard_leaves_global_state_alone() -> None:
    """Decoding (even a refused bomb) leaves warnings filters and Pillow's limits as they were."""
    from PIL import Image, ImageFile

    filters_before = list(warnings.filters)
    limit_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLarge):
        imaging.probe(bomb_png_bytes())
    imaging.probe(jpeg_bytes())
    assert warnings.filters == filters_before
    assert limit_before == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- normalize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [jpeg_bytes(), png_bytes(), rgba_png_bytes(), palette_png_with_transparency_bytes()]
)
def test_normalize_returns_acceptable_bytes_untouched(data: bytes) -> None:
    """An image the provider already takes comes back as the very same bytes, with no notes."""
    out, mime, notes = normalize(data)
    assert out is data
    assert mime == imaging.probe(data).mime
    assert notes == []


def test_normalize_applies_exif_rotation() -> None:
    """A JPEG stored 80x40 with orientation 6 comes out upright: 40x80, red on top, blue below."""
    out, mime, notes = normalize(exif_rotated_jpeg_bytes((80, 40), orientation=6))
    im = decode(out)
    assert mime == "image/jpeg"
    assert im.size == (40, 80)
    assert close(pixel(im, (20, 5)), RED)
    assert close(pixel(im, (20, 75)), BLUE)
    assert im.getexif().get(0x0112, 1) == 1  # not rotated a second time by a viewer
    assert notes == ["reference 1: EXIF rotation applied"]


def test_normalize_converts_cmyk_to_rgb_jpeg() -> None:
    """A CMYK JPEG becomes an RGB JPEG of the same colour."""
    out, mime, notes = normalize(cmyk_jpeg_bytes(cmyk=(0, 255, 255, 0)))
    im = decode(out)
    assert (mime, im.format, im.mode) == ("image/jpeg", "JPEG", "RGB")
    assert close(pixel(im, (0, 0)), (255, 0, 0), tolerance=20)
    assert notes == ["reference 1: CMYK converted to RGB"]


def test_normalize_cmyk_with_broken_profile_falls_back() -> None:
    """A CMYK JPEG whose embedded ICC profile is garbage still converts (plainly) instead of failing."""
    out, _, notes = normalize(cmyk_jpeg_bytes(icc_profile=b"not a profile at all"))
    im = decode(out)
    assert im.mode == "RGB"
    assert "icc_profile" not in im.info  # the CMYK profile must not be attached to RGB pixels
    assert close(pixel(im, (0, 0)), (255, 0, 0), tolerance=20)
    assert notes == ["reference 1: CMYK converted to RGB"]


def test_normalize_rescales_32_bit_integer_pixels() -> None:
    """A 32-bit integer TIFF is stretched into 8 bits (0..1000 -> 0..255) and converted to JPEG."""
    out, mime, notes = normalize(int32_tiff_bytes(low=0, high=1000))
    im = decode(out)
    assert (mime, im.mode) == ("image/jpeg", "L")
    assert pixel(im, (2, 8))[0] <= 3
    assert pixel(im, (29, 8))[0] >= 252
    assert notes == ["reference 1: 32-bit converted to 8-bit", "reference 1: TIFF converted to JPEG"]


def test_normalize_scales_16_bit_to_8_bit() -> None:
    """A 16-bit greyscale PNG becomes 8-bit with values scaled (40000 -> 156), not clipped to 255."""
    out, mime, notes = normalize(png16_bytes(value=40000))
    im = decode(out)
    assert (mime, im.mode) == ("image/png", "L")
    assert pixel(im, (0, 0)) == (40000 // 256,)
    assert notes == ["reference 1: 16-bit converted to 8-bit"]


def test_normalize_takes_first_frame_of_animation() -> None:
    """An animated GIF becomes one still image of its first (red) frame, and the note says so."""
    out, mime, notes = normalize(animated_gif_bytes(frames=12))
    im = decode(out)
    assert mime == "image/jpeg"
    assert getattr(im, "n_frames", 1) == 1
    assert close(pixel(im, (5, 5)), RED, tolerance=20)
    assert notes == [
        "reference 1: animated GIF, first frame of 12 used",
        "reference 1: GIF converted to JPEG",
    ]


@pytest.mark.parametrize(
    ("data", "mime", "mode", "note"),
    [
        (webp_bytes(color=GREEN), "image/jpeg", "RGB", "reference 1: WebP converted to JPEG"),
        (webp_bytes(color=GREEN, alpha=100), "image/png", "RGBA", "reference 1: WebP converted to PNG"),
        (heic_bytes(color=GREEN), "image/jpeg", "RGB", "reference 1: HEIC converted to JPEG"),
        (heic_bytes(color=GREEN, alpha=100), "image/png", "RGBA", "reference 1: HEIC converted to PNG"),
    ],
    ids=["webp", "webp-alpha", "heic", "heic-alpha"],
)
def test_normalize_converts_formats_the_provider_cannot_take(
    data: bytes, mime: str, mode: str, note: str
) -> None:
    """WebP/HEIC become JPEG, or PNG when they have transparency (which is kept)."""
    out, out_mime, notes = normalize(data)
    im = decode(out)
    assert (out_mime, im.mode) == (mime, mode)
    assert close(pixel(im, (3, 3))[:3], GREEN)
    if mode == "RGBA":
        assert abs(pixel(im, (3, 3))[3] - 100) <= 2
    assert notes == [note]


def test_normalize_turns_palette_transparency_into_rgba() -> None:
    """A palette PNG with a transparent colour, when re-encoded, keeps its transparency as RGBA."""
    out, mime, notes = normalize(palette_png_with_transparency_bytes((32, 32)), max_side=16)
    im = decode(out)
    assert (mime, im.mode, im.size) == ("image/png", "RGBA", (16, 16))
    assert pixel(im, (2, 8)) == (*RED, 255)
    assert pixel(im, (14, 8))[3] == 0
    assert notes == ["reference 1: downscaled 32x32 → 16x16 to fit 16 px"]


def test_normalize_flattens_alpha_for_jpeg_only_provider() -> None:
    """A provider that takes only JPEG gets transparency flattened onto white, with a note."""
    out, mime, notes = normalize(rgba_png_bytes(color=(0, 0, 0, 0)), accept=frozenset({"image/jpeg"}))
    assert mime == "image/jpeg"
    assert close(pixel(decode(out), (1, 1)), (255, 255, 255), tolerance=3)
    assert notes == [
        "reference 1: PNG converted to JPEG",
        "reference 1: transparency flattened onto white (JPEG has no alpha)",
    ]


def test_normalize_downscales_to_fit_max_bytes() -> None:
    """A 1.8 MB noise JPEG is downscaled, aspect ratio kept, until it is under max_bytes."""
    data = noise_jpeg_bytes((1600, 1200))
    out, mime, notes = normalize(data, max_bytes=500_000)
    im = decode(out)
    assert len(data) > 500_000 >= len(out)
    assert mime == "image/jpeg"
    assert im.width < 1600
    assert abs(im.width / im.height - 4 / 3) < 0.01
    assert notes == [f"reference 1: downscaled 1600x1200 → {im.width}x{im.height} to fit 488.3 KiB"]


def test_normalize_lowers_jpeg_quality_when_size_alone_is_not_enough() -> None:
    """Past the smallest useful size, JPEG quality is lowered instead, and both steps are noted."""
    out, _, notes = normalize(noise_jpeg_bytes((1600, 1200)), max_bytes=100_000)
    assert len(out) <= 100_000
    assert decode(out).size == (512, 384)
    assert notes[0] == "reference 1: downscaled 1600x1200 → 512x384 to fit 97.7 KiB"
    assert notes[1].startswith("reference 1: JPEG quality lowered to ")


def test_normalize_honours_max_side_and_max_pixels() -> None:
    """max_side bounds the long side and max_pixels the area; the note names the limit hit."""
    data = jpeg_bytes((3000, 2000))
    out, _, notes = normalize(data, max_side=1024)
    assert decode(out).size == (1024, 683)
    assert notes == ["reference 1: downscaled 3000x2000 → 1024x683 to fit 1024 px"]
    out, _, notes = normalize(data, max_pixels=1_000_000)
    w, h = decode(out).size
    assert w * h <= 1_000_000
    assert w * h > 990_000
    assert notes == [f"reference 1: downscaled 3000x2000 → {w}x{h} to fit 1 megapixel"]


def test_normalize_raises_when_bytes_cannot_fit() -> None:
    """An impossible byte limit raises DoesNotFit instead of returning an oversized image."""
    with pytest.raises(imaging.DoesNotFit, match="over the 1000 bytes limit"):
        normalize(noise_png_bytes((256, 256)), max_bytes=1000)


def test_normalize_refuses_accept_set_with_no_writable_format() -> None:
    """A catalog accept-set naming no JPEG/PNG/WebP is a programming error, not silently ignored."""
    with pytest.raises(ValueError, match="names no format"):
        normalize(webp_bytes(), accept=frozenset({"image/heic"}))


def test_human_bytes() -> None:
    """Byte counts read as binary units, without a needless '.0'."""
    assert [imaging.human_bytes(n) for n in (512, 1536, 20 * MIB, 3 << 30)] == [
        "512 bytes",
        "1.5 KiB",
        "20 MiB",
        "3 GiB",
    ]


# --- embedded metadata ---------------------------------------------------------------------------

PROMPT = 'a "cat" <on> a mat & ümlaut 🐈 </imagerelay:prompt> ]]>'
FIELDS = {"provider": "xai", "model": "grok-imagine-image", "prompt": PROMPT, "seed": "42"}


@pytest.mark.parametrize(
    "data",
    [
        exif_rotated_jpeg_bytes(),
        noise_jpeg_bytes((120, 90)),
        rgba_png_bytes(),
        noise_png_bytes((64, 64)),
        webp_bytes(),
        webp_bytes(alpha=100, lossless=True),
    ],
    ids=["jpeg-exif", "jpeg", "png-rgba", "png", "webp-lossy", "webp-lossless-alpha"],
)
def test_embed_metadata_round_trip_keeps_pixels(data: bytes) -> None:
    """Metadata reads back exactly (escaped prompt, source type) and the decoded pixels are unchanged."""
    info = imaging.probe(data)
    out = imaging.embed_metadata(data, info, description="desc " + PROMPT, fields=FIELDS)
    assert imaging.read_metadata(out) == {
        "DigitalSourceType": DIGITAL_SOURCE_TYPE,
        "description": "desc " + PROMPT,
        **FIELDS,
    }
    assert imaging.probe(out) == info
    assert decode(out).tobytes() == decode(data).tobytes()


def test_embed_metadata_is_standard_xmp_for_other_readers() -> None:
    """Pillow (as any XMP reader) finds the packet in JPEG, PNG and WebP, and PNG gets a Description."""
    for data in (jpeg_bytes(), png_bytes(), webp_bytes()):
        out = imaging.embed_metadata(data, imaging.probe(data), description="hello", fields={})
        im = decode(out)
        xmp = im.info.get("xmp")
        assert isinstance(xmp, bytes)
        assert DIGITAL_SOURCE_TYPE.encode() in xmp
    png = imaging.embed_metadata(png_bytes(), imaging.probe(png_bytes()), description="hello", fields={})
    assert decode(png).info["Description"] == "hello"


def test_embed_metadata_jpeg_keeps_exif_first_and_segment_valid() -> None:
    """The XMP APP1 segment follows JFIF/Exif, Exif orientation survives, and the scan is untouched."""
    data = exif_rotated_jpeg_bytes()
    out = imaging.embed_metadata(data, imaging.probe(data), description="d", fields={"a": "b"})
    markers = []
    pos = 2
    while out[pos + 1] != 0xDA:  # up to start of scan
        length = struct.unpack(">H", out[pos + 2 : pos + 4])[0]
        markers.append((out[pos + 1], out[pos + 4 : pos + 8]))
        pos += 2 + length
    kinds = [m for m, _ in markers]
    xmp_at = [i for i, (m, head) in enumerate(markers) if m == 0xE1 and head == b"http"]
    exif_at = [i for i, (m, head) in enumerate(markers) if m == 0xE1 and head == b"Exif"]
    assert kinds[0] == 0xE0
    assert len(xmp_at) == 1
    assert exif_at == [xmp_at[0] - 1]
    assert decode(out).getexif()[0x0112] == 6
    assert out.endswith(data[data.index(b"\xff\xda") :])


def test_embed_metadata_png_chunks_have_valid_crcs() -> None:
    """Every PNG chunk, the inserted iTXt ones included, carries a correct CRC and precedes IEND."""
    data = png_bytes()
    out = imaging.embed_metadata(data, imaging.probe(data), description="d 🐈", fields={"a": "b"})
    pos, kinds = 8, []
    while pos < len(out):
        length, kind = struct.unpack(">I4s", out[pos : pos + 8])
        body = out[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", out[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        pos += 12 + length
    assert kinds[-3:] == [b"iTXt", b"iTXt", b"IEND"]


def test_embed_metadata_twice_replaces_the_packet() -> None:
    """Embedding again leaves one XMP packet with the new values (no stale duplicate)."""
    for data in (jpeg_bytes(), png_bytes(), webp_bytes()):
        info = imaging.probe(data)
        once = imaging.embed_metadata(data, info, description="first", fields={"seed": "1"})
        twice = imaging.embed_metadata(once, info, description="second", fields={"seed": "2"})
        assert twice.count(b"<?xpacket begin") == 1
        assert imaging.read_metadata(twice)["seed"] == "2"
        assert imaging.read_metadata(twice)["description"] == "second"


def test_embed_metadata_shortens_huge_prompt_to_fit_jpeg_segment() -> None:
    """A 32000-emoji prompt is shortened (ending in …) so the JPEG XMP segment stays valid."""
    data = jpeg_bytes()
    out = imaging.embed_metadata(
        data, imaging.probe(data), description="🐈" * 32000, fields={"prompt": "🐈" * 32000}
    )
    meta = imaging.read_metadata(out)
    assert meta["prompt"].endswith("…")
    assert meta["prompt"].startswith("🐈" * 100)
    assert meta["DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert decode(out).tobytes() == decode(data).tobytes()


def test_embed_metadata_drops_characters_xml_cannot_hold() -> None:
    """Control characters in a prompt are dropped rather than producing an unreadable packet."""
    data = png_bytes()
    out = imaging.embed_metadata(data, imaging.probe(data), description="a\x00b\x1bc", fields={})
    assert imaging.read_metadata(out)["description"] == "abc"


def test_embed_metadata_refuses_unsupported_format_and_bad_field_name() -> None:
    """GIF and invalid XML field names raise ValueError instead of writing a broken file."""
    with pytest.raises(ValueError, match="GIF"):
        imaging.embed_metadata(gif_bytes(), imaging.probe(gif_bytes()), description="d", fields={})
    with pytest.raises(ValueError, match="not a valid XML name"):
        imaging.embed_metadata(png_bytes(), imaging.probe(png_bytes()), description="d", fields={"a b": "c"})


def test_read_metadata_of_plain_image_is_empty() -> None:
    """An image without our XMP reads back as {}."""
    assert imaging.read_metadata(jpeg_bytes()) == {}


# --- thumbnails ------------------------------------------------------------------------------------


def test_thumbnail_is_small_upright_jpeg_or_png() -> None:
    """Thumbnails fit max_side, are upright, JPEG when opaque and PNG when transparent."""
    thumb = decode(imaging.thumbnail(noise_jpeg_bytes((1600, 1200)), max_side=200))
    assert (thumb.format, thumb.size) == ("JPEG", (200, 150))
    upright = decode(imaging.thumbnail(exif_rotated_jpeg_bytes((80, 40)), max_side=384))
    assert upright.size == (40, 80)
    alpha = decode(imaging.thumbnail(rgba_png_bytes((800, 600)), max_side=100))
    assert (alpha.format, alpha.mode, alpha.size) == ("PNG", "RGBA", (100, 75))
