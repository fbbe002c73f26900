"""Generator families (the columns of the paper's Table 2), read from a YAML file.

Format::

    name: glff-icip2022
    families:
      - name: ProGAN
        seen: true
        generators:
          - name: ProGAN
            folders: [progan]
      - name: Cond. GANs
        generators:
          - {name: GauGAN, folders: [gaugan]}

A test folder matches a generator when its name equals the generator's name or one of its
``folders`` after lower-casing and dropping everything but letters, digits and ``+``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

BUILTIN_DIR = Path(__file__).parent / "families"
UNASSIGNED = "Unassigned"


def normalize(name: str) -> str:
    """Matching key of a folder or generator name: ``Cond_GAN-2`` -> ``condgan2``."""
    return re.sub(r"[^a-z0-9+]", "", name.lower())


@dataclass(frozen=True)
class Generator:
    """One test generator and the folder names it may appear under."""

    name: str
    folders: tuple[str, ...]

    def matches(self, folder: str) -> bool:
        """Whether a test folder holds this generator's images."""
        key = normalize(folder)
        return key == normalize(self.name) or key in {normalize(f) for f in self.folders}


@dataclass(frozen=True)
class Family:
    """A column of Table 2."""

    name: str
    generators: tuple[Generator, ...]
    seen: bool = False


@dataclass(frozen=True)
class Families:
    """The whole grouping."""

    name: str
    families: tuple[Family, ...]

    def family_of(self, folder: str) -> str:
        """Family name of a test folder, or :data:`UNASSIGNED`."""
        for family in self.families:
            if any(g.matches(folder) for g in family.generators):
                return family.name
        return UNASSIGNED

    def generator_of(self, folder: str) -> str:
        """Display name of a test folder's generator (the folder itself when unknown)."""
        for family in self.families:
            for g in family.generators:
                if g.matches(folder):
                    return g.name
        return folder

    @property
    def generator_count(self) -> int:
        """Number of generators listed."""
        return sum(len(f.generators) for f in self.families)


def load_families(path: str | Path) -> Families:
    """Read a families YAML; a bare name (``cnndetection``) means a shipped file."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and (BUILTIN_DIR / f"{p.name}.yaml").exists():
        p = BUILTIN_DIR / f"{p.name}.yaml"
    raw = yaml.safe_load(p.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("families"), list):
        raise ValueError(f"{p}: expected a mapping with a 'families' list")
    families = []
    for fam in raw["families"]:
        gens = []
        for g in fam.get("generators", []):
            if isinstance(g, str):
                gens.append(Generator(g, ()))
            else:
                gens.append(Generator(str(g["name"]), tuple(str(f) for f in g.get("folders", []))))
        families.append(Family(str(fam["name"]), tuple(gens), bool(fam.get("seen", False))))
    return Families(str(raw.get("name", p.stem)), tuple(families))
