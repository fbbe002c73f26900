"""The demo's page and summary line: the decision leads every verdict.

``write_html(verdicts, dead, images, out)`` writes one card per image: the decision as the
heading (what a moderator acts on), then the score, the label (the binary cut at the
threshold) and the band's edges; the picture with its patch boxes drawn (SVG ``rect``) and the
patch table when the model gives patches. A global-only model gives none: the page says
"global-only model: no patch evidence" once and draws no table. ``summary(...)`` counts
decisions. Each card carries ``data-event-id`` and ``data-decision`` so a test can check the
page against the verdict events.
"""

from __future__ import annotations

import html
from base64 import b64encode
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from schemas import DeadLetter, Verdict

DECISIONS = ("synthetic", "uncertain", "real")
NO_PATCHES = "global-only model: no patch evidence"
CSS = (
    "body{font-family:sans-serif;margin:2em}.card{border:1px solid #ccc;padding:1em;"
    "margin:1em 0}.synthetic h2{color:#b00}.real h2{color:#070}.uncertain h2{color:#a60}"
    ".pdq{font-family:monospace;font-size:small}.scores{color:#444}"
    "rect{fill:none;stroke-width:3}rect.w3{stroke:#f0f}rect.w2{stroke:#0ff}rect.w0{stroke:#ff0}"
    "text{fill:#ff0;paint-order:stroke;stroke:#000;stroke-width:3px}"
    "td,th{padding:0 .6em;text-align:right}"
)


def decision_of(verdict: Verdict) -> str:
    """The verdict's decision (its label from writers that predate decisions)."""
    return verdict.decision or verdict.label


