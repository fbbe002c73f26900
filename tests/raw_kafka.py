"""Produce records the Python client refuses to build, through librdkafka's C API (ctypes).

confluent-kafka only accepts ``str`` header names; Kafka itself allows any bytes. A producer in
another language can write a header name that is not valid UTF-8, and then ``msg.headers()``
of the Python consumer raises. :func:`produce_raw` writes such a record with
``rd_kafka_produceva`` from the librdkafka the confluent-kafka wheel bundles.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

import confluent_kafka

__all__ = ["produce_raw"]

_VTYPE_TOPIC, _VTYPE_PARTITION, _VTYPE_VALUE, _VTYPE_KEY = 1, 3, 4, 5
_VTYPE_HEADER = 9
_PRODUCER = 0
_MSG_F_COPY = 0x2
_VTYPE_MSGFLAGS = 7


class _Mem(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class _Header(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("val", ctypes.c_void_p), ("size", ctypes.c_ssize_t)]


class _U(ctypes.Union):
    _fields_ = [
        ("cstr", ctypes.c_char_p),
        ("i", ctypes.c_int),
        ("i32", ctypes.c_int32),
        ("mem", _Mem),
        ("header", _Header),
        ("_pad", ctypes.c_char * 64),
    ]


class _Vu(ctypes.Structure):
    _fields_ = [("vtype", ctypes.c_int), ("u", _U)]


def _library() -> ctypes.CDLL:
    base = Path(confluent_kafka.__file__).resolve().parent
    found = sorted((base.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    if not found:
        found = sorted(base.glob("**/librdkafka*.so*"))
    if not found:
        raise RuntimeError(f"no bundled librdkafka next to {base}")
    lib = ctypes.CDLL(str(found[0]))
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_set.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_produceva.restype = ctypes.c_void_p
    lib.rd_kafka_produceva.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Vu), ctypes.c_size_t]
    lib.rd_kafka_error_string.restype = ctypes.c_char_p
    lib.rd_kafka_error_string.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_error_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_flush.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_outq_len.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
    return lib


def produce_raw(
    bootstrap: str,
    topic: str,
    value: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    key: bytes | None = None,
    partition: int = 0,
) -> None:
    """Produce one record whose header *names* are arbitrary bytes; wait until delivered."""
    lib = _library()
    err = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    for name, val in ((b"bootstrap.servers", bootstrap.encode()), (b"linger.ms", b"0")):
        if lib.rd_kafka_conf_set(conf, name, val, err, len(err)) != 0:
            raise RuntimeError(err.value.decode())
    rk = lib.rd_kafka_new(_PRODUCER, conf, err, len(err))
    if not rk:
        raise RuntimeError(err.value.decode())
    keep: list[object] = []  # buffers must outlive the call
    vus: list[_Vu] = []

    def add(vtype: int, **fields: object) -> _Vu:
        vu = _Vu()
        vu.vtype = vtype
        for name, val in fields.items():
            setattr(vu.u, name, val)
        vus.append(vu)
        return vu

    def mem(data: bytes) -> _Mem:
        buf = ctypes.create_string_buffer(data, len(data))
        keep.append(buf)
        return _Mem(ctypes.cast(buf, ctypes.c_void_p), len(data))

    try:
        add(_VTYPE_TOPIC, cstr=topic.encode())
        add(_VTYPE_PARTITION, i32=partition)
        add(_VTYPE_MSGFLAGS, i=_MSG_F_COPY)
        add(_VTYPE_VALUE, mem=mem(value))
        if key is not None:
            add(_VTYPE_KEY, mem=mem(key))
        for name, val in headers:
            cname = ctypes.create_string_buffer(name)
            cval = mem(val)
            keep.append(cname)
            add(
                _VTYPE_HEADER,
                header=_Header(ctypes.cast(cname, ctypes.c_char_p), cval.ptr, len(val)),
            )
        array = (_Vu * len(vus))(*vus)
        error = lib.rd_kafka_produceva(rk, array, len(vus))
        if error:
            text = lib.rd_kafka_error_string(error).decode()
            lib.rd_kafka_error_destroy(error)
            raise RuntimeError(f"rd_kafka_produceva: {text}")
        lib.rd_kafka_flush(rk, 30_000)
        if lib.rd_kafka_outq_len(rk) != 0:
            raise RuntimeError("record not delivered within 30 s")
    finally:
        lib.rd_kafka_destroy(rk)
