"""ImageFetcher against a real local HTTP(S) server: limits, redirects, retries, checksums."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from fetch_server import CERTS, LocalServer, respond, serving

from consumer.errors import error_code
from consumer.fetch.claim_check import (
    ChecksumMismatchError,
    FetchError,
    FetchFailedError,
    FetchForbiddenError,
    FetchTimeoutError,
    FetchTooLargeError,
    ImageFetcher,
)
from consumer.settings import FetchSettings
from schemas import ErrorCode

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
IMAGE_SHA = hashlib.sha256(IMAGE).hexdigest()


def _image(h: BaseHTTPRequestHandler) -> None:
    respond(h, 200, IMAGE, {"Content-Type": "image/png"})


def _fetch_error(fetcher: ImageFetcher, url: str, **kw: object) -> FetchError:
    with pytest.raises(FetchError) as err:
        fetcher.fetch_image(url, **kw)  # type: ignore[arg-type]
    return err.value


def test_success(server: LocalServer, settings: FetchSettings) -> None:
    server.route("/img.png")(_image)
    fetcher = ImageFetcher(settings)
    got = fetcher.fetch_image(server.url("/img.png"), IMAGE_SHA.upper(), len(IMAGE))
    assert (got.data, got.content_type, got.status, got.attempts) == (IMAGE, "image/png", 200, 1)
    assert got.sha256 == IMAGE_SHA and got.final_url == server.url("/img.png")
    assert 0 < got.elapsed_ms < 2000
    assert fetcher.fetch(server.url("/img.png")) == IMAGE  # the bytes-only form


def test_too_large_declared_and_streamed(server: LocalServer, settings: FetchSettings) -> None:
    @server.route("/declared")
    def declared(h: BaseHTTPRequestHandler) -> None:
        respond(h, 200, b"x" * (settings.max_bytes + 1))

    @server.route("/chunked")
    def chunked(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        piece = b"y" * 8192
        try:
            for _ in range(64):  # 512 KiB, far past the 64 KiB limit
                h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up, as it should

    fetcher = ImageFetcher(settings)
    for path in ("/declared", "/chunked"):
        err = _fetch_error(fetcher, server.url(path))
        assert isinstance(err, FetchTooLargeError) and error_code(err) is ErrorCode.FETCH_TOO_LARGE
        assert err.attempts == 1
    assert server.hits["/declared"] == 1 and server.hits["/chunked"] == 1
    # An event that declares more than the limit is refused without a request.
    err = _fetch_error(fetcher, server.url("/img"), expected_size=settings.max_bytes + 1)
    assert isinstance(err, FetchTooLargeError) and server.hits["/img"] == 0


def test_slow_server_times_out(server: LocalServer, settings: FetchSettings) -> None:
    @server.route("/stall")
    def stall(h: BaseHTTPRequestHandler) -> None:
        time.sleep(1.5)
        _image(h)

    @server.route("/trickle")
    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        try:
            for _ in range(100):  # each byte arrives well within a per-read timeout
                h.wfile.write(b"z")
                h.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    fetcher = ImageFetcher(settings.model_copy(update={"timeout_s": 0.4}))
    for path in ("/stall", "/trickle"):
        began = time.monotonic()
        err = _fetch_error(fetcher, server.url(path))
        assert isinstance(err, FetchTimeoutError) and error_code(err) is ErrorCode.FETCH_TIMEOUT
        assert err.attempts == 1  # timeouts are not retried
        assert time.monotonic() - began < 1.0  # the wall-clock budget holds, even for a trickle


def test_redirects_are_followed_up_to_the_limit(
    server: LocalServer, settings: FetchSettings
) -> None:
    server.route("/img")(_image)
    for n in range(1, 6):

        def hop(h: BaseHTTPRequestHandler, n: int = n) -> None:
            target = "/img" if n == 1 else f"/r{n - 1}"
            respond(h, 302 if n % 2 else 307, headers={"Location": target})

        server.route(f"/r{n}")(hop)
    fetcher = ImageFetcher(settings)
    got = fetcher.fetch_image(server.url("/r3"))
    assert got.data == IMAGE and got.final_url == server.url("/img")
    err = _fetch_error(fetcher, server.url("/r4"))
    assert isinstance(err, FetchFailedError) and "redirects" in str(err)
    assert err.attempts == 1


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2:{port}/img",  # loopback, but not the allow-listed address
        "http://[::1]:{port}/img",
        "http://10.0.0.7/img",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1:{port}/img",
    ],
)
def test_redirect_to_a_forbidden_target(
    server: LocalServer, settings: FetchSettings, location: str
) -> None:
    server.route("/img")(_image)

    @server.route("/evil")
    def evil(h: BaseHTTPRequestHandler) -> None:
        respond(h, 301, headers={"Location": location.format(port=server.port)})

    err = _fetch_error(ImageFetcher(settings), server.url("/evil"))
    assert isinstance(err, FetchForbiddenError) and error_code(err) is ErrorCode.FETCH_FORBIDDEN
    assert server.hits["/img"] == 0 and err.attempts == 1


def test_transient_errors_are_retried(server: LocalServer, settings: FetchSettings) -> None:
    @server.route("/flaky")
    def flaky(h: BaseHTTPRequestHandler) -> None:
        if server.hits["/flaky"] == 1:
            respond(h, 500, b"oops")
        else:
            _image(h)

    @server.route("/busy")
    def busy(h: BaseHTTPRequestHandler) -> None:
        if server.hits["/busy"] == 1:
            respond(h, 429, headers={"Retry-After": "30"})
        else:
            _image(h)

    sleeps: list[float] = []
    fetcher = ImageFetcher(settings, sleep=sleeps.append)
    got = fetcher.fetch_image(server.url("/flaky"))
    assert (got.data, got.attempts, server.hits["/flaky"]) == (IMAGE, 2, 2)
    assert fetcher.fetch_image(server.url("/busy")).attempts == 2
    assert len(sleeps) == 2 and all(0 <= s <= settings.backoff_max_s for s in sleeps)
    assert sleeps[1] == settings.backoff_max_s  # Retry-After honoured, capped


def test_persistent_5xx_gives_up_after_the_attempt_budget(
    server: LocalServer, settings: FetchSettings
) -> None:
    server.route("/down")(lambda h: respond(h, 503))
    err = _fetch_error(ImageFetcher(settings, sleep=lambda _: None), server.url("/down"))
    assert isinstance(err, FetchFailedError) and "503" in str(err)
    assert err.attempts == settings.retries + 1 == server.hits["/down"]


def test_client_errors_are_not_retried(server: LocalServer, settings: FetchSettings) -> None:
    err = _fetch_error(ImageFetcher(settings), server.url("/missing"))
    assert isinstance(err, FetchFailedError) and "404" in str(err)
    assert err.attempts == 1 and server.hits["/missing"] == 1


def test_connection_refused_is_retried(settings: FetchSettings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    err = _fetch_error(ImageFetcher(settings, sleep=lambda _: None), f"http://127.0.0.1:{port}/x")
    assert isinstance(err, FetchFailedError) and err.retryable
    assert err.attempts == settings.retries + 1


def test_checksum_and_size_mismatch(server: LocalServer, settings: FetchSettings) -> None:
    server.route("/img")(_image)

    @server.route("/nolength")
    def nolength(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(IMAGE)
        h.close_connection = True

    fetcher = ImageFetcher(settings)
    cases: list[tuple[str, dict[str, object]]] = [
        ("/img", {"expected_sha256": "0" * 64}),
        ("/img", {"expected_size": len(IMAGE) + 1}),  # Content-Length disagrees
        ("/nolength", {"expected_size": len(IMAGE) - 1}),  # streamed past the declared size
        ("/nolength", {"expected_size": len(IMAGE) + 1}),  # ended short of it
    ]
    for path, kw in cases:
        err = _fetch_error(fetcher, server.url(path), **kw)
        assert isinstance(err, ChecksumMismatchError), (path, kw, err)
        assert error_code(err) is ErrorCode.CHECKSUM_MISMATCH and err.attempts == 1
    assert fetcher.fetch_image(server.url("/nolength"), IMAGE_SHA, len(IMAGE)).data == IMAGE


def test_policy_refusals_before_any_request(server: LocalServer, settings: FetchSettings) -> None:
    server.route("/img")(_image)
    closed = ImageFetcher(settings.model_copy(update={"allow_cidrs": []}))
    fetcher = ImageFetcher(settings)
    for f, url in [
        (closed, server.url("/img")),  # loopback without the allow-list
        (fetcher, f"ftp://127.0.0.1:{server.port}/img"),
        (fetcher, f"http://me:secret@127.0.0.1:{server.port}/img"),
    ]:
        err = _fetch_error(f, url)
        assert isinstance(err, FetchForbiddenError), url
    assert server.hits["/img"] == 0


def test_connects_to_the_vetted_address(server: LocalServer, settings: FetchSettings) -> None:
    """A name resolves once per hop; the connection goes to that address, Host keeps the name."""
    server.route("/img")(_image)
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return {"cdn.example": ["127.0.0.1"], "evil.example": ["93.184.216.34", "10.1.2.3"]}[host]

    fetcher = ImageFetcher(settings, resolver=resolver)
    assert fetcher.fetch(f"http://cdn.example:{server.port}/img") == IMAGE
    assert calls == ["cdn.example"] and server.hosts[-1] == f"cdn.example:{server.port}"
    err = _fetch_error(fetcher, "http://evil.example/img")  # one private address is enough
    assert isinstance(err, FetchForbiddenError) and "10.1.2.3" in str(err)
    named = ImageFetcher(
        settings.model_copy(update={"allow_cidrs": [], "allow_hosts": ["CDN.example"]}),
        resolver=resolver,
    )
    assert named.fetch(f"http://cdn.example:{server.port}/img") == IMAGE  # host allow-list


def test_a_slow_dns_lookup_times_out_and_is_retried(settings: FetchSettings) -> None:
    """getaddrinfo has no timeout of its own: the fetch bounds it by its connect budget."""
    release = threading.Event()
    calls: list[str] = []

    def stuck_resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        release.wait(10)
        return ["127.0.0.1"]

    fast = settings.model_copy(update={"connect_timeout_s": 0.2, "retries": 1})
    started = time.monotonic()
    err = _fetch_error(ImageFetcher(fast, resolver=stuck_resolver), "http://slow-dns.example/x")
    release.set()
    assert isinstance(err, FetchTimeoutError) and "resolving slow-dns.example" in str(err)
    assert error_code(err) is ErrorCode.FETCH_TIMEOUT and err.attempts == 2 and len(calls) == 2
    assert time.monotonic() - started < 2.0


def test_object_refs(server: LocalServer, settings: FetchSettings) -> None:
    server.route("/bucket/uploads/a b.png")(_image)
    with pytest.raises(FetchForbiddenError):
        ImageFetcher(settings).resolve_ref("uploads/a.png")
    fetcher = ImageFetcher(settings.model_copy(update={"object_base_url": server.url("/bucket")}))
    url = fetcher.resolve_ref("uploads/a b.png")
    assert url == server.url("/bucket/uploads/a%20b.png")
    assert fetcher.fetch(url) == IMAGE


def test_https_with_a_pinned_address(settings: FetchSettings) -> None:
    with serving(tls=True) as tls_server:
        tls_server.route("/img")(_image)
        url = f"https://localhost:{tls_server.port}/img"
        resolver = lambda host, port: ["127.0.0.1"]  # noqa: E731
        trusted = settings.model_copy(update={"ca_file": str(CERTS / "localhost.pem")})
        got = ImageFetcher(trusted, resolver=resolver).fetch_image(url)
        assert got.data == IMAGE and tls_server.hosts[-1] == f"localhost:{tls_server.port}"
        err = _fetch_error(ImageFetcher(settings, resolver=resolver), url)  # unknown CA
        assert isinstance(err, FetchFailedError) and "TLS" in str(err) and err.attempts == 1


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (FetchFailedError, "fetch_failed"),
        (FetchForbiddenError, "fetch_forbidden"),
        (FetchTimeoutError, "fetch_timeout"),
        (FetchTooLargeError, "fetch_too_large"),
        (ChecksumMismatchError, "checksum_mismatch"),
    ],
)
def test_error_codes(cls: type[FetchError], code: str) -> None:
    assert error_code(cls("x")) == ErrorCode(code)
