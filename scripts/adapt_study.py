"""Few-shot adaptation study (Cappelletti et al., ICPR 2024, on the devset), one command.

Stages (each resumes from its files in ``--out``):

1. ``features``: prefix features (MobileNetV2 trunk modules 0-17, ImageNet weights, frozen) of
   every devset image, global view + the 6 patches the PSM picks on the ImageNet feature map;
2. ``base``: a base GLFF trained WITHOUT the held-out families (train split, early stopping on
   the val split); its trunk is ImageNet's and frozen, the embedding, fusion and head train on
   the cached features; saved as a normal checkpoint;
3. ``adapt``: for every held-out family, N in ``--shots`` (where the family has at least N + 8
   images), seed and method: N fakes of the family + N real photos -> adapter, scored on the
   family's other images vs the val-split real photos, and on every other family (forgetting);
   one JSON line per run in ``runs.jsonl``;
4. ``table``: ``table.md`` (mean +- std over seeds) from ``runs.jsonl``.

    PYTHONPATH=$PWD nice -n 10 python scripts/adapt_study.py --out runs/adapt-study
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.adapters.tail import Tail, default_split
from detector.adapters.train import AdaptConfig, FeatureSet, extract_features, precompute, score
from detector.checkpoint import CheckpointMetadata, load_checkpoint, save_checkpoint
from detector.model import GLFF, ModelConfig, build_model
from detector.training.metrics import average_precision

DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devset"
HELD_OUT = {
    "text-to-image (unnamed, modern)": ["text-to-image (unnamed, modern)"],
    "super-resolution (ESRGAN+BSRGAN)": ["super-resolution (ESRGAN)", "super-resolution (BSRGAN)"],
    "stable-diffusion-xl": ["stable-diffusion-xl"],
}
# families left out of the study altogether (CPU budget): neither base training nor evaluation
LEFT_OUT = {"stable-diffusion-1.5"}
# real photos used as shots: the source that pairs with the family where there is one
REAL_SOURCES = {
    "text-to-image (unnamed, modern)": {"real-or-ai-game"},
    "super-resolution (ESRGAN+BSRGAN)": {
        "BSD100 (Berkeley segmentation)",
        "Sun-Hays80",
        "Kodak24",
        "Urban100",
        "Set14",
    },
}
METHODS: list[tuple[str, int]] = [("head", 0), ("lora", 4), ("lora", 8), ("lora", 16), ("full", 0)]
MIN_EVAL_FAKES = 8
REALS_VAL, REALS_TRAIN, SEEN_TRAIN, SEEN_VAL, MAX_NEW = 40, 10, 40, 16, 40
REAL_QUOTA = {"text-to-image (unnamed, modern)": 20, "super-resolution (ESRGAN+BSRGAN)": 20}


def family_of(row: dict[str, str]) -> str:
    for name, members in HELD_OUT.items():
        if row["family"] in members:
            return name
    return row["family"]


def load_rows(devset: Path) -> list[dict[str, str]]:
    with open(devset / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def select_images(rows: list[dict[str, str]], seed: int = 0) -> list[dict[str, str]]:
    """The study's images, in extraction order (a subset sized for a 2-core machine).

    Real photos: ``REALS_VAL`` of the val split (evaluation and base validation) and
    ``REALS_TRAIN`` of the train split (base training and the real shots); seen families:
    ``SEEN_TRAIN`` train and ``SEEN_VAL`` val fakes; each held-out family: at most
    ``MAX_NEW`` images (both splits).
    """
    rng = np.random.default_rng(seed)

    def pick(cands: list[dict[str, str]], n: int) -> list[dict[str, str]]:
        cands = sorted(cands, key=lambda r: r["path"])
        if len(cands) <= n:
            return cands
        return [cands[i] for i in sorted(rng.choice(len(cands), n, replace=False))]

    photos = [r for r in rows if r["family"] == "photo"]
    seen = [
        r
        for r in rows
        if r["family"] != "photo" and family_of(r) not in HELD_OUT and r["family"] not in LEFT_OUT
    ]
    chosen = pick([r for r in photos if r["split"] == "val"], REALS_VAL)
    train_reals = [r for r in photos if r["split"] == "train"]
    for fam, n in REAL_QUOTA.items():
        sources = REAL_SOURCES.get(fam, set())
        chosen += pick([r for r in train_reals if r["source"] in sources], n)
    taken = {r["path"] for r in chosen}
    chosen += pick([r for r in train_reals if r["path"] not in taken], REALS_TRAIN)
    chosen += pick([r for r in seen if r["split"] == "train"], SEEN_TRAIN)
    chosen += pick([r for r in seen if r["split"] == "val"], SEEN_VAL)
    for fam in HELD_OUT:
        chosen += pick([r for r in rows if family_of(r) == fam], MAX_NEW)
    return chosen


def stage_features(out: Path, devset: Path, progress: bool) -> None:
    """Extract prefix features chunk by chunk (resumable: ``features.pt`` grows)."""
    target = out / "features.pt"
    rows = select_images(load_rows(devset))
    done: dict[str, Any] = {"feats": [], "paths": [], "failed": []}
    if target.exists():
        done = torch.load(target, weights_only=True)
        if not isinstance(done["feats"], list):
            return
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="mobilenet_v2"), "imagenet")
    assert isinstance(model, GLFF)
    if not (out / "init-state.pt").exists():
        torch.save(model.state_dict(), out / "init-state.pt")
    todo = [r for r in rows if r["path"] not in set(done["paths"]) | set(done["failed"])]
    began = time.time()
    for start in range(0, len(todo), 16):
        chunk = todo[start : start + 16]
        feats, kept = extract_features(
            model, default_split(model), [devset / r["path"] for r in chunk], progress=progress
        )
        done["feats"] += list(feats.feats.unbind(0))
        done["paths"] += [chunk[i]["path"] for i in kept]
        done["failed"] += [r["path"] for i, r in enumerate(chunk) if i not in kept]
        torch.save(done, target)
        print(f"features {len(done['paths'])}/{len(rows)} ({time.time() - began:.0f}s)", flush=True)
    done["feats"] = torch.stack(done["feats"])
    torch.save(done, target)


class Study:
    """Loaded features, manifest rows and index helpers."""

    def __init__(self, out: Path, devset: Path) -> None:
        blob = torch.load(out / "features.pt", weights_only=True)
        by_path = {r["path"]: r for r in select_images(load_rows(devset))}
        if isinstance(blob["feats"], list):
            raise SystemExit("features are incomplete: run the features stage to the end")
        keep = [i for i, p in enumerate(blob["paths"]) if p in by_path]
        self.feats: torch.Tensor = blob["feats"][keep]
        self.rows = [by_path[blob["paths"][i]] for i in keep]
        self.family = [family_of(r) for r in self.rows]
        self.label = torch.tensor([int(r["label"]) for r in self.rows])

    def where(self, **conds: Any) -> list[int]:
        out = []
        for i, r in enumerate(self.rows):
            if "family" in conds and self.family[i] != conds["family"]:
                continue
            if "split" in conds and r["split"] != conds["split"]:
                continue
            if "label" in conds and int(r["label"]) != conds["label"]:
                continue
            if "sources" in conds and conds["sources"] and r["source"] not in conds["sources"]:
                continue
            out.append(i)
        return out

    def seen_families(self) -> list[str]:
        return sorted({f for f in self.family if f != "photo" and f not in HELD_OUT})


def ap_acc(
    logits: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5
) -> tuple[float, float]:
    """AP and balanced accuracy at ``threshold`` (probabilities)."""
    scores = torch.sigmoid(logits).numpy()
    y = labels.numpy()
    ap = float(average_precision(y, scores))
    pred = scores >= threshold
    acc = 0.5 * (float((pred[y == 1]).mean()) + float((~pred[y == 0]).mean()))
    return ap, acc


def load_pre(out: Path, study: Study, tail: Tail) -> torch.Tensor:
    """``W0 x`` of the last trunk conv for every image (cached in ``pre.pt``; that conv is
    ImageNet's and frozen in the base, so one cache serves base training and adaptation)."""
    path = out / "pre.pt"
    if path.exists():
        blob = torch.load(path, weights_only=True)
        if blob["paths"] == [r["path"] for r in study.rows]:
            return blob["pre"]  # type: ignore[no-any-return]
    began = time.time()
    pre = precompute(tail, study.feats)
    assert pre is not None
    torch.save({"pre": pre, "paths": [r["path"] for r in study.rows]}, path)
    print(f"W0 x of {len(study.rows)} images in {time.time() - began:.0f}s", flush=True)
    return pre


def stage_base(out: Path, study: Study, progress: bool) -> None:
    """Train the base's embedding, fusion and head on cached features (trunk frozen)."""
    target = out / "base.safetensors"
    if target.exists():
        return
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="mobilenet_v2"))
    assert isinstance(model, GLFF)
    model.load_state_dict(torch.load(out / "init-state.pt", weights_only=True))
    model.eval()
    split = default_split(model)
    tail = Tail.of(model, split, copy_weights=False)
    train_idx = [i for i in study.where(split="train") if study.family[i] not in HELD_OUT]
    val_idx = [i for i in study.where(split="val") if study.family[i] not in HELD_OUT]
    pre = load_pre(out, study, tail)
    _, bn, act = list(tail.trunk[0].children())
    with torch.no_grad():  # the trunk is frozen: pool its last map once
        pooled = torch.stack([act(bn(p.float())).mean(dim=(2, 3)) for p in pre])

    def logits(idx: list[int] | torch.Tensor) -> torch.Tensor:
        tokens = torch.relu(tail.embed(pooled[idx]))
        return tail.head(tail.fusion(tokens)[0]).squeeze(1)

    params = [*tail.embed.parameters(), *tail.fusion.parameters(), *tail.head.parameters()]
    optimizer = torch.optim.Adam(params, lr=5e-4)
    generator = torch.Generator().manual_seed(0)
    y = study.label.float()
    best, best_state, stale, history = -1.0, None, 0, []
    for epoch in range(40):
        tail.train()
        order = torch.tensor(train_idx)[torch.randperm(len(train_idx), generator=generator)]
        for batch in order.split(32):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(batch), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        tail.eval()
        with torch.no_grad():
            ap, acc = ap_acc(logits(val_idx), study.label[val_idx])
        history.append({"epoch": epoch, "val_ap": round(ap, 4), "val_acc": round(acc, 4)})
        if progress:
            print(history[-1], flush=True)
        if ap > best + 1e-3:
            best, stale = ap, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= 8:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    meta = CheckpointMetadata(
        name="study-base-mobilenet_v2",
        version="0.1.0",
        threshold=0.5,
        training_data={
            "source": "devset manifest, split train",
            "excluded_families": sorted(m for ms in HELD_OUT.values() for m in ms),
            "images": len(train_idx),
        },
        training={
            "frozen": "ImageNet MobileNetV2 trunk (all 19 modules)",
            "trained": "embedding, fusion, head on cached features (no augmentation)",
            "optimizer": "Adam lr 5e-4 batch 32",
            "best_val_ap": best,
            "history": history,
        },
    )
    sha = save_checkpoint(target, model, meta)
    print(f"base: val AP {best:.4f} after {len(history)} epochs, sha256 {sha}")


