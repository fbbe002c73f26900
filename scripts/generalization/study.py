"""Run the leave-one-family-group-out protocol for recipes and write the Markdown tables.

Inputs: the fold manifests of ``lofo_split.py`` and the cached frozen-trunk features of
``features.py`` (``<repr>-<cond>-<views>.npz``, synthetic fakes as ``synth-<repr>-rand-*``).
Per fold and recipe: the head (a ``Linear(1280, 1)``: the global-only model's head, or the
GLFF fusion for ``--views glff``) is trained on the fold's training rows, its L2 strength
chosen by AP on the fold's validation rows, and the threshold is the lowest one whose
false-positive rate on the validation real photos is at most 5% (validation features are
made the same way as the training ones). Nothing is chosen on test rows. Test: every image of
the held-out group and the held-out real photos, all re-encoded identically (JPEG q90, q75).

    python -m scripts.generalization.study --recipes today debias --out runs/study/table.md
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from detector.training.calibration import threshold_at_fpr
from detector.training.metrics import average_precision, roc_auc

FOLDS = ("gan", "sd", "closed", "other")
TESTS = ("q90", "q75")


@dataclass(frozen=True)
class Recipe:
    """What a study row trains on."""

    repr: str  # rgb | npr
    train_cond: str  # clean | rand
    synth: bool  # add the autoencoder reconstructions of the training real photos
    generators: bool = True  # use the devset's generator images (False: aligned fakes only)
    views: str = "global"  # global | glff


RECIPES = {
    "today": Recipe("rgb", "clean", False),
    "debias": Recipe("rgb", "rand", False),
    "debias+aligned": Recipe("rgb", "rand", True),
    "debias+npr": Recipe("npr", "rand", False),
    "debias+aligned+npr": Recipe("npr", "rand", True),
    "aligned-only": Recipe("rgb", "rand", True, generators=False),
    "aligned-only+npr": Recipe("npr", "rand", True, generators=False),
}


class Features:
    """Lazy ``path -> feature`` lookups over the cached ``.npz`` files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cache: dict[str, dict[str, np.ndarray]] = {}

    def table(self, name: str) -> dict[str, np.ndarray]:
        if name not in self.cache:
            table: dict[str, np.ndarray] = {}
            # <name>.npz, plus synth-<name>.npz (synthetic fakes) and glffsub-<name>.npz
            # (the GLFF comparison's subset)
            for prefix in ("", "synth-", "glffsub-"):
                for path in sorted(self.folder.glob(f"{prefix}{name}.npz")):
                    data = np.load(path)
                    table.update(
                        zip(data["paths"].tolist(), data["feats"].astype(np.float32), strict=True)
                    )
            self.cache[name] = table
        return self.cache[name]

    def get(self, repr_: str, cond: str, views: str, paths: list[str]) -> np.ndarray | None:
        name = f"{repr_}-{cond}-{views}"
        table = self.table(name)
        if views == "global" and not table:  # glff files hold the global view first
            glff = self.table(f"{repr_}-{cond}-glff")
            table = {k: v[:1] for k, v in glff.items()}
        missing = [p for p in paths if p not in table]
        if missing:
            return None
        return np.stack([table[p] for p in paths])


def rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def synth_rows(synth_manifest: Path, reals: list[dict[str, str]]) -> list[dict[str, str]]:
    """The reconstructions of exactly the given real photos."""
    wanted = {r["path"] for r in reals}
    out = []
    for r in rows(synth_manifest):
        if r["real_path"] in wanted:
            out.append({"path": str(synth_manifest.resolve().parent / r["path"]), "label": "1"})
    return out


