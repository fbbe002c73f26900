"""Header reading that survives what confluent-kafka returns for a header name it cannot decode.

Its C code leaves a NULL in the ``(name, value)`` tuple; reading that slot from Python is a
segmentation fault. These tests build such a list by hand (the C API, as the client does)."""

from __future__ import annotations

import ctypes

import pytest
from confluent_kafka import KafkaError, Message

from consumer.kafka.convert import consumed
from consumer.kafka.headers import HeaderError, read_headers
from consumer.kafka.types import BrokerCode, BrokerError, ConsumedRecord

_new_tuple = ctypes.pythonapi.PyTuple_New
_new_tuple.restype = ctypes.py_object
_new_tuple.argtypes = [ctypes.c_ssize_t]
_TUPLE_ITEMS_OFFSET = tuple.__basicsize__  # ob_item follows the variable-size header


def _pair_with_null_name(value: bytes) -> tuple[object, object]:
    """A 2-tuple whose name slot is NULL, as the client builds it after a failed decode."""
    pair = _new_tuple(2)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(value))  # the tuple owns one reference
    ctypes.c_void_p.from_address(
        id(pair) + _TUPLE_ITEMS_OFFSET + ctypes.sizeof(ctypes.c_void_p)
    ).value = id(value)
    return pair  # type: ignore[no-any-return]


class _Broken:
    """What ``msg.headers()`` returns when a collection cleared the client's pending error."""

    def __init__(self, headers: list[object]) -> None:
        self._headers = headers

    def headers(self) -> list[object]:
        return self._headers


class _Raising:
    def headers(self) -> list[object]:
        raise SystemError("returned a result with an exception set") from UnicodeDecodeError(
            "utf-8", b"\xff", 0, 1, "invalid start byte"
        )


def test_well_formed_headers_come_back_as_bytes() -> None:
    msg = Message(topic="t", partition=0, offset=3, headers=[("ce_type", b"x"), ("empty", None)])
    assert read_headers(msg) == (("ce_type", b"x"), ("empty", None))
    assert read_headers(Message(topic="t", partition=0, offset=4)) == ()


@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_null_name_slot_is_a_header_error_not_a_crash(position: int) -> None:
    pairs: list[object] = [("a", b"1"), ("b", b"2")]
    pairs.insert(position, _pair_with_null_name(b"x"))
    with pytest.raises(HeaderError, match="not UTF-8"):
        read_headers(_Broken(pairs))  # type: ignore[arg-type]


def test_the_clients_system_error_is_a_header_error_naming_the_cause() -> None:
    with pytest.raises(HeaderError, match="UnicodeDecodeError"):
        read_headers(_Raising())  # type: ignore[arg-type]


def test_a_consumed_message_becomes_our_record_or_our_error() -> None:
    """The boundary (:mod:`consumer.kafka.convert`): nothing of the client's leaves it."""
    msg = Message(topic="t", partition=1, offset=7, key=b"k", value=b"v", headers=[("h", b"1")])
    assert consumed(msg) == ConsumedRecord("t", 1, 7, b"k", b"v", (("h", b"1"),), None)
    eof = consumed(Message(topic="t", partition=1, offset=8, error=KafkaError(-191)))
    assert isinstance(eof, BrokerError)
    assert (eof.code, eof.partition, eof.offset, eof.fatal) == (
        BrokerCode.PARTITION_EOF,
        1,
        8,
        False,
    )
