"""references and netfetch: loading, verifying and preparing reference images, masks and URLs."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from imagerelay.errors import InvalidReference, UserError
from imagerelay.netfetch import fetch_image_url
from imagerelay.references import (
    MAX_REFERENCE_FILE_BYTES,
    ImageLimits,
    PreparedImage,
    aload_reference,
    as_mask,
    load_mask,
    load_reference,
    prepare,
)
from tests.images import (
    EMPTY_BYTES,
    GREEN,
    RED,
    TEXT_BYTES,
    animated_gif_bytes,
    bomb_png_bytes,
    close,
    cmyk_jpeg_bytes,
    decode,
    heic_bytes,
    jpeg_bytes,
    noise_png_bytes,
    pixel,
    png16_bytes,
    png_bytes,
    rgba_png_bytes,
    solid,
    truncated_jpeg_bytes,
    webp_bytes,
    write,
)

# --- load_reference: what is refused, and how it is said ---------------------------------------


def refusal(path: Path | str, label: str = "reference") -> str:
    """The message load_reference raises for `path` (checked to be one line with a chained cause)."""
    with pytest.raises(InvalidReference) as info:
        load_reference(path, label=label)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_file_is_named_with_the_fix(tmp_path: Path) -> None:
    """A path that does not exist: 'not found: check the path'."""
    path = tmp_path / "cat.jpg"
    assert refusal(path) == f"reference '{path}' not found: check the path"


def test_path_through_a_file_is_not_found(tmp_path: Path) -> None:
    """A path that runs through a regular file (not a directory) is reported as not found."""
    path = write(tmp_path, "a.jpg", jpeg_bytes()) / "b.jpg"
    assert refusal(path).endswith("not found: check the path")


def test_directory_is_refused(tmp_path: Path) -> None:
    """A directory is refused as such, not as an unreadable image."""
    assert refusal(tmp_path) == f"reference '{tmp_path}' is a directory: pass the path of an image file"


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe is refused before it is opened (reading it would block forever)."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert refusal(fifo).endswith("is not a regular file: pass the path of an image file")


def test_unreadable_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be opened for reading names the permission problem."""
    path = write(tmp_path, "cat.jpg", jpeg_bytes())

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    # chmod 000 does not stop root, and these tests may run as root: simulate the refusal instead.
    monkeypatch.setattr(Path, "open", denied)
    assert refusal(path) == f"reference '{path}' cannot be read (permission denied): check its permissions"


def test_empty_file_is_refused(tmp_path: Path) -> None:
    """A 0-byte file is 'empty', not 'not an image'."""
    path = write(tmp_path, "empty.png", EMPTY_BYTES)
    assert refusal(path) == f"reference '{path}' is empty (0 bytes): pass an image file with something in it"


def test_absurdly_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    """A file over MAX_REFERENCE_FILE_BYTES is refused from its size alone (a sparse file here)."""
    path = tmp_path / "huge.jpg"
    with path.open("wb") as f:
        f.truncate(MAX_REFERENCE_FILE_BYTES + 1024 * 1024)
    assert refusal(path) == (
        f"reference '{path}' is 101 MiB, over the 100 MiB limit for a reference: "
        "downscale or recompress it first"
    )


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    """A text file: 'is not an image (Pillow cannot identify it)' plus the formats to use."""
    path = write(tmp_path, "notes.txt", TEXT_BYTES)
    assert refusal(path) == (
        f"reference '{path}' is not an image (Pillow cannot identify it): "
        "pass a JPEG, PNG, WebP, GIF or HEIC file"
    )


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    """A JPEG cut off mid-scan is 'truncated or corrupt', caught at load time, before any spend."""
    path = write(tmp_path, "x.jpg", truncated_jpeg_bytes())
    assert refusal(path) == f"reference '{path}' is truncated or corrupt: re-export it"


def test_decompression_bomb_is_refused_with_its_size(tmp_path: Path) -> None:
    """A tiny PNG declaring 200000x200000 pixels is refused, naming the size and the limit."""
    path = write(tmp_path, "bomb.png", bomb_png_bytes(200_000, 200_000))
    # Refused from the header's size: 40 gigapixels could not have been decoded to get here.
    message = refusal(path, label="reference 2")
    assert message == (
        f"reference 2 '{path}' has 200000x200000 pixels, over the 64-megapixel limit: downscale it first"
    )