def fit_linear(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Balanced L2 logistic regression on standardised features, folded back to raw space."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    clf.fit((x - mu) / sd, y)
    w = clf.coef_[0] / sd
    b = float(clf.intercept_[0] - (clf.coef_[0] * mu / sd).sum())
    return w.astype(np.float32), b


def linear_scores(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


class FusionHead(torch.nn.Module):
    """GLFF's trainable part on cached pooled views: embed -> AFFM -> head."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        from detector.affm import AFFM

        self.embed = torch.nn.Linear(channels, 128)
        self.fusion = AFFM(128, 4, 128, 3)
        self.head = torch.nn.Linear(128, 1)

    def forward(self, views: torch.Tensor) -> torch.Tensor:  # [B, 7, C], global first
        tokens = torch.relu(self.embed(views))
        tokens = torch.cat([tokens[:, 1:], tokens[:, :1]], dim=1)  # 6 patches, then global
        fused, _ = self.fusion(tokens)
        return self.head(fused).squeeze(1)


def fit_fusion(x: np.ndarray, y: np.ndarray, wd: float, seed: int = 0) -> FusionHead:
    torch.manual_seed(seed)
    model = FusionHead(x.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=wd)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    pos = float(yt.mean())
    weight = torch.where(yt > 0, 0.5 / pos, 0.5 / (1 - pos))
    g = torch.Generator().manual_seed(seed)
    for _ in range(30):
        for idx in torch.randperm(len(xt), generator=g).split(64):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(xt[idx]), yt[idx], weight=weight[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def fusion_scores(model: FusionHead, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x))).numpy().astype(np.float64)


def run_fold(
    feats: Features,
    lofo: Path,
    synth: Path,
    recipe: Recipe,
    fold: str,
    subset: set[str] | None = None,
) -> dict[str, Any] | None:
    """Train on the fold's training rows, calibrate on its validation rows, test.

    With ``subset``, only rows whose path is in it are used (the GLFF comparison's budget).
    """
    train, val, test = (rows(lofo / fold / f"{n}.csv") for n in ("train", "val", "test"))
    if subset is not None:
        train, val, test = ([r for r in p if r["path"] in subset] for p in (train, val, test))
    if not recipe.generators:
        train = [r for r in train if r["label"] == "0"]
        val = [r for r in val if r["label"] == "0"]
    if recipe.synth:
        train = train + synth_rows(synth, [r for r in train if r["label"] == "0"])
        val = val + synth_rows(synth, [r for r in val if r["label"] == "0"])
    r, v = recipe.repr, recipe.views
    xt = feats.get(r, recipe.train_cond, v, [row["path"] for row in train])
    xv = feats.get(r, recipe.train_cond, v, [row["path"] for row in val])
    if xt is None or xv is None:
        return None
    yt = np.array([int(row["label"]) for row in train])
    yv = np.array([int(row["label"]) for row in val])
    t0 = time.monotonic()
    best: tuple[float, Any] = (-1.0, None)
    for c in (0.01, 0.1, 1.0):  # L2 strength chosen on validation AP only
        if v == "global":
            xt2, xv2 = xt[:, 0] if xt.ndim == 3 else xt, xv[:, 0] if xv.ndim == 3 else xv
            w, b = fit_linear(xt2, yt, c)
            sv = linear_scores(xv2, w, b)
            model: Any = (w, b)
        else:
            fm = fit_fusion(xt, yt, wd=c * 1e-2)
            sv = fusion_scores(fm, xv)
            model = fm
        ap = average_precision(yv, sv) if yv.min() != yv.max() else float(-c)
        if ap > best[0]:
            best = (ap, (c, model, sv))
    c, model, sv = best[1]
    fit_seconds = time.monotonic() - t0
    threshold = threshold_at_fpr(sv[yv == 0], 0.05, sv)
    out: dict[str, Any] = {
        "fold": fold,
        "C": c,
        "val_ap": best[0],
        "threshold": threshold,
        "n_train": len(train),
        "fit_seconds": fit_seconds,
        "tests": {},
    }
    labels = np.array([int(row["label"]) for row in test])
    families = [row["family"] if row["label"] == "1" else "photo" for row in test]
    for cond in TESTS:
        x = feats.get(r, cond, v, [row["path"] for row in test])
        if x is None:
            continue
        if v == "global":
            w, b = model
            s = linear_scores(x[:, 0] if x.ndim == 3 else x, w, b)
        else:
            s = fusion_scores(model, x)
        real = labels == 0
        per_family, per_family_auc = {}, {}
        for fam in sorted(set(families) - {"photo"}):
            sel = real | (np.array(families) == fam)
            per_family[fam] = average_precision(labels[sel], s[sel])
            per_family_auc[fam] = roc_auc(labels[sel], s[sel])
        out["tests"][cond] = {
            "group_ap": average_precision(labels, s),
            "per_family": per_family,
            "per_family_auc": per_family_auc,
            "real_fpr": float((s[real] >= threshold).mean()),
            "fake_tpr": float((s[~real] >= threshold).mean()),
            "n_real": int(real.sum()),
            "n_fake": int((~real).sum()),
        }
    return out


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, folds in results.items():
        s: dict[str, Any] = {"folds": [f["fold"] for f in folds]}
        for cond in TESTS:
            got = [f["tests"][cond] for f in folds if cond in f["tests"]]
            if len(got) != len(folds) or not got:
                continue
            fam = {k: v for g in got for k, v in g["per_family"].items()}
            auc = {k: v for g in got for k, v in g["per_family_auc"].items()}
            real_fp = sum(g["real_fpr"] * g["n_real"] for g in got)
            s[cond] = {
                "lofo_map": float(np.mean(list(fam.values()))),
                "lofo_auc": float(np.mean(list(auc.values()))),
                "group_map": float(np.mean([np.mean(list(g["per_family"].values())) for g in got])),
                "per_group": {f["fold"]: f["tests"][cond] for f in folds},
                "per_family": fam,
                # every fold tests the same held-out real photos: mean FPR over folds
                "real_fpr": real_fp / sum(g["n_real"] for g in got),
                "fake_tpr": float(np.mean([g["fake_tpr"] for g in got])),
            }
        summary[name] = s
    return summary


def markdown(summary: dict[str, Any], results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| recipe | LOFO mAP q90 | LOFO mAP q75 | LOFO mean AUC q90 | LOFO mean AUC q75 "
        "| gan | sd | closed | other | real FPR q90 | real FPR q75 | TPR q90 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    for name, s in summary.items():
        q90, q75 = s.get("q90"), s.get("q75")
        groups = []
        for g in FOLDS:
            fold = (q90 or {}).get("per_group", {}).get(g)
            groups.append(f(np.mean(list(fold["per_family"].values()))) if fold else "–")
        lines.append(
            f"| {name} | {f(q90 and q90['lofo_map'])} | {f(q75 and q75['lofo_map'])} "
            f"| {f(q90 and q90['lofo_auc'])} | {f(q75 and q75['lofo_auc'])} | {' | '.join(groups)} "
            f"| {f(q90 and q90['real_fpr'])} | {f(q75 and q75['real_fpr'])} "
            f"| {f(q90 and q90['fake_tpr'])} |"
        )
    fams = sorted({k for s in summary.values() for k in s.get("q90", {}).get("per_family", {})})
    names = [n for n in summary if "q90" in summary[n]]
    lines += ["", "Per-family AP (held out, vs the held-out real photos; q90 / q75):", ""]
    lines.append("| family | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for fam in fams:
        cells = []
        for n in names:
            a = summary[n]["q90"]["per_family"].get(fam)
            b = summary[n].get("q75", {}).get("per_family", {}).get(fam)
            cells.append(f"{f(a)} / {f(b)}")
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feats", type=Path, default=Path("runs/feats"))
    ap.add_argument("--lofo", type=Path, default=Path("runs/lofo"))
    ap.add_argument("--synth", type=Path, default=Path("runs/synth/manifest.csv"))
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES))
    ap.add_argument("--views", default="global", choices=["global", "glff"])
    ap.add_argument("--folds", nargs="+", default=list(FOLDS))
    ap.add_argument("--out", type=Path, default=Path("runs/study/table.md"))
    ap.add_argument("--subset", type=Path, help="CSV of the only image paths to use")
    ap.add_argument("--tag", default="", help="appended to every row's recipe name")
    args = ap.parse_args()
    subset = {r["path"] for r in rows(args.subset)} if args.subset else None
    torch.set_num_threads(1)
    feats = Features(args.feats)
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.recipes:
        base = RECIPES[name]
        recipe = Recipe(base.repr, base.train_cond, base.synth, base.generators, args.views)
        label = (name if args.views == "global" else f"{name} (GLFF)") + args.tag
        folds = []
        for fold in args.folds:
            res = run_fold(feats, args.lofo, args.synth, recipe, fold, subset)
            if res is None:
                print(f"{label} / {fold}: features missing, skipped", flush=True)
                continue
            folds.append(res)
            print(
                f"{label} / {fold}: " + json.dumps({k: v for k, v in res.items() if k != "tests"})
            )
        if folds:
            results[label] = folds
    summary = summarize(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(summary, results))
    args.out.with_suffix(".json").write_text(
        json.dumps({"summary": summary, "folds": results}, indent=1)
    )
    print(args.out.read_text())


if __name__ == "__main__":
    main()
