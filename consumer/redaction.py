"""Settings text that never shows a secret: masked URLs and validation errors without values."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

__all__ = ["MASK", "describe_error", "mask_url"]

MASK = "**********"


def mask_url(text: str) -> str:
    """``https://user:pw@host/x`` -> ``https://**********@host/x``; other text unchanged."""
    if "@" not in text or "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return MASK  # unparseable but URL-like and holding an '@': hide it all
    if "@" not in parts.netloc:
        return text
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))


def describe_error(exc: Exception) -> str:
    """A settings error as text that never repeats the offending values (they may be secrets,
    e.g. a misspelt ``SYNTHSCAN_KAFKA__SASL_PASWORD``): locations and messages only."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = [f"{exc.error_count()} invalid setting(s)"]
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)
