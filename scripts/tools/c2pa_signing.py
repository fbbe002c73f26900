"""A throwaway PKI (root CA + ES256 signer) and a C2PA signer, for tests and the provenance
benchmark: real signed files without any real key.

Used by ``tests/provenance`` and ``scripts/bench/bench_provenance.py``; needs ``cryptography``
and ``c2pa-python``.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["IPTC", "Pki", "Signer", "c2pa_sign", "make_ca", "make_pki", "make_signer"]

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "synthscan tests"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Signer:
    """A signing certificate chain (leaf first) and its private key, as PEM."""

    chain: bytes
    key: bytes


@dataclass(frozen=True)
class Pki:
    """A root CA (the trust anchor) and a signer it issued."""

    anchor_pem: bytes
    signer: Signer
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate


def make_ca(
    common: str = "synthscan test root",
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_signer(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate) -> Signer:
    """An ES256 document-signing leaf certificate issued by the CA, valid now."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("synthscan test signer"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Signer(_pem(cert) + _pem(ca_cert), pkcs8)


def make_pki() -> Pki:
    ca_key, ca_cert = make_ca()
    return Pki(_pem(ca_cert), make_signer(ca_key, ca_cert), ca_key, ca_cert)


def c2pa_sign(
    data: bytes,
    mime: str,
    signer: Signer,
    source_type: str | None = "trainedAlgorithmicMedia",
    generator: str = "TestDiffusion",
) -> bytes:
    """``data`` with a C2PA manifest (a ``c2pa.created`` action) signed by ``signer``."""
    import c2pa

    action: dict[str, str] = {"action": "c2pa.created"}
    if source_type:
        action["digitalSourceType"] = IPTC + source_type
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "test",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }
    ctx = c2pa.Context.from_dict(
        {"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}}
    )
    info = c2pa.C2paSignerInfo(b"es256", signer.chain, signer.key, None)
    out = io.BytesIO()
    with c2pa.Signer.from_info(info) as sign, c2pa.Builder(manifest, context=ctx) as builder:
        builder.sign(sign, mime, io.BytesIO(data), out)
    return out.getvalue()
