"""Builders of real test files: a test PKI, C2PA-signed JPEG/PNG, generator PNGs, IPTC XMP."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

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


def photo(seed: int = 0, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A smooth random RGB picture (structured enough for PDQ, JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size[1] // 8 + 1, size[0] // 8 + 1, 3)) * 255
    img = Image.fromarray(coarse.astype(np.uint8)).resize(size, Image.BICUBIC)
    return img


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


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


def tamper(data: bytes) -> bytes:
    """Flip bits near the end of the image data (after the manifest): the hash breaks."""
    out = bytearray(data)
    at = int(len(out) * 0.9)
    out[at] ^= 0xFF
    out[at + 1] ^= 0x55
    return bytes(out)


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_with_chunks(image: Image.Image, chunks: list[bytes]) -> bytes:
    """A PNG with extra chunks inserted right after IHDR."""
    data = encode(image, "PNG")
    at = 8 + 8 + 13 + 4  # signature + IHDR
    return data[:at] + b"".join(chunks) + data[at:]


def text_chunk(key: str, value: str) -> bytes:
    return png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))


def itxt_chunk(key: str, value: str, compressed: bool = False) -> bytes:
    text = value.encode("utf-8")
    if compressed:
        text = zlib.compress(text)
    flag = b"\x01\x00" if compressed else b"\x00\x00"
    return png_chunk(b"iTXt", key.encode("latin-1") + b"\x00" + flag + b"\x00\x00" + text)


A1111 = (
    "a photo of an astronaut riding a horse\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
)
COMFY_PROMPT = json.dumps(
    {
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
    }
)
COMFY_WORKFLOW = json.dumps(
    {"nodes": [{"id": 3, "type": "KSampler"}, {"id": 4, "type": "CheckpointLoaderSimple"}]}
)


def xmp_packet(source_type: str = "trainedAlgorithmicMedia", tool: str = "TestPainter 2.0") -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}{source_type}" '
        f'xmp:CreatorTool="{tool}"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def jpeg_with_xmp(image: Image.Image, packet: str) -> bytes:
    """A JPEG whose APP1 XMP segment holds ``packet`` (Pillow writes it)."""
    return encode(image, "JPEG", quality=90, xmp=packet.encode("utf-8"))


def jpeg_with_software(image: Image.Image, software: str) -> bytes:
    exif = Image.Exif()
    exif[0x0131] = software
    return encode(image, "JPEG", quality=90, exif=exif)


# The PNG of python-threatexchange's PDQ test (facebook/ThreatExchange,
# python-threatexchange/threatexchange/tests/hashing/test_pdq_hasher.py) and its hash there.
HMA_RANDOM_IMAGE_PDQ = "ad64cd9875e131a177b1f2a0d6b38ae1de9ea80421e4c51dde1b0363deba3466"


def hma_random_image() -> bytes:
    from pathlib import Path

    return base64.b64decode((Path(__file__).parent / "hma_random_image.b64").read_text())
