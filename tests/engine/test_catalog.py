"""The daily catalog flow against the real server, with real encoders and generated product photos: a
published engine, then products added, changed, retired and broken, each checked in Neo4j, in the FAISS
index and in the answers (no retraining in between). The tests are days of one shop, in order, on one
engine; every session loads it from disk afresh, as a new process would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("neo4j")

from engine.errors import UnknownIdError  # noqa: E402
from engine.pipeline import load_published, train_and_publish  # noqa: E402
from engine.session import InteractiveSession  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from gnn.config import ExperimentConfig, ModelConfig, SimulationConfig, TrainConfig  # noqa: E402
from graphdb.catalog import retire_images  # noqa: E402
from graphdb.loaders import load_catalog  # noqa: E402
from tests.helpers import scalar  # noqa: E402

pytestmark = pytest.mark.neo4j

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
COLOURS = {"Red": (200, 30, 30), "Blue": (30, 60, 200), "Green": (30, 160, 60), "Black": (20, 20, 20)}
KINDS = ("Tshirts", "Shirts", "Shorts")
BRANDS = ("Acme", "Birch", "Cobalt", "Delta", "Ember", "Fjord")


def photo(path: Path, colour: str, kind: str, seed: int) -> None:
    """A product-style photo: a garment shape in the colour on white, with a little seeded texture."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (224, 224), "white")
    d = ImageDraw.Draw(img)
    fill = COLOURS[colour]
    if kind == "Shorts":
        d.rectangle([60, 60, 164, 120], fill=fill)
        d.rectangle([60, 120, 105, 190], fill=fill)
        d.rectangle([119, 120, 164, 190], fill=fill)
    else:
        d.rectangle([70, 50, 154, 190], fill=fill)
        d.rectangle([30, 50, 194, 90 if kind == "Tshirts" else 130], fill=fill)
    for x, y in rng.integers(60, 160, size=(12, 2)):
        d.point((int(x), int(y)), fill=(255, 255, 255))
    img.save(path, quality=92)


def row(pid: int, brand: str, colour: str, kind: str) -> str:
    return f"{pid},Men,Apparel,Topwear,{kind},{colour},Summer,2012,Casual,{brand} Men {colour} {kind}"


def write_shop(folder: Path, products: list[tuple[int, str, str, str]], name: str) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for pid, _, colour, kind in products:
        if not (folder / "images" / f"{pid}.jpg").exists():
            photo(folder / "images" / f"{pid}.jpg", colour, kind, pid)
    path = folder / name
    path.write_text("\n".join([HEADER, *(row(*p) for p in products)]) + "\n", encoding="utf-8")
    return path


FIRST = [(100 + n, b, c, k) for n, (b, k, c) in enumerate(
    (b, k, c) for b in BRANDS for k in KINDS for c in COLOURS)]  # 72 products
NEW = [(900 + n, "Zeta", c, k) for n, (k, c) in enumerate((k, c) for k in KINDS for c in COLOURS)]  # 12


@pytest.fixture(scope="module")
def shop(neo4j_target, neo4j_driver, tmp_path_factory):
    """A published engine trained on the first 72 products (their photos featurised for real)."""
    if not neo4j_target.owned:
        pytest.skip(f"needs an empty database, and {neo4j_target.how} was not started by the tests")
    from graphdb.maintenance import delete_everything

    delete_everything(neo4j_driver)
    root = tmp_path_factory.mktemp("shop")
    ws = Workspace(root / "home")
    path = write_shop(root / "shop", FIRST, "products.csv")
    split = root / "split.json"
    summary = load_catalog(neo4j_driver, path, split)
    assert summary.query_counts["by_split"]["train"] > 0
    config = ExperimentConfig(model=ModelConfig(hidden=32, layers=2),
                              train=TrainConfig(epochs=2, batch_size=128, negatives=32, patience=2),
                              simulation=SimulationConfig(enabled=False))
    train_and_publish(neo4j_driver, ws, "graph_catalog", config)
    return neo4j_driver, ws, root / "shop", split


def session(shop) -> InteractiveSession:
    driver, ws, _, _ = shop
    return InteractiveSession(ws, driver)