def test_refusals_are_user_errors_with_a_cause(tmp_path: Path) -> None:
    """Reference errors exit with code 2 (UserError) and keep the underlying error as __cause__."""
    path = write(tmp_path, "x.jpg", truncated_jpeg_bytes())
    with pytest.raises(InvalidReference) as info:
        load_reference(path)
    assert isinstance(info.value, UserError)
    assert info.value.exit_code == 2
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("name", "data", "fmt", "mode", "frames"),
    [
        ("cat.heic", heic_bytes(), "heic", "RGB", 1),
        ("cat.webp", webp_bytes(), "webp", "RGB", 1),
        ("cat.gif", animated_gif_bytes(frames=5), "gif", "P", 5),
        ("cmyk.jpg", cmyk_jpeg_bytes(), "jpeg", "CMYK", 1),
        ("deep.png", png16_bytes(), "png", "I;16", 1),
    ],
)
def test_convertible_images_are_accepted(
    tmp_path: Path, name: str, data: bytes, fmt: str, mode: str, frames: int
) -> None:
    """HEIC, WebP, animated GIF, CMYK and 16-bit load fine (prepare converts them later)."""
    ref = load_reference(write(tmp_path, name, data))
    assert (ref.info.format, ref.info.mode, ref.info.frames) == (fmt, mode, frames)
    assert ref.data == data
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.name == name


def test_reference_repr_leaves_out_the_bytes(tmp_path: Path) -> None:
    """repr(Reference) and repr(PreparedImage) do not dump megabytes of image data into logs."""
    ref = load_reference(write(tmp_path, "noise.png", noise_png_bytes((128, 128))))
    assert len(repr(ref)) < 500
    assert len(repr(prepare(ref, ImageLimits()))) < 500


# --- prepare -----------------------------------------------------------------------------------------


def test_prepare_passes_acceptable_reference_through(tmp_path: Path) -> None:
    """A JPEG the provider takes is sent as the original bytes, with its size and no notes."""
    data = jpeg_bytes((64, 48))
    ref = load_reference(write(tmp_path, "cat.jpg", data))
    prepared = prepare(ref, ImageLimits(), label="reference 1")
    assert prepared.data is ref.data
    assert (prepared.mime, prepared.width, prepared.height, prepared.notes) == ("image/jpeg", 64, 48, ())
    assert prepared.filename == "reference-1.jpg"
    assert prepared.data_uri() == "data:image/jpeg;base64," + base64.b64encode(data).decode()


def test_prepare_converts_and_reports(tmp_path: Path) -> None:
    """A WebP for a JPEG/PNG provider becomes a JPEG of the same size and colour, with a note."""
    ref = load_reference(write(tmp_path, "cat.webp", webp_bytes((50, 40), color=GREEN)))
    prepared = prepare(ref, ImageLimits(), label="reference 2")
    im = decode(prepared.data)
    assert (prepared.mime, im.format, im.size) == ("image/jpeg", "JPEG", (50, 40))
    assert (prepared.width, prepared.height) == (50, 40)
    assert close(pixel(im, (10, 10)), GREEN)
    assert prepared.notes == ("reference 2: WebP converted to JPEG",)
    assert prepared.filename == "reference-2.jpg"


def test_prepare_reports_downscaled_size(tmp_path: Path) -> None:
    """After downscaling, width/height describe the bytes actually sent."""
    ref = load_reference(write(tmp_path, "big.png", png_bytes((1000, 500))))
    prepared = prepare(ref, ImageLimits(max_side=200))
    assert (prepared.width, prepared.height) == decode(prepared.data).size == (200, 100)


def test_prepare_is_cached_per_reference_and_limits(tmp_path: Path) -> None:
    """The same reference and limits give the same PreparedImage object; other limits do not."""
    ref = load_reference(write(tmp_path, "cat.webp", webp_bytes()))
    first = prepare(ref, ImageLimits())
    assert prepare(ref, ImageLimits()) is first
    assert prepare(ref, ImageLimits(accept=frozenset({"image/png"}))).mime == "image/png"


