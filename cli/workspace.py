"""Where tailor keeps its files under $TAILOR_HOME: feature cache, checkpoints, index, outputs."""

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
        return self.home / "features"

    @property
    def checkpoints(self) -> Path:
        return self.home / "checkpoints"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def bundle(self) -> Path:
        return self.index_dir / "bundle.pt"

    @property
    def faiss(self) -> Path:
        return self.index_dir / "images.faiss"

    @property
    def current_model(self) -> Path:
        """The checkpoint `search`, `query` and the interactions use (a copy, replaced atomically)."""
        return self.index_dir / "model.pt"

    @property
    def outputs(self) -> Path:
        return self.home / "out"