def answers(s: InteractiveSession, candidate: str, k: int | None = None) -> list[str]:
    """Every indexed product ranked for a query on ``candidate`` (the whole index when k is None)."""
    k = k or len(s.engine.index)
    return [r["id"] for r in s.query(candidate, "replace red with blue", k)["results"]]


def stored_embedding(driver, image_id: str) -> list[float] | None:
    return scalar(driver, "MATCH (i:Image {id: $id}) RETURN i.embedding", id=image_id)


def assert_no_zero_features(ws: Workspace) -> None:
    """Every indexed image has a real (not all-zero) feature row, in the engine as saved on disk."""
    engine = load_published(ws)
    indexed = [i for i in engine.index.ids if i is not None]
    assert sorted(indexed) == sorted(engine.bundle.image_ids)
    for image_id in indexed:
        vector = engine.image_features.get(image_id)
        assert vector is not None and np.any(vector), image_id
    assert set(engine.image_features.ids) >= set(indexed)


def test_new_products_are_featurised_embedded_indexed_and_answered(shop) -> None:
    driver, ws, folder, split = shop
    path = write_shop(folder, FIRST + NEW, "products.csv")  # the day's export: yesterday's plus 12
    summary = load_catalog(driver, path, split)
    new_ids = [str(p[0]) for p in NEW]
    assert summary.new_images == sorted(new_ids)

    s = session(shop)
    try:
        with pytest.raises(UnknownIdError, match="loaded but not yet indexed: run `tailor sync`"):
            s.query(new_ids[0], "replace red with blue")
        with pytest.raises(UnknownIdError, match="not in the graph: load it"):
            s.query("no-such-product", "replace red with blue")
        out = s.sync()
        catalog = out["catalog"]
        assert catalog["new_images"] == 12 and catalog["without_features"] == []
        assert catalog["features_computed"] == 12  # exactly the new photos went through the encoder
        assert catalog["features_cached"] == 0 and catalog["features_recomputed"] == 0
        # FAISS and the answers: every new product is ranked, and can be asked about.
        assert set(new_ids) <= set(s.engine.index.row_of)
        assert set(new_ids) <= set(answers(s, "100"))
        ranked = answers(s, new_ids[0], k=5)
        assert len(ranked) == 5 and new_ids[0] not in ranked
    finally:
        s.close()
    # Neo4j: the new nodes carry their embedding, of this model's version.
    version = load_published(ws).version
    for image_id in new_ids:
        assert len(stored_embedding(driver, image_id) or []) == 32
        assert scalar(driver, "MATCH (i:Image {id: $id}) RETURN i.embedding_version", id=image_id) == version
    # The features are the encoder's for those files, and the next process has them.
    from gnn.features.encoders import image_encoder

    engine = load_published(ws)
    encoded = image_encoder("efficientnet-lite0").encode_images([folder / "images" / f"{new_ids[0]}.jpg"])[0]
    np.testing.assert_allclose(engine.image_features.get(new_ids[0]), encoded, atol=1e-4)
    assert_no_zero_features(ws)


def test_a_changed_product_gets_its_new_title_attributes_photo_and_embedding(shop) -> None:
    driver, ws, folder, split = shop
    s = session(shop)
    try:
        s.sync()  # in line with the graph before the change
        before_vector = s.engine.index.vector("101").copy()
    finally:
        s.close()
    before_features = load_published(ws).image_features.get("101").copy()
    before_embedding = stored_embedding(driver, "101")
    photo(folder / "images" / "101.jpg", "Black", "Shorts", seed=7)  # a new photo under the same path
    rows = [p if p[0] != 101 else (101, "Acme", "Black", "Tshirts") for p in FIRST + NEW]
    path = write_shop(folder, rows, "products.csv")
    summary = load_catalog(driver, path, split, update=True)
    assert summary.changed_images == ["101"]
    assert scalar(driver, "MATCH (i:Image {id: '101'}) RETURN i.title") == "Acme Men Black Tshirts"
    assert scalar(driver, "MATCH (:Image {id: '101'})-[:HAS_ATTRIBUTE]->(a {kind: 'colour'}) "
                          "RETURN collect(a.name)") == ["black"]

    s = session(shop)
    try:
        out = s.sync()
        # A catalog change reads the base graph whole (the default local refresh keeps no export of it).
        assert out["refresh"] == "full" and out["catalog"]["features_recomputed"] == 1
        assert out["catalog"]["features_computed"] == 1  # only the changed photo
        assert not np.allclose(s.engine.index.vector("101"), before_vector, atol=1e-4)
        titles = {r["id"]: r["title"] for r in s.query("100", "replace red with blue", len(s.engine.index))["results"]}
        assert titles["101"] == "Acme Men Black Tshirts"
    finally:
        s.close()
    after = load_published(ws).image_features.get("101")
    assert not np.allclose(after, before_features, atol=1e-4)
    assert stored_embedding(driver, "101") != before_embedding
    assert_no_zero_features(ws)


