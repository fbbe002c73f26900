"""Hostile metadata never raises and never takes long: it becomes an ``unreadable`` entry."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest
from provenance_support import (
    Pki,
    c2pa_sign,
    encode,
    itxt_chunk,
    photo,
    png_chunk,
    png_with_chunks,
    text_chunk,
    xmp_packet,
)

from provenance import Extractor, ProvenanceConfig, ProvenanceReport

BOUND_S = 10.0  # generous for a loaded 2-core machine; typical cost is milliseconds


def _huge_xmp() -> bytes:
    packet = xmp_packet().replace("</rdf:RDF>", "<x>" + "A" * 3_000_000 + "</x></rdf:RDF>")
    return png_with_chunks(photo(), [itxt_chunk("XML:com.adobe.xmp", packet)])


def _deep_xmp() -> bytes:
    depth = 50_000
    body = "<rdf:Bag>" * depth + xmp_packet() + "</rdf:Bag>" * depth
    return png_with_chunks(photo(), [itxt_chunk("XML:com.adobe.xmp", body, compressed=True)])


def _billion_laughs() -> bytes:
    entities = '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)
    )
    packet = entities + "]>" + xmp_packet().replace("TestPainter 2.0", "&j;")
    return png_with_chunks(photo(), [itxt_chunk("XML:com.adobe.xmp", packet)])


def _deep_json() -> bytes:
    return png_with_chunks(photo(), [text_chunk("workflow", "[" * 200_000 + "]" * 200_000)])


def _ztxt_bomb() -> bytes:
    bomb = zlib.compress(b"\x00" * 20_000_000, 1)  # 20x the cap
    return png_with_chunks(photo(), [png_chunk(b"zTXt", b"parameters\x00\x00" + bomb)])


def _lying_length() -> bytes:
    head = encode(photo(), "PNG")[:33]
    return head + struct.pack(">I", 0xFFFFFFF0) + b"tEXtparameters\x00x"


def _garbage_c2pa_jpeg() -> bytes:
    jpeg = encode(photo(), "JPEG", quality=90)
    junk = b"c2pa" + b"\xa5" * 4000  # a JUMBF superbox whose description box is garbage
    payload = b"JP\x00\x01\x00\x00\x00\x01" + struct.pack(">I", 8 + len(junk)) + b"jumb" + junk
    segment = b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def _mangled_manifest(pki: Pki, fmt: str, offset: int) -> bytes:
    mime = f"image/{fmt.lower()}"
    signed = bytearray(c2pa_sign(encode(photo(), fmt), mime, pki.signer))
    at = signed.find(b"jumd") + offset
    signed[at : at + 64] = bytes(range(64))
    return bytes(signed)


def _broken_png_c2pa() -> bytes:
    return png_with_chunks(photo(), [png_chunk(b"caBX", b"\x00\x00\x00\x10jumbc2pa" * 50)])


CASES = {
    "huge_xmp": (_huge_xmp, {"xmp", "png_text"}),
    "deep_xmp": (_deep_xmp, set()),
    "billion_laughs": (_billion_laughs, set()),
    "deep_json": (_deep_json, set()),
    "ztxt_bomb": (_ztxt_bomb, set()),
    "lying_chunk_length": (_lying_length, {"png_text"}),
    "garbage_c2pa_jpeg": (_garbage_c2pa_jpeg, set()),  # not recognised as a manifest at all
    "broken_png_c2pa": (_broken_png_c2pa, {"c2pa"}),
}


def _check(report: ProvenanceReport, seconds: float) -> None:
    assert seconds < BOUND_S
    assert not any(f.verified for f in report.findings)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_metadata_gives_a_report_within_the_bound(extractor: Extractor, case: str) -> None:
    build, unreadable = CASES[case]
    data = build()
    began = time.monotonic()
    report = extractor.extract(data, np.asarray(photo()))
    _check(report, time.monotonic() - began)
    assert {u.source for u in report.unreadable} >= unreadable, report.unreadable
    assert report.pdq is not None


def test_what_hostile_inputs_still_yield(extractor: Extractor) -> None:
    deep = {f.kind: f.value for f in extractor.extract(_deep_xmp()).findings}
    assert deep["iptc_digital_source_type"] == "trainedAlgorithmicMedia"  # nesting is harmless
    laughs = {f.kind: f.value for f in extractor.extract(_billion_laughs()).findings}
    assert laughs["creator_tool"] == "&j;"  # entities are never expanded
    workflow = {f.kind: f.value for f in extractor.extract(_deep_json()).findings}
    assert workflow["comfyui_workflow"] == "unparseable JSON"
    bomb = next(f for f in extractor.extract(_ztxt_bomb()).findings)
    assert bomb.kind == "a1111_parameters" and "cut at" in (bomb.detail or "")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("offset", [0, 40, 400])
def test_a_mangled_manifest_is_reported_not_raised(
    pki: Pki, extractor: Extractor, fmt: str, offset: int
) -> None:
    began = time.monotonic()
    report = extractor.extract(_mangled_manifest(pki, fmt, offset))
    _check(report, time.monotonic() - began)
    assert not report.verified_ai
    assert "c2pa" in {u.source for u in report.unreadable} or report.c2pa_state == "Invalid"


def test_a_slow_source_times_out_and_stuck_workers_are_skipped() -> None:
    config = ProvenanceConfig(watermark=True, watermark_max_pixels=1 << 30, timeout_s=0.05)
    slow = Extractor(config)
    big = np.asarray(photo(7, (1024, 1024)))
    data = encode(photo(), "PNG")
    began = time.monotonic()
    reports = [slow.extract(data, big) for _ in range(3)]
    assert time.monotonic() - began < BOUND_S
    reasons = [r.unreadable[0].reason for r in reports]
    assert reasons[0] == "timed out after 0.05 s"
    assert reasons[-1] == "skipped: workers busy with stuck inputs"  # 2 workers, both overdue
    assert all(r.pdq is not None for r in reports)  # the hash is still there
    deadline = time.monotonic() + 60
    while slow.extract(data).unreadable and time.monotonic() < deadline:
        time.sleep(0.2)  # the stuck calls finish; the extractor recovers
    assert slow.extract(data).unreadable == ()


def test_inputs_over_the_size_cap_are_not_parsed() -> None:
    report = Extractor(ProvenanceConfig(max_bytes=1000)).extract(encode(photo(), "PNG"))
    assert report.unreadable[0].reason.startswith("skipped:")


def test_thousands_of_text_chunks_are_capped_and_still_make_a_valid_verdict(
    extractor: Extractor,
) -> None:
    from consumer.output.verdict_fields import verdict_fields
    from provenance import DecisionPolicy

    chunks = [text_chunk("parameters", f"Steps: {i}") for i in range(3000)]
    report = extractor.extract(png_with_chunks(photo(), chunks))
    assert len(report.findings) == 64
    assert report.unreadable[-1].reason == "2936 more findings dropped"
    fields = verdict_fields(0.5, 0.5, report, DecisionPolicy(), None)
    assert len(fields["reasons"]) <= 256 and len(fields["provenance"].findings) == 64