def test_prepare_refuses_what_cannot_be_made_small_enough(tmp_path: Path) -> None:
    """A byte limit that cannot be met becomes one clear InvalidReference line."""
    ref = load_reference(write(tmp_path, "noise.png", noise_png_bytes((256, 256))))
    with pytest.raises(InvalidReference) as info:
        prepare(ref, ImageLimits(accept=frozenset({"image/png"}), max_bytes=1000), label="reference 1")
    assert str(info.value).startswith(
        "reference 1 'noise.png' cannot be made small enough for this provider ("
    )
    assert str(info.value).endswith("): crop or recompress it first")


def test_prepared_image_filename_per_mime() -> None:
    """Upload file names follow label and MIME type."""
    assert PreparedImage(b"", "image/png", 1, 1, label="mask").filename == "mask.png"
    assert PreparedImage(b"", "image/webp", 1, 1, label="Reference 3").filename == "reference-3.webp"


# --- masks -----------------------------------------------------------------------------------------------


def test_png_mask_with_alpha_is_kept(tmp_path: Path) -> None:
    """A PNG with real transparency is the mask as given, bytes untouched."""
    data = rgba_png_bytes(color=(0, 0, 0, 0))
    mask = load_mask(write(tmp_path, "mask.png", data))
    assert mask.data == data


def test_greyscale_mask_becomes_alpha(tmp_path: Path) -> None:
    """A black-and-white JPEG mask becomes an RGBA PNG: white (edit) -> transparent, black -> opaque."""
    im = solid((40, 20), (0, 0, 0))
    im.paste((255, 255, 255), (20, 0, 40, 20))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    path = write(tmp_path, "mask.jpg", buf.getvalue())
    mask = load_mask(path)
    out = decode(mask.data)
    assert (out.format, out.mode, mask.info.format) == ("PNG", "RGBA", "png")
    assert pixel(out, (5, 10))[3] > 245
    assert pixel(out, (35, 10))[3] < 10
    assert mask.sha256 == hashlib.sha256(buf.getvalue()).hexdigest()  # identifies the file as given


def test_colour_image_is_not_a_mask(tmp_path: Path) -> None:
    """A colour photo without transparency is refused as a mask, saying what a mask must be."""
    path = write(tmp_path, "photo.png", png_bytes(color=RED))
    with pytest.raises(InvalidReference) as info:
        load_mask(path)
    assert str(info.value) == (
        f"mask '{path}' has no transparency and is not greyscale: pass a PNG whose transparent "
        "pixels mark the area to edit, or a black-and-white image (white = edit)"
    )


def test_mask_with_nothing_to_edit_is_refused(tmp_path: Path) -> None:
    """An all-black (fully opaque) mask would edit nothing: refused with the fix."""
    path = write(tmp_path, "black.png", png_bytes(color=(0, 0, 0)))
    with pytest.raises(InvalidReference, match="has no transparent pixels, so nothing would be edited"):
        load_mask(path)


def test_as_mask_keeps_label(tmp_path: Path) -> None:
    """as_mask works on an already loaded reference (e.g. one fetched from a URL)."""
    ref = load_reference(write(tmp_path, "m.png", png_bytes(color=(255, 255, 255))))
    mask = as_mask(ref)
    assert pixel(decode(mask.data), (0, 0))[3] == 0


# --- URLs: a tiny local server ----------------------------------------------------------------------

