"""C2PA on real signed files: trusted, tampered, untrusted signer, no anchors configured."""

from __future__ import annotations

import numpy as np
import pytest
from provenance_support import Pki, c2pa_sign, encode, make_ca, make_signer, photo, tamper

from provenance import Extractor, ProvenanceConfig, decide

FORMATS = [("JPEG", "image/jpeg"), ("PNG", "image/png")]


def _signed(pki: Pki, fmt: str, mime: str, **kw: object) -> bytes:
    return c2pa_sign(encode(photo(1), fmt), mime, pki.signer, **kw)  # type: ignore[arg-type]


def _kinds(report: object) -> dict[str, tuple[str, bool]]:
    return {f.kind: (f.value, f.verified) for f in report.findings}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fmt", "mime"), FORMATS)
def test_a_trusted_manifest_is_verified_and_makes_the_decision_synthetic(
    pki: Pki, extractor: Extractor, fmt: str, mime: str
) -> None:
    data = _signed(pki, fmt, mime)
    report = extractor.extract(data, np.asarray(photo(1)))
    assert report.c2pa_state == "Trusted"
    kinds = _kinds(report)
    assert kinds["c2pa_manifest"] == ("TestDiffusion 1.0", True)
    assert kinds["c2pa_action"] == ("c2pa.created", True)
    assert kinds["c2pa_digital_source_type"] == ("trainedAlgorithmicMedia", True)
    assert report.verified_ai
    decision, reasons = decide(0.02, 0.5, report)  # the pixels say "real"
    assert decision == "synthetic"
    assert any(r.decisive and "trainedAlgorithmicMedia" in r.detail for r in reasons)
    assert not next(r for r in reasons if r.kind == "pixel_score").decisive


@pytest.mark.parametrize(("fmt", "mime"), FORMATS)
def test_a_file_tampered_after_signing_is_invalid_and_not_verified(
    pki: Pki, extractor: Extractor, fmt: str, mime: str
) -> None:
    report = extractor.extract(tamper(_signed(pki, fmt, mime)))
    assert report.c2pa_state == "Invalid"
    manifest = next(f for f in report.findings if f.kind == "c2pa_manifest")
    assert not manifest.verified and "dataHash.mismatch" in (manifest.detail or "")
    assert not report.verified_ai
    assert decide(0.02, 0.5, report)[0] == "real"  # unverified metadata only adds a reason


@pytest.mark.parametrize(("fmt", "mime"), FORMATS)
def test_an_untrusted_signer_validates_but_is_not_verified(
    pki: Pki, extractor: Extractor, fmt: str, mime: str
) -> None:
    other_key, other_cert = make_ca("some other root")
    stranger = make_signer(other_key, other_cert)
    data = c2pa_sign(encode(photo(2), fmt), mime, stranger)
    report = extractor.extract(data)
    assert report.c2pa_state == "Valid"
    manifest = next(f for f in report.findings if f.kind == "c2pa_manifest")
    assert not manifest.verified and "signingCredential.untrusted" in (manifest.detail or "")
    assert _kinds(report)["c2pa_digital_source_type"] == ("trainedAlgorithmicMedia", False)
    decision, reasons = decide(0.45, 0.5, report)
    assert decision == "uncertain"
    assert any(r.kind == "provenance" and "unverified" in r.detail for r in reasons)


def test_an_expired_certificate_cannot_even_sign(pki: Pki) -> None:
    """The SDK refuses to sign with a certificate outside its validity (so no such file)."""
    import datetime as dt

    import c2pa
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    leaf = x509.load_pem_x509_certificate(pki.signer.chain)
    expired = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(pki.ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .sign(pki.ca_key, hashes.SHA256())
    )
    chain = expired.public_bytes(serialization.Encoding.PEM) + pki.anchor_pem
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    from provenance_support import Signer

    with pytest.raises(c2pa.C2paError):
        c2pa_sign(encode(photo(3), "JPEG"), "image/jpeg", Signer(chain, pkcs8))


def test_without_configured_anchors_nothing_is_verified(pki: Pki) -> None:
    data = _signed(pki, "JPEG", "image/jpeg")
    report = Extractor(ProvenanceConfig(timeout_s=30.0)).extract(data)
    assert report.c2pa_state == "Valid"
    assert not any(f.verified for f in report.findings)


def test_a_camera_manifest_is_verified_but_says_nothing_about_ai(
    pki: Pki, extractor: Extractor
) -> None:
    data = c2pa_sign(encode(photo(4), "JPEG"), "image/jpeg", pki.signer, "digitalCapture")
    report = extractor.extract(data)
    assert _kinds(report)["c2pa_digital_source_type"] == ("digitalCapture", True)
    assert not report.verified_ai
    assert decide(0.9, 0.5, report)[0] == "synthetic"  # pixels still decide


@pytest.mark.parametrize(
    ("head", "sniffed", "for_c2pa"),
    [
        (b"\xff\xd8\xff\xe0", "image/jpeg", "image/jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp", "image/webp"),
        (b"\x00\x00\x00\x1cftypavif", "image/avif", "image/avif"),
        (b"\x00\x00\x00\x1cftypheic", "image/heic", "image/heic"),
        (b"BM\x00\x00", "image/bmp", None),  # C2PA does not embed in BMP
        (b"xxxxxxxxWEBP", None, None),  # "WEBP" without its RIFF container
    ],
)
def test_c2pa_sniffs_formats_with_the_wire_contracts_table(
    head: bytes, sniffed: str | None, for_c2pa: str | None
) -> None:
    from provenance.c2pa_source import mime_of
    from schemas import sniff_image_mime

    assert (sniff_image_mime(head), mime_of(head)) == (sniffed, for_c2pa)
