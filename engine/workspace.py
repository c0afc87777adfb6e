"""Where tailor keeps its files under ``$TAILOR_HOME``: feature cache, checkpoints, the published engine,
the attribute tagger and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graphdb.settings import tailor_home


@dataclass(frozen=True)
class Workspace:
    home: Path

    @classmethod
    def default(cls) -> Workspace:
        return cls(tailor_home())

    @property
    def features(self) -> Path:
        """The feature cache (keyed by content hash; one folder per encoder)."""
        return self.home / "features"

    @property
    def checkpoints(self) -> Path:
        """Every trained model, named by what it was trained with (reused when that matches)."""
        return self.home / "checkpoints"

    @property
    def engine(self) -> Path:
        """The published engine: one folder per generation and the pointer to the live one."""
        return self.home / "engine"

    @property
    def extractor(self) -> Path:
        """The attribute tagger that "more metadata" sentences go through."""
        return self.home / "extractor"

    @property
    def splits(self) -> Path:
        """Composed queries and splits of each loaded catalog, so every run uses the same ones."""
        return self.home / "splits"

    def split_file(self, catalog: Path, limit: int | None = None) -> Path:
        """Where a catalog's composed queries and split are kept (per catalog and --limit)."""
        stem = catalog.resolve().parent.name + "-" + catalog.stem + (f"-limit{limit}" if limit else "")
        return self.splits / f"{stem}.json"

    @property
    def outputs(self) -> Path:
        return self.home / "out"
