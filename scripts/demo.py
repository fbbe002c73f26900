"""``make demo``: a local Kafka broker, sample image events, the detector service, verdicts.

1. starts a real single-node Kafka broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``); with
   ``DEMO_SECURE=1`` (``make demo-secure``) a secured one (:mod:`devkafka.secure`: SASL_SSL,
   SCRAM-SHA-512, a CA made at start, ACLs): the service then runs as user ``synthscan`` with
   only the ACLs it needs, and the demo's own clients as the super user;
2. publishes one image event per picture in ``DEMO_IMAGES`` (default: scikit-image's sample
   photos plus a few synthetic images the demo makes from them with ``synth-fakes``: the
   photos reconstructed by small autoencoders, trained here in seconds), mixing the event
   formats: binary mode with the raw image, binary mode by URL, structured mode with base64,
   structured mode by URL (served from a local HTTP server), plus two bad events to show
   the dead-letter path;
3. runs the service (``consumer.Service``) with the demo checkpoint until every event has a
   verdict or a dead letter;
4. prints one line per verdict and writes ``demo-out/index.html`` with each image, its verdict
   and its patch boxes drawn.
"""

from __future__ import annotations

import functools
import hashlib
import html
import os
import shutil
import sys
import threading
import time
import uuid
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from consumer.logs import configure_logging
from consumer.service import Service
from consumer.settings import ServiceSettings
from consumer.tail import format_record
from devkafka.broker import KafkaBroker
from devkafka.secure import SecureKafkaBroker, service_acls
from schemas import DeadLetter, ImageData, ImageEvent, Verdict, decode_dead_letter, decode_verdict
from schemas.cloudevents import encode_image_event

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo-out"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
SKIMAGE_SAMPLES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "camera.png",
    "logo.png",
)
TOPIC_IMAGES, TOPIC_VERDICTS, TOPIC_DLQ = "demo.images", "demo.verdicts", "demo.images.dlq"


SYNTHETIC_FROM = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png")


def synthetic_samples(photos: list[Path], folder: Path) -> list[Path]:
    """Synthetic images made here: ``synth-fakes`` on a few of the photos (seeded, cached).

    Small autoencoders with transposed-convolution and nearest-neighbour decoders are trained
    on the photos for a few seconds and each photo's reconstruction is written as
    ``synthetic-<name>.png``: an image no camera took, with a decoder's upsampling fingerprint.
    """
    from detector.training.synth_fakes import SynthConfig, synthesize

    sources = [p for p in photos if p.name in SYNTHETIC_FROM]
    done = folder / "synthetic" / "manifest.csv"
    if not done.exists():
        shutil.rmtree(folder / "synthetic", ignore_errors=True)
        staging = folder / "sources"
        staging.mkdir(parents=True, exist_ok=True)
        for p in sources:
            shutil.copyfile(p, staging / p.name)
        cfg = SynthConfig(kinds=("tconv", "nearest"), factors=(2, 4), steps=60, seed=0)
        print(f"[demo] making {len(sources)} synthetic images with synth-fakes ...")
        synthesize(staging, folder / "synthetic", cfg, progress=False)
    return sorted((folder / "synthetic").glob("*.png"))