def test_retired_products_leave_neo4j_faiss_the_features_and_every_answer(shop) -> None:
    driver, ws, _, _ = shop
    s = session(shop)
    try:
        s.sync()
        query_on_retired = s.query("102", "replace green with blue", 5)["query_id"]
    finally:
        s.close()
    gone = ["102", "103", "905"]
    report = retire_images(driver, gone)
    assert report.captions_deleted > 0 and report.user_queries_kept == 1
    assert scalar(driver, "MATCH (i:Image) WHERE i.id IN $ids RETURN count(i)", ids=gone) == 0

    s = session(shop)
    try:
        out = s.sync()
        assert out["refresh"] == "full"  # products retired: the base graph is read whole
        assert sorted(out["catalog"]["removed_image_ids"]) == sorted(gone)
        assert out["catalog"]["features_dropped"] == 3
        assert not set(gone) & set(s.engine.index.row_of)
        for candidate in ("100", "104", "900"):
            assert not set(gone) & set(answers(s, candidate))  # never again, however far down
        with pytest.raises(UnknownIdError, match="not in the graph"):
            s.query("102", "replace green with blue")
        with pytest.raises(UnknownIdError, match="'102' was retired"):
            s.answer(query_on_retired)
    finally:
        s.close()
    engine = load_published(ws)
    assert not set(gone) & set(engine.image_features.ids) and not set(gone) & set(engine.bundle.image_ids)
    assert_no_zero_features(ws)


def test_a_product_without_a_usable_photo_is_reported_and_left_out_until_it_has_one(shop) -> None:
    driver, ws, folder, split = shop
    rows = FIRST + NEW + [(950, "Zeta", "Red", "Shorts"), (951, "Zeta", "Blue", "Shorts")]
    path = write_shop(folder, rows, "products.csv")
    (folder / "images" / "950.jpg").write_bytes(b"not a jpeg at all")  # broken
    (folder / "images" / "951.jpg").unlink()  # missing
    load_catalog(driver, path, split, update=True)  # whatever the tests before changed, the file wins
    s = session(shop)
    try:
        out = s.sync()
        missing = {m["id"]: m["reason"] for m in out["catalog"]["without_features"]}
        assert set(missing) == {"950", "951"} and "missing file" in missing["951"]
        assert not {"950", "951"} & set(s.engine.index.row_of)
        with pytest.raises(UnknownIdError, match="'950' is loaded but has no image features"):
            s.query("950", "replace red with blue")
        # A file that stays broken is not retried at every sync (that would make every sync a full one);
        # the sync may re-read the last few seconds' writes (its safety margin), locally.
        assert s.sync()["refresh"] in ("unchanged", "incremental")
    finally:
        s.close()
    assert stored_embedding(driver, "950") is None
    assert_no_zero_features(ws)
    photo(folder / "images" / "951.jpg", "Blue", "Shorts", seed=951)  # the file arrives
    s = session(shop)
    try:
        out = s.sync()  # nothing changed in the graph, but the photo is there now
        assert out["catalog"]["new_image_ids"] == ["951"]
        assert "951" in s.engine.index.row_of and "950" not in s.engine.index.row_of
    finally:
        s.close()
    assert_no_zero_features(ws)