def run_key(family: str, shots: int, seed: int, method: str, rank: int) -> str:
    return f"{family}|{shots}|{seed}|{method}|{rank}"


def stage_adapt(out: Path, study: Study, args: argparse.Namespace) -> None:
    from detector.adapters.train import train

    model, _ = load_checkpoint(out / "base.safetensors")
    assert isinstance(model, GLFF)
    split = default_split(model)
    base_tail = Tail.of(model, split, copy_weights=True)
    data = FeatureSet(study.feats, load_pre(out, study, base_tail))
    base_logits = score(base_tail, data)
    done_path = out / "runs.jsonl"
    done = set()
    if done_path.exists():
        done = {json.loads(line)["key"] for line in done_path.read_text().splitlines() if line}
    val_reals = study.where(split="val", label=0)
    seen = study.seen_families()
    groups: dict[str, list[int]] = {
        "seen families (val, pooled)": [
            i for i in study.where(split="val", label=1) if study.family[i] in seen
        ]
    }
    for fam in seen:
        idx = study.where(split="val", label=1, family=fam)
        if len(idx) >= 4:
            groups[f"seen: {fam}"] = idx
    for fam in HELD_OUT:  # the other new families: their val-split images
        groups[f"new: {fam}"] = study.where(family=fam, label=1, split="val")
    plan = [
        (shots, seed, f_index, fam)
        for shots in args.shots
        for seed in args.seeds
        for f_index, fam in enumerate(HELD_OUT)
    ]
    for shots, seed, f_index, fam in plan:
        pool = study.where(family=fam, label=1)
        if len(pool) < shots + MIN_EVAL_FAKES:
            continue
        real_pool = study.where(split="train", label=0, sources=REAL_SOURCES.get(fam))
        if len(real_pool) < shots:
            print(f"skip {fam} N={shots}: {len(real_pool)} real photos for shots", flush=True)
            continue
        real_pool = study.where(split="train", label=0, sources=REAL_SOURCES.get(fam))
        rng = np.random.default_rng([seed, f_index, shots])
        fakes = sorted(rng.choice(pool, shots, replace=False).tolist())
        reals = sorted(rng.choice(real_pool, shots, replace=False).tolist())
        held = [i for i in pool if i not in set(fakes)]
        shot_idx = fakes + reals
        labels = study.label[shot_idx]
        needed = sorted(set(held + val_reals).union(*groups.values()))
        for method, rank in METHODS:
            key = run_key(fam, shots, seed, method, rank)
            if key in done:
                continue
            t0 = time.time()
            cfg = AdaptConfig(
                method=method,
                rank=max(rank, 1),
                steps=args.steps,
                batch_size=args.batch_size,
                seed=seed,
            )
            trained = train(base_tail, data.subset(shot_idx), labels, cfg)
            logits = torch.zeros(len(study.rows))
            logits[needed] = score(trained.tail, data.subset(needed), use_pre=trained.fast)
            own = held + val_reals
            ap, acc = ap_acc(logits[own], study.label[own])
            b_ap, b_acc = ap_acc(base_logits[own], study.label[own])
            comb = torch.maximum(logits, base_logits)
            c_ap, c_acc = ap_acc(comb[own], study.label[own])
            others = {}
            for name, idx in groups.items():
                if name == f"new: {fam}":
                    continue
                ev = idx + val_reals
                y = study.label[ev]
                base_ap = ap_acc(base_logits[ev], y)[0]
                others[name] = {
                    "base_ap": round(base_ap, 4),
                    "d_ap": round(ap_acc(logits[ev], y)[0] - base_ap, 4),
                    "d_ap_combined": round(ap_acc(comb[ev], y)[0] - base_ap, 4),
                }
            record = {
                "key": key,
                "family": fam,
                "shots": shots,
                "seed": seed,
                "method": method if method != "lora" else f"lora r{rank}",
                "ap": round(ap, 4),
                "acc": round(acc, 4),
                "base_ap": round(b_ap, 4),
                "base_acc": round(b_acc, 4),
                "combined_ap": round(c_ap, 4),
                "combined_acc": round(c_acc, 4),
                "eval_fakes": len(held),
                "eval_reals": len(val_reals),
                "others": others,
                "final_loss": round(trained.final_loss, 4),
                "seconds": round(time.time() - t0, 1),
            }
            with done_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            print(
                f"{key}: AP {ap:.3f} acc {acc:.3f} (base {b_ap:.3f}) {record['seconds']}s",
                flush=True,
            )


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def stage_table(out: Path) -> None:
    runs = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines() if x]
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        cells[(r["family"], r["shots"], r["method"])].append(r)
    order = ["head", "lora r4", "lora r8", "lora r16", "full"]
    lines = [
        "| new family | N | method | seeds | acc | AP | base AP | Δ AP seen (pooled) "
        "| worst Δ AP other family | worst Δ AP other, combined |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fam in HELD_OUT:
        for shots in sorted({k[1] for k in cells if k[0] == fam}):
            for method in order:
                rs = cells.get((fam, shots, method))
                if not rs:
                    continue
                seen_key = "seen families (val, pooled)"
                worst = [min(o["d_ap"] for o in r["others"].values()) for r in rs]
                worst_c = [min(o["d_ap_combined"] for o in r["others"].values()) for r in rs]
                lines.append(
                    f"| {fam} | {shots} | {method} | {len(rs)} | {_ms([r['acc'] for r in rs])} "
                    f"| {_ms([r['ap'] for r in rs])} | {rs[0]['base_ap']:.3f} "
                    f"| {_ms([r['others'][seen_key]['d_ap'] for r in rs])} "
                    f"| {_ms(worst)} | {_ms(worst_c)} |"
                )
    lines += ["", "Averaged over the new families (mean of per-family means):", ""]
    lines += [
        "| N | method | families | acc | AP | worst Δ AP other family |",
        "|---|---|---|---|---|---|",
    ]
    for shots in sorted({k[1] for k in cells}):
        for method in order:
            fams = [cells[k] for k in cells if k[1] == shots and k[2] == method]
            if not fams:
                continue
            accs = [statistics.mean(r["acc"] for r in rs) for rs in fams]
            aps = [statistics.mean(r["ap"] for r in rs) for rs in fams]
            worst = [
                statistics.mean(min(o["d_ap"] for o in r["others"].values()) for r in rs)
                for rs in fams
            ]
            lines.append(
                f"| {shots} | {method} | {len(fams)} | {statistics.mean(accs):.3f} "
                f"| {statistics.mean(aps):.3f} | {min(worst):+.3f} |"
            )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/adapt-study"))
    p.add_argument("--devset", type=Path, default=DEVSET)
    p.add_argument("--stages", default="features,base,adapt,table")
    p.add_argument("--shots", type=int, nargs="+", default=[20, 10, 50])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    if "features" in stages:
        stage_features(args.out, args.devset, args.progress)
    if "base" in stages or "adapt" in stages:
        study = Study(args.out, args.devset)
        if "base" in stages:
            stage_base(args.out, study, args.progress)
        if "adapt" in stages:
            stage_adapt(args.out, study, args)
    if "table" in stages:
        stage_table(args.out)


if __name__ == "__main__":
    main()
