"""C2PA content credentials with ``c2pa-python``: offline, trust from a configured PEM bundle.

Remote manifests are never fetched and OCSP is off: a manifest that lives elsewhere is reported
as unreadable, not looked up. A manifest counts as *verified* only when the SDK's validation
state is ``Trusted``: the claim signature validated, the asset hashes match, and the signing
certificate chains to one of the configured trust anchors. ``Valid`` (a good signature by an
unknown signer) and ``Invalid`` (tampered, broken) are reported with their failure codes.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

from provenance.findings import Finding, Unreadable, clip
from schemas import sniff_image_mime

__all__ = ["C2paResult", "mime_of", "read_c2pa"]

C2PA_FORMATS = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/tiff", "image/gif", "image/avif", "image/heic"}
)
"""The sniffed formats C2PA embeds manifests in (:func:`schemas.sniff_image_mime` knows more)."""
_MAX_ACTIONS = 16
_contexts: dict[str, Any] = {}
_lock = threading.Lock()

C2paResult = tuple[list[Finding], list[Unreadable], str | None]


def mime_of(data: bytes) -> str | None:
    """MIME type from the magic bytes, for the formats C2PA embeds in; None otherwise."""
    mime = sniff_image_mime(data)
    return mime if mime in C2PA_FORMATS else None


def _context(anchors_pem: str | None) -> Any:
    import c2pa

    key = anchors_pem or ""
    with _lock:
        ctx = _contexts.get(key)
        if ctx is None:
            settings: dict[str, Any] = {
                "verify": {
                    "verify_after_reading": True,
                    "verify_trust": True,
                    "remote_manifest_fetch": False,
                    "ocsp_fetch": False,
                },
                "core": {"allowed_network_hosts": []},
            }
            if anchors_pem:
                settings["trust"] = {"trust_anchors": anchors_pem}
            ctx = c2pa.Context.from_dict(settings)
            _contexts[key] = ctx
        return ctx


def read_c2pa(data: bytes, anchors_pem: str | None) -> C2paResult:
    """Findings of the active C2PA manifest of ``data`` (none when there is no manifest)."""
    if b"c2pa" not in data:  # the JUMBF label of every manifest store: no label, no manifest
        return [], [], None
    mime = mime_of(data)
    if mime is None:
        return [], [Unreadable("c2pa", "container format not supported by C2PA")], None
    import c2pa

    try:
        with c2pa.Reader(mime, io.BytesIO(data), context=_context(anchors_pem)) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in text:
            if b"jumb" in data:  # a JUMBF box labelled c2pa is there, yet no manifest: broken
                return [], [Unreadable("c2pa", "manifest store present but unreadable")], None
            return [], [], None
        return [], [Unreadable("c2pa", clip(f"{type(exc).__name__.lstrip('_')}: {text}"))], None
    return _findings(store)


def _findings(store: dict[str, Any]) -> C2paResult:
    state = store.get("validation_state")
    state = state if isinstance(state, str) else None
    label = store.get("active_manifest")
    manifest = store.get("manifests", {}).get(label) if isinstance(label, str) else None
    if not isinstance(manifest, dict):
        return [], [Unreadable("c2pa", "manifest store without an active manifest")], state
    verified = state == "Trusted"
    results = store.get("validation_results", {}).get("activeManifest", {}) or {}
    failures = sorted({f.get("code", "?") for f in results.get("failure", []) or []})
    detail = f"validation_state={state}" + (f"; failures={','.join(failures)}" if failures else "")
    signer = manifest.get("signature_info") or {}
    issuer = signer.get("issuer") or signer.get("common_name")
    if issuer:
        detail += f"; signer={issuer}"
    findings = [Finding("c2pa", "c2pa_manifest", _generator(manifest), verified, clip(detail))]
    for action in _actions(manifest)[:_MAX_ACTIONS]:
        name = str(action.get("action", "?"))
        findings.append(Finding("c2pa", "c2pa_action", clip(name), verified))
        source_type = action.get("digitalSourceType")
        if isinstance(source_type, str) and source_type:
            short = source_type.rstrip("/").rsplit("/", 1)[-1]
            findings.append(
                Finding("c2pa", "c2pa_digital_source_type", clip(short), verified, clip(name))
            )
    return findings, [], state


def _generator(manifest: dict[str, Any]) -> str:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        first = info[0]
        return clip(f"{first.get('name', '?')} {first.get('version', '')}".strip())
    return clip(str(manifest.get("claim_generator") or "unknown"))


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions", []) or []:
        if not isinstance(assertion, dict):
            continue
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions = (assertion.get("data") or {}).get("actions") or []
            found += [a for a in actions if isinstance(a, dict)]
    return found
