"""Unsigned metadata: XMP (IPTC digital source type, CreatorTool), PNG text chunks, EXIF Software.

Nothing here parses XML or trusts a length field: XMP is scanned with bounded regular
expressions (no entity expansion, nesting depth is irrelevant), PNG chunks are walked with
size caps and compressed text is inflated up to a cap, so hostile metadata costs at most
``max_text_bytes`` of work per source. None of these findings is ever ``verified``.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from typing import Any

from provenance.findings import Finding, Unreadable, clip

__all__ = ["read_exif", "read_png_text", "read_xmp"]

_XMP_OPEN = b"<x:xmpmeta"
_XMP_CLOSE = b"</x:xmpmeta>"
_SOURCE_TYPE = re.compile(rb"cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]{1,64})")
_CREATOR_TOOL = re.compile(
    rb"CreatorTool(?:\s*=\s*[\"']([^\"'<>]{1,300})[\"']|\s*>\s*([^<>]{1,300})<)"
)
_REMOTE_MANIFEST = re.compile(
    rb"dcterms:provenance(?:\s*=\s*[\"']([^\"'<>]{1,300})[\"']|\s*>\s*([^<>]{1,300})<)"
)
_MAX_XMP_PACKETS = 4
_MAX_CHUNKS = 4096
_GENERATOR_KEYS = {
    "parameters": "a1111_parameters",
    "workflow": "comfyui_workflow",
    "prompt": "comfyui_prompt",
    "sd-metadata": "invokeai_metadata",
    "invokeai_metadata": "invokeai_metadata",
    "Dream": "invokeai_metadata",
    "Software": "software",
    "generation_data": "generation_data",
}
_XMP_KEY = "XML:com.adobe.xmp"


def read_xmp(data: bytes, max_bytes: int) -> tuple[list[Finding], list[Unreadable]]:
    """IPTC DigitalSourceType, CreatorTool and a remote C2PA manifest URL (never fetched) from
    every uncompressed XMP packet in ``data``."""
    findings: list[Finding] = []
    unreadable: list[Unreadable] = []
    start = data.find(_XMP_OPEN)
    packets = 0
    while start >= 0 and packets < _MAX_XMP_PACKETS:
        end = data.find(_XMP_CLOSE, start, start + max_bytes + len(_XMP_CLOSE))
        if end < 0:
            unreadable.append(Unreadable("xmp", f"packet unterminated or over {max_bytes} bytes"))
            break
        findings += _xmp_findings(data[start:end])
        packets += 1
        start = data.find(_XMP_OPEN, end)
    return _dedupe(findings), unreadable


def _xmp_findings(packet: bytes) -> list[Finding]:
    found = [
        Finding("xmp", "iptc_digital_source_type", m.group(1).decode("ascii"))
        for m in _SOURCE_TYPE.finditer(packet)
    ]
    for m in _CREATOR_TOOL.finditer(packet):
        raw = m.group(1) or m.group(2) or b""
        tool = clip(raw.decode("utf-8", "replace"))
        if tool:
            found.append(Finding("xmp", "creator_tool", tool))
    for m in _REMOTE_MANIFEST.finditer(packet):
        url = clip((m.group(1) or m.group(2) or b"").decode("utf-8", "replace"))
        detail = "remote C2PA manifest: not fetched (offline)"
        found.append(Finding("xmp", "c2pa_remote_manifest", url, detail=detail))
    return found[:16]


def read_png_text(data: bytes, max_bytes: int) -> tuple[list[Finding], list[Unreadable]]:
    """Generator parameters from PNG ``tEXt``/``zTXt``/``iTXt`` chunks (and XMP inside iTXt)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return [], []
    findings: list[Finding] = []
    unreadable: list[Unreadable] = []
    pos = 8
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > len(data):
            break
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if ctype == b"IEND":
            break
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        if length > max_bytes:
            unreadable.append(Unreadable("png_text", f"{ctype.decode()} chunk over {max_bytes} B"))
            continue
        try:
            key, text, cut = _text_chunk(ctype, body, max_bytes)
        except (ValueError, IndexError, zlib.error, UnicodeDecodeError) as exc:
            unreadable.append(Unreadable("png_text", clip(f"{ctype.decode()}: {exc}")))
            continue
        if key == _XMP_KEY:
            more, bad = read_xmp(text.encode("utf-8"), max_bytes)
            findings += more
            unreadable += bad
        elif key in _GENERATOR_KEYS:
            kind = _GENERATOR_KEYS[key]
            detail = f"cut at {max_bytes} bytes" if cut else None
            findings.append(Finding("png_text", kind, _summary(kind, text), detail=detail))
    return _dedupe(findings), unreadable


def _text_chunk(ctype: bytes, body: bytes, cap: int) -> tuple[str, str, bool]:
    key, sep, rest = body.partition(b"\x00")
    if not sep or not 1 <= len(key) <= 79:
        raise ValueError("no keyword")
    keyword = key.decode("latin-1")
    if ctype == b"tEXt":
        return keyword, rest.decode("latin-1"), False
    if ctype == b"zTXt":
        raw, cut = _inflate(rest[1:], cap)
        return keyword, raw.decode("latin-1"), cut
    flag, method = rest[0], rest[1]  # iTXt: flag, method, language\0, translated\0, text
    _lang, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    if flag and method == 0:
        text, cut = _inflate(text, cap)
        return keyword, text.decode("utf-8", "replace"), cut
    return keyword, text.decode("utf-8", "replace"), False


def _inflate(blob: bytes, cap: int) -> tuple[bytes, bool]:
    inflater = zlib.decompressobj()
    out = inflater.decompress(blob, cap)
    return out, bool(inflater.unconsumed_tail)


def _summary(kind: str, text: str) -> str:
    if kind == "a1111_parameters":  # "prompt\nNegative prompt: ...\nSteps: 20, Sampler: ..."
        lines = [line for line in text.splitlines() if line.strip()]
        settings = next((ln for ln in reversed(lines) if ln.startswith("Steps:")), None)
        return clip(settings or (lines[-1] if lines else ""))
    if kind.startswith("comfyui"):
        return clip(_comfy_summary(text))
    return clip(text)


def _comfy_summary(text: str) -> str:
    try:
        graph: Any = json.loads(text)
    except (ValueError, RecursionError):
        return "unparseable JSON"
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if not isinstance(nodes, list):  # the API "prompt" form: {id: {class_type, inputs}}
        nodes = list(graph.values()) if isinstance(graph, dict) else []
    types: list[str] = []
    for node in nodes:
        if isinstance(node, dict):
            name = node.get("class_type") or node.get("type")
            if isinstance(name, str) and name not in types:
                types.append(name)
    return f"{len(nodes)} nodes: {', '.join(types[:8])}"


def read_exif(data: bytes) -> tuple[list[Finding], list[Unreadable]]:
    """EXIF ``Software`` (tag 0x0131) via Pillow (which never decodes pixels for this)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            software = image.getexif().get(0x0131)
    except Exception as exc:  # any parse failure of hostile EXIF is a report, not a crash
        return [], [Unreadable("exif", clip(f"{type(exc).__name__}: {exc}"))]
    if isinstance(software, bytes):
        software = software.decode("utf-8", "replace")
    if isinstance(software, str) and software.strip("\x00 "):
        return [Finding("exif", "software", clip(software.strip("\x00 ")))], []
    return [], []


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for f in findings:
        if (f.source, f.kind, f.value) not in seen:
            seen.add((f.source, f.kind, f.value))
            unique.append(f)
    return unique
