"""Unsigned metadata on real files: A1111 and ComfyUI PNG text, IPTC XMP, EXIF Software."""

from __future__ import annotations

from provenance_support import (
    A1111,
    COMFY_PROMPT,
    COMFY_WORKFLOW,
    encode,
    itxt_chunk,
    jpeg_with_software,
    jpeg_with_xmp,
    photo,
    png_with_chunks,
    text_chunk,
    xmp_packet,
)

from provenance import Extractor, decide


def _by_kind(report: object) -> dict[str, str]:
    return {f.kind: f.value for f in report.findings}  # type: ignore[attr-defined]


def test_a1111_parameters_give_the_settings_line(extractor: Extractor) -> None:
    report = extractor.extract(png_with_chunks(photo(), [text_chunk("parameters", A1111)]))
    value = _by_kind(report)["a1111_parameters"]
    assert value.startswith("Steps: 20, Sampler: Euler a") and "v1-5-pruned-emaonly" in value
    assert not any(f.verified for f in report.findings)


def test_comfyui_prompt_and_workflow_are_summarised(extractor: Extractor) -> None:
    data = png_with_chunks(
        photo(), [text_chunk("prompt", COMFY_PROMPT), itxt_chunk("workflow", COMFY_WORKFLOW, True)]
    )
    kinds = _by_kind(extractor.extract(data))
    assert kinds["comfyui_prompt"] == "3 nodes: KSampler, CheckpointLoaderSimple, SaveImage"
    assert kinds["comfyui_workflow"] == "2 nodes: KSampler, CheckpointLoaderSimple"


def test_iptc_digital_source_type_in_jpeg_xmp_is_found_but_never_verified(
    extractor: Extractor,
) -> None:
    report = extractor.extract(jpeg_with_xmp(photo(), xmp_packet()))
    findings = {f.kind: f for f in report.findings}
    assert findings["iptc_digital_source_type"].value == "trainedAlgorithmicMedia"
    assert findings["iptc_digital_source_type"].source == "xmp"
    assert not findings["iptc_digital_source_type"].verified
    assert findings["creator_tool"].value == "TestPainter 2.0"
    decision, reasons = decide(0.1, 0.5, report)
    assert decision == "real"  # unverified: a reason, not a decision
    assert any("iptc_digital_source_type=trainedAlgorithmicMedia" in r.detail for r in reasons)


def test_xmp_inside_a_png_itxt_chunk(extractor: Extractor) -> None:
    chunk = itxt_chunk("XML:com.adobe.xmp", xmp_packet("compositeWithTrainedAlgorithmicMedia"))
    kinds = _by_kind(extractor.extract(png_with_chunks(photo(), [chunk])))
    assert kinds["iptc_digital_source_type"] == "compositeWithTrainedAlgorithmicMedia"


def test_exif_software(extractor: Extractor) -> None:
    report = extractor.extract(jpeg_with_software(photo(), "Adobe Firefly 3"))
    assert _by_kind(report)["software"] == "Adobe Firefly 3"


def test_a_plain_image_has_no_findings_and_absence_proves_nothing(extractor: Extractor) -> None:
    report = extractor.extract(encode(photo(), "JPEG", quality=90))
    assert report.findings == () and report.unreadable == ()
    decision, reasons = decide(0.3, 0.5, report)
    assert decision == "real" and [r.kind for r in reasons] == ["pixel_score"]


def test_a_remote_manifest_reference_is_reported_and_never_fetched(extractor: Extractor) -> None:
    url = "https://cai-manifests.example.com/manifests/abc123"
    packet = xmp_packet().replace(
        'xmp:CreatorTool="TestPainter 2.0"',
        f'xmp:CreatorTool="TestPainter 2.0" xmlns:dcterms="http://purl.org/dc/terms/" '
        f'dcterms:provenance="{url}"',
    )
    report = extractor.extract(jpeg_with_xmp(photo(), packet))
    remote = next(f for f in report.findings if f.kind == "c2pa_remote_manifest")
    assert remote.value == url and not remote.verified and "not fetched" in (remote.detail or "")