def counts(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """Verdicts per decision, every decision named (zeros included)."""
    found = Counter(decision_of(v) for v in verdicts)
    return {d: found.get(d, 0) for d in DECISIONS}


def summary(events: int, verdicts: Sequence[Verdict], dead: int) -> str:
    """``16 events -> 14 verdicts (4 synthetic, 3 uncertain, 7 real) + 2 dead letters``."""
    parts = ", ".join(f"{n} {d}" for d, n in counts(verdicts).items())
    return f"{events} events -> {len(verdicts)} verdicts ({parts}) + {dead} dead letters"


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
    cached = ""
    if match is not None:
        of = f" of event {html.escape(match.event_id)}" if match.event_id else ""
        cached = f"; cache match: {match.kind}{of}, distance {match.distance}"
    return (
        f"<h3>Reasons</h3><ul>{reasons}</ul><h3>Provenance</h3>{table}"
        + (f"<p>Unreadable:</p><ul>{unreadable}</ul>" if unreadable else "")
        + f"<p class='pdq'>{pdq}{cached}</p>"
    )


def evidence_html(verdict: Verdict, src: str) -> str:
    """The picture with its patch boxes (SVG) and the patch table; no table without patches."""
    w, h = verdict.image.width, verdict.image.height
    font = max(12, max(w, h) // 28)  # label size in image pixels, readable at any scale
    boxes = "".join(
        f'<rect x="{p.box.x0}" y="{p.box.y0}" width="{p.box.x1 - p.box.x0}" '
        f'height="{p.box.y1 - p.box.y0}" class="w{p.window}"/>'
        f'<text x="{p.box.x0 + 4}" y="{p.box.y0 + font}" font-size="{font}">'
        f"#{p.rank} {p.attention:.2f}</text>"
        for p in verdict.patches
    )
    picture = (
        f'<svg viewBox="0 0 {w} {h}" width="{min(w, 480)}"><image href="{src}" width="{w}" '
        f'height="{h}"/>{boxes}</svg>'
    )
    if not verdict.patches:
        return picture
    rows = "".join(
        f"<tr><td>#{p.rank}</td><td>{p.window}x{p.window}</td><td>{p.box.as_tuple()}</td>"
        f"<td>{p.activation:.3f}</td><td>{p.attention:.3f}</td></tr>"
        for p in verdict.patches
    )
    return (
        f"{picture}<table class='patches'><tr><th>rank</th><th>window</th><th>box</th>"
        f"<th>activation</th><th>attention</th></tr>{rows}</table>"
        f"<p>global token attention {verdict.global_attention:.3f}</p>"
    )


def card_html(verdict: Verdict, path: Path) -> str:
    mime = "image/jpeg" if path.suffix.lower() in {".jpg", ".jpeg"} else "image/png"
    src = f"data:{mime};base64,{b64encode(path.read_bytes()).decode()}"
    decision = decision_of(verdict)
    band = next((r.detail for r in verdict.reasons if r.kind == "pixel_score"), "")
    band = band[band.find("(") + 1 : band.rfind(")")] if "(" in band else ""
    return (
        f'<div class="card {decision}" data-event-id="{html.escape(verdict.event_id)}" '
        f'data-decision="{decision}"><h2>{decision}: {html.escape(path.name)}</h2>'
        f"<p class='scores'>score {verdict.score:.3f}; label {verdict.label} (the binary cut "
        f"at threshold {verdict.threshold:.3f}){'; ' + html.escape(band) if band else ''}; "
        f"model {html.escape(verdict.model.name)} {html.escape(verdict.model.version)}</p>"
        f"{evidence_html(verdict, src)}{signals_html(verdict)}</div>"
    )


def write_html(
    verdicts: Sequence[Verdict],
    dead: Sequence[DeadLetter],
    images: Mapping[str, Path | None],
    out: Path,
) -> Path:
    """``out/index.html``: one card per image verdict (highest score first), then dead letters."""
    out.mkdir(parents=True, exist_ok=True)
    shown = [v for v in verdicts if images.get(v.event_id) is not None]
    cards = [card_html(v, images[v.event_id]) for v in sorted(shown, key=lambda v: -v.score)]  # type: ignore[arg-type]
    global_only = any(not v.model.patch_strategy or v.model.patch_strategy == "none" for v in shown)
    note = (
        f"<p class='note'><b>{NO_PATCHES}</b> (it scores the whole image; a GLFF checkpoint "
        "adds its patch boxes and table).</p>"
        if global_only
        else "<p>Boxes: magenta = 3x3 windows (224 px patches), cyan = 2x2 windows (112 px "
        "patches), numbered by fusion attention rank.</p>"
    )
    letters = "".join(f"<li><b>{d.code.value}</b>: {html.escape(d.message)}</li>" for d in dead)
    page = out / "index.html"
    page.write_text(
        f"<!doctype html><meta charset='utf-8'><title>synthscan demo</title><style>{CSS}</style>"
        f"<h1>synthscan demo, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</h1>"
        f"<p id='summary'>{html.escape(summary(len(images), verdicts, len(dead)))}</p>"
        "<p>Each heading is the decision a moderator acts on: synthetic / uncertain / real "
        "(docs/provenance.md); the label is the binary cut at the threshold. "
        "The demo checkpoint is a small research model "
        f"(see MODEL_CARD.md), not a production detector.</p>{note}"
        f"{''.join(cards)}<h2>Dead letters</h2><ul>{letters}</ul>"
    )
    return page


class _PageReader(HTMLParser):
    """The decisions of a page's cards, its summary line, its boxes and patch tables."""

    def __init__(self) -> None:
        super().__init__()
        self.decisions: dict[str, str] = {}
        self.headings: dict[str, str] = {}
        self.rects: dict[str, int] = {}
        self.tables: dict[str, int] = {}
        self.summary = ""
        self._card = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and a.get("data-event-id"):
            self._card = a["data-event-id"] or ""
            self.decisions[self._card] = a.get("data-decision") or ""
            self.rects[self._card] = self.tables[self._card] = 0
        elif tag == "rect" and self._card:
            self.rects[self._card] += 1
        elif tag == "table" and a.get("class") == "patches" and self._card:
            self.tables[self._card] += 1
        elif tag == "h2" and self._card and self._card not in self.headings:
            self._in = "heading"
        elif tag == "p" and a.get("id") == "summary":
            self._in = "summary"

    def handle_data(self, data: str) -> None:
        if self._in == "heading":
            self.headings[self._card] = data
        elif self._in == "summary":
            self.summary += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "p"):
            self._in = None


def read_page(page: str) -> _PageReader:
    """Parse a page written by :func:`write_html`."""
    reader = _PageReader()
    reader.feed(page)
    return reader


def disagreements(page: str, verdicts: Sequence[Verdict], events: int, dead: int) -> list[str]:
    """Where the page and the verdict events disagree (empty: they agree)."""
    read = read_page(page)
    problems = []
    shown = {v.event_id: v for v in verdicts if v.event_id in read.decisions}
    for event_id, decision in read.decisions.items():
        verdict = shown.get(event_id)
        if verdict is None:
            problems.append(f"card {event_id} has no verdict")
        elif decision != decision_of(verdict) or not read.headings[event_id].startswith(decision):
            problems.append(f"{event_id}: page says {decision}, verdict {decision_of(verdict)}")
        elif read.rects[event_id] != len(verdict.patches):
            problems.append(
                f"{event_id}: {read.rects[event_id]} boxes, {len(verdict.patches)} patches"
            )
    if read.summary != summary(events, verdicts, dead):
        problems.append(f"summary {read.summary!r} != {summary(events, verdicts, dead)!r}")
    return problems