CAT = jpeg_bytes((32, 32), RED)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path = self.path
        if path == "/cat.jpg":
            self._send(200, "image/jpeg", CAT)
        elif path == "/page":
            self._send(200, "text/html; charset=utf-8", b"<html>a cat</html>")
        elif path == "/missing.jpg":
            self._send(404, "text/plain", b"no")
        elif path == "/big-declared.jpg":
            self._send(200, "image/jpeg", b"\xff" * 5000)
        elif path == "/big-streamed.jpg":
            # no Content-Length: the body just goes on until the connection closes
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"\xff" * 1000)
        elif path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            self._redirect("/cat.jpg" if n == 0 else f"/hop/{n - 1}")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/bad-location":
            self._redirect("http://[::1")
        elif path == "/slow.jpg":
            time.sleep(1.0)
            self._send(200, "image/jpeg", CAT)
        elif path == "/notes.txt.jpg":
            self._send(200, "image/jpeg", TEXT_BYTES)
        else:
            self._send(404, "text/plain", b"?")

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early (size limit, timeout) are part of the tests


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Base URL of a local image server (http://127.0.0.1:<port>)."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """One plain httpx client per test, as the relay would pass in."""
    async with httpx.AsyncClient() as c:
        yield c


async def fetch_refusal(url: str, client: httpx.AsyncClient, **kw: object) -> str:
    args: dict[str, object] = {"max_bytes": 1024 * 1024}
    args.update(kw)
    with pytest.raises(InvalidReference) as info:
        await fetch_image_url(url, client=client, **args)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    ("url", "kind", "address"),
    [
        ("https://127.0.0.1/a.jpg", "loopback", "127.0.0.1"),
        ("https://10.0.0.5/a.jpg", "private", "10.0.0.5"),
        ("https://192.168.1.20:8443/a.jpg", "private", "192.168.1.20"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata", "169.254.169.254"),
        ("https://169.254.10.10/a.jpg", "link-local", "169.254.10.10"),
        ("https://[::1]/a.jpg", "loopback", "::1"),
        ("https://[fd12::1]/a.jpg", "private", "fd12::1"),
        ("https://[::ffff:10.1.2.3]/a.jpg", "private", "10.1.2.3"),
        ("https://0.0.0.0/a.jpg", "unspecified", "0.0.0.0"),
        ("https://224.0.0.1/a.jpg", "multicast", "224.0.0.1"),
        ("https://100.64.0.1/a.jpg", "non-public", "100.64.0.1"),
        ("https://localhost/a.jpg", "loopback", "127.0.0.1"),
    ],
)
async def test_private_addresses_are_refused(
    url: str, kind: str, address: str, client: httpx.AsyncClient
) -> None:
    """Loopback, private, link-local (cloud metadata too), multicast and other local hosts are refused."""
    message = await fetch_refusal(url, client)
    assert message.startswith(f"reference URL '{url}' points to a {kind} address (")
    assert message.endswith("): use a public https URL, or set references.allow_private_urls = true")
    if url != "https://localhost/a.jpg":  # localhost may resolve to ::1 first
        assert f"({address})" in message


async def test_plain_http_private_url_names_the_address(client: httpx.AsyncClient) -> None:
    """The documented example: http to a private address names the address and the setting."""
    message = await fetch_refusal("http://10.0.0.5/a.jpg", client)
    assert message == (
        "reference URL 'http://10.0.0.5/a.jpg' points to a private address (10.0.0.5): "
        "use a public https URL, or set references.allow_private_urls = true"
    )


async def test_other_schemes_are_refused(client: httpx.AsyncClient) -> None:
    """Only https (and http with allow_private) is fetched; ftp:// and the like are refused."""
    message = await fetch_refusal("ftp://example.com/a.jpg", client)
    assert message == (
        "reference URL 'ftp://example.com/a.jpg' must be an https URL, not ftp: "
        "pass an https URL or a file path"
    )


async def test_query_string_stays_out_of_messages(client: httpx.AsyncClient) -> None:
    """Signed-URL tokens in the query string are not echoed into error messages."""
    message = await fetch_refusal("https://10.0.0.5/a.jpg?X-Amz-Signature=secret", client)
    assert "secret" not in message
    assert "'https://10.0.0.5/a.jpg?…'" in message


async def test_fetch_from_local_server_when_allowed(server: str, client: httpx.AsyncClient) -> None:
    """With allow_private, an image on 127.0.0.1 is fetched whole with its content type."""
    data, ctype = await fetch_image_url(
        f"{server}/cat.jpg", client=client, max_bytes=100_000, allow_private=True
    )
    assert (data, ctype) == (CAT, "image/jpeg")


async def test_redirects_are_followed_up_to_three(server: str, client: httpx.AsyncClient) -> None:
    """Three redirects are followed; a fourth is refused."""
    data, _ = await fetch_image_url(f"{server}/hop/2", client=client, max_bytes=100_000, allow_private=True)
    assert data == CAT
    message = await fetch_refusal(f"{server}/hop/3", client, allow_private=True)
    assert message.endswith("redirects more than 3 times: pass the final image URL")


async def test_each_redirect_target_is_checked_again(server: str, client: httpx.AsyncClient) -> None:
    """A redirect to a forbidden target (here file://) is vetted like the first URL and refused."""
    message = await fetch_refusal(f"{server}/to-file", client, allow_private=True)
    assert message == (
        f"reference URL '{server}/to-file' (redirected to 'file:///etc/passwd') must be an https URL, "
        "not file: pass an https URL or a file path"
    )


async def test_malformed_redirect_is_one_line(server: str, client: httpx.AsyncClient) -> None:
    """A redirect to an unparseable Location ends as InvalidReference, not a traceback."""
    message = await fetch_refusal(f"{server}/bad-location", client, allow_private=True)
    assert message.startswith(f"reference URL '{server}/bad-location' could not be fetched (")


async def test_non_image_content_type_is_refused(server: str, client: httpx.AsyncClient) -> None:
    """An HTML page is refused by its content type, before the body is read."""
    message = await fetch_refusal(f"{server}/page", client, allow_private=True)
    assert message == (
        f"reference URL '{server}/page' returned text/html, not an image: "
        "pass a direct link to the image file"
    )


async def test_http_error_status_is_named(server: str, client: httpx.AsyncClient) -> None:
    """A 404 is reported with its status."""
    message = await fetch_refusal(f"{server}/missing.jpg", client, allow_private=True)
    assert message == (
        f"reference URL '{server}/missing.jpg' answered HTTP 404 Not Found: "
        "check that the URL works in a browser"
    )


async def test_oversized_body_is_cut_off(server: str, client: httpx.AsyncClient) -> None:
    """A body over max_bytes is refused from Content-Length, or stopped mid-stream without one."""
    message = await fetch_refusal(f"{server}/big-declared.jpg", client, allow_private=True, max_bytes=1024)
    assert message.endswith("is 4.9 KiB, over the 1 KiB limit: use a smaller image")
    message = await fetch_refusal(f"{server}/big-streamed.jpg", client, allow_private=True, max_bytes=1024)
    assert message.endswith("sent more than 1 KiB (the limit); stopped downloading: use a smaller image")


async def test_slow_server_times_out(server: str, client: httpx.AsyncClient) -> None:
    """The timeout bounds the whole download and is reported as one line."""
    message = await fetch_refusal(f"{server}/slow.jpg", client, allow_private=True, timeout=0.2)
    assert message.endswith(
        "did not answer within 0.2 s: check the URL, or download the image and pass the file"
    )


async def test_connection_refused_is_reported(client: httpx.AsyncClient) -> None:
    """A server that is not there gives 'could not be fetched'."""
    message = await fetch_refusal("http://127.0.0.1:9/a.jpg", client, allow_private=True)
    assert message.startswith("reference URL 'http://127.0.0.1:9/a.jpg' could not be fetched (")


async def test_aload_reference_from_url_and_path(
    server: str, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """aload_reference takes URLs (verified like files) and local paths alike."""
    ref = await aload_reference(f"{server}/cat.jpg", client=client, allow_private=True)
    assert (ref.data, ref.name, ref.info.format) == (CAT, "cat.jpg", "jpeg")
    local = await aload_reference(str(write(tmp_path, "cat.png", png_bytes())), client=client)
    assert local.info.format == "png"


async def test_aload_reference_refuses_private_url_by_default(server: str, client: httpx.AsyncClient) -> None:
    """Without allow_private the local server is off limits, with the reference's label in the message."""
    with pytest.raises(
        InvalidReference, match=r"^reference 2 URL '.*' points to a loopback address \(127\.0\.0\.1\)"
    ):
        await aload_reference(f"{server}/cat.jpg", client=client, label="reference 2")


async def test_aload_reference_verifies_downloaded_bytes(server: str, client: httpx.AsyncClient) -> None:
    """Bytes served as image/jpeg that are not an image are refused like a bad file."""
    with pytest.raises(InvalidReference) as info:
        await aload_reference(f"{server}/notes.txt.jpg", client=client, allow_private=True)
    assert str(info.value) == (
        f"reference URL '{server}/notes.txt.jpg' is not an image (Pillow cannot identify it): "
        "pass a JPEG, PNG, WebP, GIF or HEIC file"
    )
