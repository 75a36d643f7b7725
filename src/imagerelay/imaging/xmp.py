"""Provenance metadata (XMP) inside the image file, spliced in without re-encoding pixels."""

from __future__ import annotations

import html
import re
import struct
import zlib

from .decode import ImageInfo

__all__ = ["DIGITAL_SOURCE_TYPE", "embed_metadata", "read_metadata"]

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
"""IPTC digital source type for media created by a trained model: the 'AI-generated' label."""

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "imagerelay": "https://imagerelay.dev/ns/1.0/",
}
_XMP_JPEG_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_JPEG_MAX = 65533 - len(_XMP_JPEG_SIGNATURE)  # one APP1 segment; longer needs "extended XMP"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Patterns stay strings (re caches them on first use): compiling at import would slow start-up.
_FIELD_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
# Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/FFFF).
_XML_INVALID = "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


def _xml_text(value: str) -> str:
    return html.escape(re.sub(_XML_INVALID, "", value), quote=False)


def _xmp_packet(description: str, fields: dict[str, str]) -> bytes:
    props = "".join(f"\n   <imagerelay:{k}>{_xml_text(v)}</imagerelay:{k}>" for k, v in fields.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="{_NS["x"]}">\n'
        f' <rdf:RDF xmlns:rdf="{_NS["rdf"]}">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:dc="{_NS["dc"]}"\n'
        f'    xmlns:Iptc4xmpExt="{_NS["Iptc4xmpExt"]}"\n'
        f'    xmlns:imagerelay="{_NS["imagerelay"]}"\n'
        f'    Iptc4xmpExt:DigitalSourceType="{DIGITAL_SOURCE_TYPE}">\n'
        "   <dc:description><rdf:Alt>"
        f'<rdf:li xml:lang="x-default">{_xml_text(description)}</rdf:li>'
        f"</rdf:Alt></dc:description>{props}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _fitting_packet(description: str, fields: dict[str, str], limit: int | None) -> bytes:
    """The XMP packet, with the longest values shortened (marked "…") until it fits `limit`.

    Only JPEG has a hard limit (one APP1 segment); the full values are in the sidecar receipt.
    """
    values = {"": description, **fields}
    while True:
        packet = _xmp_packet(values[""], {k: v for k, v in values.items() if k})
        if limit is None or len(packet) <= limit:
            return packet
        longest = max(values, key=lambda k: len(values[k]))
        if len(values[longest]) < 16:
            raise ValueError("too many metadata fields to fit in a JPEG XMP segment")
        values[longest] = values[longest][: len(values[longest]) // 2] + "…"


def embed_metadata(data: bytes, info: ImageInfo, *, description: str, fields: dict[str, str]) -> bytes:
    """Return `data` with an XMP packet marking it AI-generated and summarising its receipt.

    The packet holds Iptc4xmpExt:DigitalSourceType = trainedAlgorithmicMedia, dc:description and
    one `imagerelay:<name>` property per field. It replaces any XMP already in the file. JPEG gets
    an APP1 segment, PNG `iTXt` chunks (XMP and Description), WebP an `XMP ` RIFF chunk: the
    compressed pixel data is copied byte for byte. Raises ValueError for other formats.
    """
    for name in fields:
        if not re.fullmatch(_FIELD_NAME, name):
            raise ValueError(f"metadata field name {name!r} is not a valid XML name")
    if info.mime == "image/jpeg" and data.startswith(b"\xff\xd8"):
        return _jpeg_with_xmp(data, _fitting_packet(description, fields, _XMP_JPEG_MAX))
    packet = _fitting_packet(description, fields, None)
    if info.mime == "image/png" and data.startswith(_PNG_SIGNATURE):
        return _png_with_xmp(data, packet, description)
    if info.mime == "image/webp" and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_with_xmp(data, packet, info)
    raise ValueError(f"cannot embed metadata in {info.display_format} (JPEG, PNG or WebP only)")


def _jpeg_with_xmp(data: bytes, packet: bytes) -> bytes:
    payload = _XMP_JPEG_SIGNATURE + packet
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    kept: list[bytes] = []
    insert_at = 0  # after the leading JFIF APP0 / Exif APP1 segments, which readers expect first
    leading = True
    pos = 2
    # Walk the marker segments up to the first that is not APPn/COM (DQT, SOF, SOS …).
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        seg = data[pos:end]
        pos = end
        if marker == 0xE1 and seg[4:].startswith(_XMP_JPEG_SIGNATURE):
            continue  # the old XMP packet is replaced
        kept.append(seg)
        leading = leading and (marker == 0xE0 or seg[4:10] == b"Exif\x00\x00")
        if leading:
            insert_at = len(kept)
    kept.insert(insert_at, segment)
    return data[:2] + b"".join(kept) + data[pos:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _itxt(keyword: str, text: str) -> bytes:
    # keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translation NUL
    return _png_chunk(b"iTXt", keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode())


def _png_with_xmp(data: bytes, packet: bytes, description: str) -> bytes:
    replaced = {b"XML:com.adobe.xmp", b"Description"}
    out = [_PNG_SIGNATURE]
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos : pos + 12 + length]
        pos += 12 + length
        if kind in (b"iTXt", b"tEXt", b"zTXt") and chunk[8:].split(b"\x00", 1)[0] in replaced:
            continue
        if kind == b"IEND":
            out += [_itxt("XML:com.adobe.xmp", packet.decode()), _itxt("Description", description), chunk]
            return b"".join(out)
        out.append(chunk)
    raise ValueError("PNG has no IEND chunk: cannot embed metadata")


def _webp_with_xmp(data: bytes, packet: bytes, info: ImageInfo) -> bytes:
    chunks: list[tuple[bytes, bytes]] = []
    end = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])  # ignore bytes after the RIFF
    pos = 12
    while pos + 8 <= end:
        kind, size = struct.unpack("<4sI", data[pos : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    chunks = [(k, body) for k, body in chunks if k != b"XMP "]
    if chunks and chunks[0][0] == b"VP8X":
        header = bytearray(chunks[0][1])
        header[0] |= 0x04  # XMP present
        chunks[0] = (b"VP8X", bytes(header))
    else:
        # A simple (lossy VP8 / lossless VP8L) file: metadata needs the extended VP8X header,
        # which carries the canvas size minus one in 24-bit fields.
        flags = 0x04 | (0x10 if info.has_alpha else 0)
        canvas = (info.width - 1).to_bytes(3, "little") + (info.height - 1).to_bytes(3, "little")
        vp8x = struct.pack("<I", flags) + canvas
        chunks.insert(0, (b"VP8X", vp8x))
    chunks.append((b"XMP ", packet))  # XMP comes last in an extended WebP
    body = b"".join(k + struct.pack("<I", len(c)) + c + (b"\x00" if len(c) & 1 else b"") for k, c in chunks)
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def read_metadata(data: bytes) -> dict[str, str]:
    """Read back what `embed_metadata` wrote: DigitalSourceType, description and the fields.

    Finds the XMP packet by scanning for its `<?xpacket` wrapper, as the XMP specification
    allows for any file format. Returns {} when there is none.
    """
    import xml.etree.ElementTree as ET

    start = data.find(b"<?xpacket begin=")
    end = data.find(b"<?xpacket end=", start)
    if start < 0 or end < 0:
        return {}
    end = data.find(b"?>", end) + 2
    try:
        root = ET.fromstring(data[start:end])
    except ET.ParseError:
        return {}
    result: dict[str, str] = {}
    source_type_key = f"{{{_NS['Iptc4xmpExt']}}}DigitalSourceType"
    ours = f"{{{_NS['imagerelay']}}}"
    for desc in root.iter(f"{{{_NS['rdf']}}}Description"):
        if source_type_key in desc.attrib:
            result["DigitalSourceType"] = desc.attrib[source_type_key]
        for child in desc:
            if child.tag == source_type_key:
                result["DigitalSourceType"] = (child.text or "").strip()
            elif child.tag == f"{{{_NS['dc']}}}description":
                li = child.find(f".//{{{_NS['rdf']}}}li")
                result["description"] = (li.text or "") if li is not None else ""
            elif child.tag.startswith(ours):
                result[child.tag.removeprefix(ours)] = child.text or ""
    return result