def demo_images() -> list[Path]:
    """``DEMO_IMAGES`` (a folder) or scikit-image's sample photos plus synthetic images made
    from them, all copied into one folder (the demo's HTTP server serves one folder)."""
    folder = os.environ.get("DEMO_IMAGES")
    if folder:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            sys.exit(f"DEMO_IMAGES={folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return paths
    import skimage.data

    data_dir = Path(skimage.data.__file__).parent
    photos = [data_dir / name for name in SKIMAGE_SAMPLES if (data_dir / name).exists()]
    work = ROOT / ".run" / "demo-images"
    served = work / "served"
    served.mkdir(parents=True, exist_ok=True)
    images = []
    for p in photos + synthetic_samples(photos, work):
        name = p.name if p in photos else f"synthetic-{p.name}"
        shutil.copyfile(p, served / name)
        images.append(served / name)
    return images


@contextmanager
def kafka(group: str) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """The demo's client settings and the service's ``--set`` connection settings, for
    ``KAFKA_BOOTSTRAP_SERVERS`` or a broker started here (secured with ``DEMO_SECURE=1``)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield {"bootstrap.servers": external}, [f"kafka.bootstrap_servers={external}"]
        return
    data_dir = ROOT / ".run" / "demo-kafka"
    shutil.rmtree(data_dir, ignore_errors=True)
    secure = os.environ.get("DEMO_SECURE", "") not in ("", "0")
    broker = SecureKafkaBroker(data_dir) if secure else KafkaBroker(data_dir)
    broker.start()
    kind = "secured (SASL_SSL, SCRAM-SHA-512, ACLs) " if secure else ""
    print(
        f"[demo] {kind}Kafka broker up at {broker.bootstrap_servers} in {broker.started_in_s:.1f}s"
    )
    sets = [f"kafka.bootstrap_servers={broker.bootstrap_servers}"]
    if isinstance(broker, SecureKafkaBroker):
        password = broker.add_user("synthscan")
        outputs = [TOPIC_VERDICTS, TOPIC_DLQ]
        acls = service_acls(
            "synthscan", input_topics=[TOPIC_IMAGES], group=group, output_topics=outputs
        )
        broker.grant(acls)
        sets += [
            "kafka.security_protocol=SASL_SSL",
            "kafka.sasl_mechanism=SCRAM-SHA-512",
            "kafka.sasl_username=synthscan",
            f"kafka.sasl_password={password}",
            f"kafka.ssl_ca_location={broker.tls_files.ca}",
        ]
        print(
            f"[demo] service principal User:synthscan, CA {broker.tls_files.ca.relative_to(ROOT)}"
        )
    try:
        yield broker.admin_config(), sets
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        print("[demo] Kafka broker stopped")


@contextmanager
def image_server(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (the claim-check store of the demo)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def provenance_samples(first: Path) -> list[Path]:
    """Two made-up uploads that carry signals: a half-size JPEG q=70 re-upload of ``first``
    (a PDQ near-duplicate once ``first`` is cached) and a PNG tagged like Automatic1111
    output with an IPTC "trainedAlgorithmicMedia" XMP packet (unsigned: reasons only)."""
    folder = OUT / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(first) as image:
        rgb = image.convert("RGB")
    reupload = folder / f"{first.stem}-reupload.jpg"
    rgb.resize((rgb.width // 2, rgb.height // 2)).save(reupload, "JPEG", quality=70)
    info = PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, Seed: 1, Model: demo")
    info.add_itxt(
        "XML:com.adobe.xmp",
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt'
        '/2008-02-29/" Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/'
        'digitalsourcetype/trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>',
    )
    tagged = folder / "tagged-generator-output.png"
    rgb.resize((256, 256)).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tagged, pnginfo=info)
    return [reupload, tagged]


def publish(conf: dict[str, Any], images: list[Path], base_url: str) -> dict[str, Path | None]:
    """Publish one event per image in rotating formats, plus two bad events."""
    admin = AdminClient(conf)
    topics = [
        NewTopic(TOPIC_IMAGES, 3, 1),
        NewTopic(TOPIC_VERDICTS, 1, 1),
        NewTopic(TOPIC_DLQ, 1, 1),
    ]
    for future in admin.create_topics(topics).values():
        future.result(timeout=30)
    producer = Producer({**conf, "enable.idempotence": True})
    sent: dict[str, Path | None] = {}
    styles = ("binary/raw", "binary/url", "structured/base64", "structured/url")
    for i, path in enumerate(images):
        style = styles[i % len(styles)]
        raw = path.read_bytes()
        by_url = style.endswith("url")
        data = ImageData(
            content_id=path.name,
            url=f"{base_url}/{path.name}" if by_url else None,
            data=None if by_url else raw,
            sha256=hashlib.sha256(raw).hexdigest(),
            size_bytes=len(raw),
            platform="demo",
        )
        event = ImageEvent(id=str(uuid.uuid4()), source="synthscan/demo", data=data)
        mode, inline = style.split("/")
        value, headers = encode_image_event(
            event,
            mode="binary" if mode == "binary" else "structured",
            inline="raw" if inline == "raw" else "base64",
        )
        producer.produce(TOPIC_IMAGES, value=value, headers=headers, key=path.name.encode())
        sent[event.id] = path
        print(f"[demo] published {event.id}  {style:<18} {path.name} ({len(raw) // 1024} KiB)")
    for path in provenance_samples(images[0]):
        raw = path.read_bytes()
        data = ImageData(content_id=path.name, data=raw, platform="demo")
        event = ImageEvent(id=str(uuid.uuid4()), source="synthscan/demo", data=data)
        value, headers = encode_image_event(event, mode="binary", inline="raw")
        producer.produce(TOPIC_IMAGES, value=value, headers=headers, key=path.name.encode())
        sent[event.id] = path
        size = f"{len(raw) // 1024} KiB"
        print(f"[demo] published {event.id}  {'binary/raw':<18} {path.name} ({size})")
    bad = ImageEvent(
        id=str(uuid.uuid4()),
        source="synthscan/demo",
        data=ImageData(content_id="missing.png", url=f"{base_url}/missing.png"),
    )
    value, headers = encode_image_event(bad, mode="structured")
    producer.produce(TOPIC_IMAGES, value=value, headers=headers)
    sent[bad.id] = None
    producer.produce(
        TOPIC_IMAGES,
        value=b"{not json",
        headers=[("content-type", b"application/cloudevents+json")],
    )
    sent["(malformed)"] = None
    print("[demo] published 2 bad events: a URL that 404s, a value that is not JSON")
    producer.flush(30)
    return sent


def collect(
    conf: dict[str, Any], expected: int, timeout_s: float
) -> tuple[list[Verdict], list[DeadLetter]]:
    """Read verdicts and dead letters until ``expected`` records arrived (or time runs out)."""
    reader = Consumer(
        {
            **conf,
            "group.id": f"demo-reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    reader.subscribe([TOPIC_VERDICTS, TOPIC_DLQ])
    verdicts: list[Verdict] = []
    dead: list[DeadLetter] = []
    deadline = time.monotonic() + timeout_s
    while len(verdicts) + len(dead) < expected and time.monotonic() < deadline:
        msg = reader.poll(0.5)
        if msg is None or msg.error() is not None:
            if msg is not None and msg.error().code() != KafkaError._PARTITION_EOF:
                print(f"[demo] reader error: {msg.error()}")
            continue
        if msg.topic() == TOPIC_VERDICTS:
            verdict = decode_verdict(msg.value(), msg.headers())
            verdicts.append(verdict)
            print(f"[demo] verdict  {format_record(verdict)}")
        else:
            letter = decode_dead_letter(msg.value(), msg.headers())
            dead.append(letter)
            print(f"[demo] dead letter  {format_record(letter)}")
    reader.close()
    return verdicts, dead


def signals_html(verdict: Verdict) -> str:
    """The decision's reasons, the provenance findings, the PDQ hash and any cache match."""
    reasons = "".join(
        f"<li>{'<b>decisive</b> ' if r.decisive else ''}{html.escape(r.kind)}: "
        f"{html.escape(r.detail)}</li>"
        for r in verdict.reasons
    )
    prov = verdict.provenance
    findings = "".join(
        f"<tr><td>{html.escape(f.source)}</td><td>{html.escape(f.kind)}</td>"
        f"<td>{html.escape(f.value)}</td><td>{'yes' if f.verified else 'no'}</td></tr>"
        for f in (prov.findings if prov else [])
    )
    unreadable = "".join(
        f"<li>{html.escape(u.source)}: {html.escape(u.reason)}</li>"
        for u in (prov.unreadable if prov else [])
    )
    table = (
        "<table><tr><th>source</th><th>kind</th><th>value</th><th>verified</th></tr>"
        f"{findings}</table>"
        if findings
        else "<p>No provenance metadata found (its absence proves nothing).</p>"
    )
    pdq = f"PDQ {verdict.pdq.hash} (quality {verdict.pdq.quality})" if verdict.pdq else "no PDQ"
    match = verdict.cache_match
    cached = f"; cached: {match.kind}, distance {match.distance}" if match else ""
    return (
        f"<h3>Reasons</h3><ul>{reasons}</ul><h3>Provenance</h3>{table}"
        + (f"<p>Unreadable:</p><ul>{unreadable}</ul>" if unreadable else "")
        + f"<p class='pdq'>{pdq}{cached}</p>"
    )


def write_html(
    verdicts: list[Verdict], dead: list[DeadLetter], sent: dict[str, Path | None]
) -> Path:
    """One card per image: the picture with its 6 patch boxes drawn (SVG), verdict and scores."""
    OUT.mkdir(exist_ok=True)
    cards = []
    for verdict in sorted(verdicts, key=lambda v: -v.score):
        path = sent.get(verdict.event_id)
        if path is None:
            continue
        mime = "image/jpeg" if path.suffix.lower() in {".jpg", ".jpeg"} else "image/png"
        src = f"data:{mime};base64,{b64encode(path.read_bytes()).decode()}"
        w, h = verdict.image.width, verdict.image.height
        font = max(12, max(w, h) // 28)  # label size in image pixels, readable at any scale
        boxes = "".join(
            f'<rect x="{p.box.x0}" y="{p.box.y0}" width="{p.box.x1 - p.box.x0}" '
            f'height="{p.box.y1 - p.box.y0}" class="w{p.window}"/>'
            f'<text x="{p.box.x0 + 4}" y="{p.box.y0 + font}" font-size="{font}">'
            f"#{p.rank} {p.attention:.2f}</text>"
            for p in verdict.patches
        )
        rows = "".join(
            f"<tr><td>#{p.rank}</td><td>{p.window}x{p.window}</td><td>{p.box.as_tuple()}</td>"
            f"<td>{p.activation:.3f}</td><td>{p.attention:.3f}</td></tr>"
            for p in verdict.patches
        )
        decision = verdict.decision or verdict.label
        cards.append(
            f'<div class="card {decision}"><h2>{html.escape(path.name)}: {decision} '
            f"(label {verdict.label}, score {verdict.score:.3f}, threshold "
            f"{verdict.threshold:.3f})</h2>"
            f'<svg viewBox="0 0 {w} {h}" width="{min(w, 480)}"><image href="{src}" width="{w}" '
            f'height="{h}"/>{boxes}</svg><table><tr><th>rank</th><th>window</th><th>box</th>'
            f"<th>activation</th><th>attention</th></tr>{rows}</table>"
            f"<p>global token attention {verdict.global_attention:.3f}; model "
            f"{html.escape(verdict.model.name)} {html.escape(verdict.model.version)}</p>"
            f"{signals_html(verdict)}</div>"
        )
    letters = "".join(f"<li><b>{d.code.value}</b>: {html.escape(d.message)}</li>" for d in dead)
    page = OUT / "index.html"
    page.write_text(
        "<!doctype html><meta charset='utf-8'><title>synthscan demo</title><style>"
        "body{font-family:sans-serif;margin:2em}.card{border:1px solid #ccc;padding:1em;"
        "margin:1em 0}.synthetic h2{color:#b00}.real h2{color:#070}.uncertain h2{color:#a60}"
        ".pdq{font-family:monospace;font-size:small}"
        "rect{fill:none;stroke-width:3}rect.w3{stroke:#f0f}rect.w2{stroke:#0ff}rect.w0{stroke:#ff0}"
        "text{fill:#ff0;paint-order:stroke;stroke:#000;stroke-width:3px}"
        "td,th{padding:0 .6em;text-align:right}</style>"
        f"<h1>synthscan demo, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</h1>"
        "<p>Boxes: magenta = 3x3 windows (224 px patches), cyan = 2x2 windows (112 px patches), "
        "numbered by fusion attention rank. The demo checkpoint is a small research model "
        "(see MODEL_CARD.md), not a production detector. The heading is the decision "
        "(synthetic / uncertain / real, see README: Provenance and the decision).</p>"
        f"{''.join(cards)}<h2>Dead letters</h2><ul>{letters}</ul>"
    )
    return page


def main() -> int:
    images = demo_images()
    began = time.monotonic()
    group = f"demo-{uuid.uuid4().hex[:8]}"
    with kafka(group) as (conf, connection), image_server(images[0].parent) as base_url:
        sent = publish(conf, images, base_url)
        settings = ServiceSettings.load(
            [
                *connection,
                f"kafka.group_id={group}",
                f'kafka.input_topics=["{TOPIC_IMAGES}"]',
                f"kafka.verdict_topic={TOPIC_VERDICTS}",
                f"kafka.dead_letter_topic={TOPIC_DLQ}",
                'fetch.allow_cidrs=["127.0.0.1/32"]',
                "fetch.retries=0",
                "http.port=0",
                "logging.level=warning",
            ]
        )
        configure_logging(settings.logging.level, "console")
        service = Service(settings)
        thread = service.start()
        print(f"[demo] service starting: checkpoint {settings.model.checkpoint.name}")
        verdicts, dead = collect(conf, expected=len(sent), timeout_s=300)
        service.stop()
        thread.join(timeout=settings.shutdown.grace_s + 5)
    page = write_html(verdicts, dead, sent)
    synthetic = sum(v.label == "synthetic" for v in verdicts)
    print(
        f"[demo] {len(sent)} events -> {len(verdicts)} verdicts ({synthetic} synthetic, "
        f"{len(verdicts) - synthetic} real) + {len(dead)} dead letters in "
        f"{time.monotonic() - began:.1f}s; page: {page.relative_to(ROOT)}"
    )
    return 0 if len(verdicts) + len(dead) == len(sent) else 1


if __name__ == "__main__":
    sys.exit(main())
