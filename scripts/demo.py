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
3. runs the service (``consumer.Service``) with the default checkpoint (``DEMO_CHECKPOINT``:
   another one) until every event has a verdict or a dead letter;
4. prints one line per verdict (the decision first) and a summary that counts decisions,
   writes ``demo-out/index.html`` (``scripts/demo_page.py``: each image under its decision,
   with its patch boxes drawn when the model gives patches) and ``demo-out/verdicts.jsonl``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from consumer.logs import configure_logging
from consumer.serving.service import Service
from consumer.settings import ServiceSettings
from consumer.tail_command import format_record
from devkafka.broker import KafkaBroker
from devkafka.secure import SecureKafkaBroker, service_acls
from schemas import DeadLetter, ImageData, ImageEvent, Verdict, decode_dead_letter, decode_verdict
from schemas.cloudevents import encode_image_event
from scripts.demo_page import disagreements, summary, write_html

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
CACHE_COUNTS = ("misses", "hits", "near_duplicate_hits")
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


def main() -> int:
    images = demo_images()
    began = time.monotonic()
    group = f"demo-{uuid.uuid4().hex[:8]}"
    with kafka(group) as (conf, connection), image_server(images[0].parent) as base_url:
        sent = publish(conf, images, base_url)
        other = os.environ.get("DEMO_CHECKPOINT")
        checkpoint = [f"model.checkpoint={other}"] if other else []
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
                *checkpoint,
            ]
        )
        configure_logging(settings.logging.level, "console")
        service = Service(settings)
        thread = service.start()
        print(f"[demo] service starting: checkpoint {settings.model.checkpoint.name}")
        verdicts, dead = collect(conf, expected=len(sent), timeout_s=300)
        service.stop()
        thread.join(timeout=settings.shutdown.grace_s + 5)
    page = write_html(verdicts, dead, sent, OUT)
    with (OUT / "verdicts.jsonl").open("w") as fh:  # the page's source, for checks
        fh.writelines(v.model_dump_json() + "\n" for v in verdicts)
    sample = service.metrics.registry.get_sample_value  # the verdict cache's counters
    cache = {k: int(sample(f"synthscan_verdict_cache_{k}_total") or 0) for k in CACHE_COUNTS}
    scored = (
        f"; images scored {cache['misses']}, exact copies reused {cache['hits']}, "
        f"near-duplicates of a synthetic label scored {cache['near_duplicate_hits']}"
    )
    print(
        f"[demo] {summary(len(sent), verdicts, len(dead))} in "
        f"{time.monotonic() - began:.1f}s{scored}; page: {page.relative_to(ROOT)}"
    )
    problems = disagreements(page.read_text(), verdicts, len(sent), len(dead))
    for problem in problems:
        print(f"[demo] the page disagrees with the verdicts: {problem}")
    return 0 if len(verdicts) + len(dead) == len(sent) and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
