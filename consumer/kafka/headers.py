"""Reading a consumed message's headers without trusting the client to fail cleanly.

Kafka allows any bytes in a header name; confluent-kafka decodes names strictly as UTF-8 and,
when one is not, its C code stores a NULL in the ``(name, value)`` tuple, leaves the
``UnicodeDecodeError`` pending and returns the list anyway (and caches it on the message).
Whether Python notices depends on the call site: a plain ``msg.headers()`` call is checked
until the interpreter specialises that call site (after a few executions), after which the
broken list is returned and iterating it dereferences NULL: a segmentation fault in the
service, reproducible after about ten well-formed messages. A call through
:func:`operator.methodcaller` always goes through CPython's checked call path, which turns
the pending error into ``SystemError``; the message's cached list is never touched again.

That check alone is not enough: a garbage collection that runs inside the client while the
error is pending (it allocates a tuple per later header) reports and clears the error, and the
broken list comes back as a success. So every pair is checked for a NULL slot (through the C
API, which is safe where Python-level access is not) before any of it is read.
"""

from __future__ import annotations

import ctypes
import operator
from typing import TYPE_CHECKING

from consumer.kafka.types import RecordHeaders

if TYPE_CHECKING:
    from confluent_kafka import Message

__all__ = ["HeaderError", "RecordHeaders", "read_headers"]


_checked_headers = operator.methodcaller("headers")
"""``msg.headers()`` through the checked C call path (never specialised by the interpreter)."""


_tuple_slot = ctypes.pythonapi.PyTuple_GetItem
_tuple_slot.restype = ctypes.c_void_p  # the raw pointer: NULL reads as None, nothing is touched
_tuple_slot.argtypes = [ctypes.py_object, ctypes.c_ssize_t]


def _intact(pairs: list[object]) -> bool:
    """Every element is a 2-tuple with both slots set (no NULL left by a failed decode)."""
    return all(
        type(pair) is tuple
        and len(pair) == 2
        and bool(_tuple_slot(pair, 0))
        and bool(_tuple_slot(pair, 1))
        for pair in pairs
    )


class HeaderError(ValueError):
    """The client library cannot decode this message's headers (e.g. a name not in UTF-8)."""


def read_headers(msg: Message) -> RecordHeaders:
    """The message's headers as ``(name, value)`` pairs; :class:`HeaderError` if undecodable.

    Call it once per message: after a failure the client keeps a broken list on the message.
    """
    try:
        raw = _checked_headers(msg)
    except SystemError as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        raise HeaderError(f"headers not decodable by the Kafka client: {cause!r}") from exc
    if not raw:
        return ()
    if isinstance(raw, dict):
        raw = list(raw.items())
    if not _intact(raw):
        raise HeaderError("headers not decodable by the Kafka client: a header name is not UTF-8")
    return tuple((str(name), _as_bytes(value)) for name, value in raw)


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value
