"""README's examples run as written.

Every ```python block is executed in a temporary folder that holds the files it names
(generated images, the shipped demo checkpoints under the names the examples use). Every
command of the ```bash blocks is classified: ``python -m detector predict`` runs for real (cheap
and offline); every other ``python -m detector|consumer`` command is parsed by the real command
line parser (flags, choices, time formats) and ``consumer run``'s ``--set`` and ``export``
settings are loaded by :class:`ServiceSettings`; the rest needs a cluster, a registry, a GPU or
data sets and is listed in ``NOT_RUN`` with the reason. A command of any other kind fails the test.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from confluent_kafka import Producer
from PIL import Image

from consumer.__main__ import build_parser as consumer_parser
from consumer.settings import ServiceSettings
from detector.cli import build_parser as detector_parser
from detector.cli import main as detector_main
from schemas.cloudevents import parse_image_event
from tests.detector.imaging import random_array
from tests.provenance.provenance_support import make_pki

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CHECKPOINTS = ROOT / "detector" / "checkpoints"

NOT_RUN = {
    "make": "the set-up and demo targets: CI runs `make install`, `make test`, `make lint`",
    "docker": "needs a container engine (docs/deploy.md)",
    "helm": "needs a cluster (the chart is checked by tests/helm)",
}
# Real runs (cheap, offline): the detector's own predict command.
RUN = {("detector", "predict")}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def _commands(block: str) -> Iterator[list[str]]:
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            yield words


def _images(folder: Path, names: list[str]) -> None:
    for seed, name in enumerate(names):
        Image.fromarray(random_array(96, 128, seed=seed)).save(folder / name)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with what the examples name: images, ``detector/checkpoints``, a PEM."""
    monkeypatch.chdir(tmp_path)
    _images(tmp_path, ["a.jpg", "b.png", "photo.jpg", "upload.png"])
    (tmp_path / "detector").mkdir()
    (tmp_path / "detector" / "checkpoints").symlink_to(CHECKPOINTS)
    shutil.copy(CHECKPOINTS / "demo-glff-mobilenet_v2.safetensors", tmp_path / "glff.safetensors")
    (tmp_path / "c2pa-anchors.pem").write_bytes(make_pki().anchor_pem)
    return tmp_path


def test_the_readme_has_the_examples_this_test_runs() -> None:
    languages = set(re.findall(r"^```(\w*)$", README, flags=re.MULTILINE))
    assert languages <= {"", "python", "bash", "json"}  # "" = plain text (and closing fences)
    python = _blocks("python")
    assert len(python) == 2
    assert "encode_image_event" in python[0] and "Detector.from_checkpoint" in python[1]
    commands = [c for block in _blocks("bash") for c in _commands(block)]
    runs = [c for c in commands if tuple(c[1:4:2]) == ("-m", "predict")]
    assert len(runs) == 3  # two here, one in "Teach it a new generator" (needs the devset)


def test_detector_python_example(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = [b for b in _blocks("python") if "from detector import" in b]
    exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # one line per image: score, is_synthetic, patches
    assert all(len(line.split(" ", 2)) == 3 for line in lines)


@pytest.mark.timeout(120)
def test_event_python_example(kafka_bootstrap: str) -> None:
    """The block uses a ``producer`` it does not create: a real one, on the test broker."""
    (block,) = [b for b in _blocks("python") if "encode_image_event" in b]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    namespace: dict[str, object] = {"producer": producer}
    exec(compile(block, "README.md", "exec"), namespace)
    assert producer.flush(60) == 0  # delivered
    parsed = parse_image_event(namespace["value"], namespace["headers"])  # type: ignore[arg-type]
    assert parsed.event == namespace["event"] and parsed.url == "https://cdn.example.com/1.jpg"


def _check_consumer_command(argv: list[str], env: dict[str, str]) -> None:
    args = consumer_parser().parse_args(argv)
    if args.command == "run":
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            settings = ServiceSettings.load(args.set)
        assert settings.kafka.input_topics == [env["SYNTHSCAN_KAFKA__INPUT_TOPICS"]]


def test_every_shell_command(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()  # the predict command sets its own
    try:
        _run_shell_blocks(capsys)
    finally:
        torch.set_num_threads(threads)
    assert sorted(p.name for p in (workdir / "out").iterdir()) == [
        "photo.overlay.png",
        "upload.overlay.png",
    ]


def _run_shell_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    ran = 0
    for block in _blocks("bash"):
        env: dict[str, str] = {}
        for words in _commands(block):
            if words[0] == "export":
                key, _, value = words[1].partition("=")
                env[key] = value
            elif words[0] in NOT_RUN:
                continue
            elif words[:2] == ["python", "-m"] and words[2] == "consumer":
                _check_consumer_command(words[3:], env)
            elif words[:3] == ["python", "-m", "detector"] and (
                ("detector", words[3]) not in RUN or "../shared/data/devset" in " ".join(words)
            ):
                detector_parser().parse_args(words[3:])
            elif words[:3] == ["python", "-m", "detector"]:
                capsys.readouterr()
                assert detector_main(words[3:]) == 0, words
                outputs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
                assert outputs and all("score" in o for o in outputs), words
                ran += 1
            else:
                pytest.fail(f"README command of an unknown kind: {shlex.join(words)}")
    assert ran == 2
