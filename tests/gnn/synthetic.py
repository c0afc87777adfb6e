"""A small synthetic graph export for unit tests of the model code (no server, no encoders)."""

from __future__ import annotations

import numpy as np

from readers.graph_records import CaptionRow, GraphExport, ImageRow, TypedEdge

COLOURS = ["red", "blue", "green", "black"]
TYPES = ["shirt", "dress", "shoe"]


def synthetic_export(seed: int = 0, per_cell: int = 4) -> tuple[GraphExport, dict[str, np.ndarray]]:
    """Images = colour x type x ``per_cell``; queries "replace A with B" within a type.

    Image features are a colour one-hot + type one-hot + noise, so the task is learnable and the
    attribute oracle is perfect up to ties.
    """
    rng = np.random.default_rng(seed)
    export = GraphExport()
    feats = []
    for c, colour in enumerate(COLOURS):
        for t, kind in enumerate(TYPES):
            for k in range(per_cell):
                image_id = f"{colour}-{kind}-{k}"
                split = "test" if k < 2 else ("val" if k == 2 else "train")
                export.images.append(ImageRow(image_id, "", f"{colour} {kind} {k}", split, f"{kind}-{k}"))
                for attr in (colour, kind):
                    export.edges.append(
                        TypedEdge("HAS_ATTRIBUTE:catalog", "Image", image_id, "Attribute", attr)
                    )
                vec = np.zeros(16, dtype=np.float32)
                vec[c], vec[4 + t] = 1.0, 1.0
                feats.append(vec + 0.05 * rng.standard_normal(16).astype(np.float32))
    export.attributes = {**{c: "colour" for c in COLOURS}, **{t: "article_type" for t in TYPES}}
    q = 0
    for img in export.images:
        colour, kind, k = img.id.split("-")
        for other in COLOURS:
            if other == colour:
                continue
            cap_id = f"q{q}"
            target = f"{other}-{kind}-{k}"
            export.captions.append(
                CaptionRow(cap_id, f"replace {colour} with {other}", img.split, img.group, img.id, target)
            )
            export.edges.append(TypedEdge("MODIFIES", "Caption", cap_id, "Image", img.id))
            export.edges.append(TypedEdge("MENTIONS:removed", "Caption", cap_id, "Attribute", colour))
            export.edges.append(TypedEdge("MENTIONS:added", "Caption", cap_id, "Attribute", other))
            q += 1
    text = rng.standard_normal((len(export.captions), 8)).astype(np.float32)
    attrs = rng.standard_normal((len(export.attributes), 8)).astype(np.float32)
    return export, {"Image": np.stack(feats), "Caption": text, "Attribute": attrs}
