"""Session fixtures: one real Neo4j for the whole test session.

Precedence: ``NEO4J_URI`` if set (a server we did not start: never wiped); else a testcontainers
Neo4j where a Docker engine answers; else the local server (graphdb/server) started in a temporary
data directory on free ports and stopped at the end of the session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclass
class Neo4jTarget:
    settings: object  # graphdb.settings.Neo4jSettings
    owned: bool  # True when this test session started the server and may wipe it
    how: str


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def neo4j_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jTarget]:
    from graphdb.settings import Neo4jSettings, settings_from_env

    external = settings_from_env()
    if external is not None:
        yield Neo4jTarget(external, owned=False, how=f"NEO4J_URI={external.uri}")
        return
    if _docker_answers():
        from testcontainers.neo4j import Neo4jContainer

        with Neo4jContainer("neo4j:5.26-community") as container:
            settings = Neo4jSettings(
                uri=container.get_connection_url(), user="neo4j", password=container.password
            )
            yield Neo4jTarget(settings, owned=True, how="testcontainers")
        return
    from graphdb.server.manager import LocalServer
    from tests.helpers import free_port

    data_dir = tmp_path_factory.mktemp("neo4j-session")
    server = LocalServer(data_dir, bolt_port=free_port(), http_port=free_port())
    status = server.start()
    try:
        settings = Neo4jSettings(uri=status.uri, password=server.password(), local=True, data_dir=data_dir)
        yield Neo4jTarget(settings, owned=True, how=f"local server in {data_dir}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_target: Neo4jTarget):
    from graphdb.connection import open_driver
    from graphdb.schema import apply_schema

    driver = open_driver(neo4j_target.settings)
    apply_schema(driver)
    yield driver
    driver.close()


@pytest.fixture
def empty_graph(neo4j_target: Neo4jTarget, neo4j_driver):
    """A driver to an empty graph. Wipes only a server this session started; never someone else's."""
    if not neo4j_target.owned:
        pytest.skip(f"needs an empty database, and {neo4j_target.how} was not started by the tests")
    from graphdb.maintenance import delete_everything

    delete_everything(neo4j_driver)
    return neo4j_driver


# --- a real trained model over a slice of myntra-small ------------------------------------------------

CATALOG_LIMIT = 300  # products loaded: enough for real rankings, small enough to train in seconds


@dataclass
class TrainedCatalog:
    """A workspace with a model trained on the first products of myntra-small, and its attribute tagger."""

    home: Path
    catalog: Path
    limit: int


def load_catalog_slice(driver, trained: TrainedCatalog) -> None:
    """The slice's graph, alone in the (test-owned) database: what the trained model was trained on."""
    from engine.workspace import Workspace
    from graphdb.loaders import load_catalog
    from graphdb.maintenance import delete_everything

    delete_everything(driver)
    ws = Workspace(trained.home)
    load_catalog(driver, trained.catalog, ws.split_file(trained.catalog, trained.limit), limit=trained.limit)


@pytest.fixture(scope="session")
def trained_catalog(neo4j_target: Neo4jTarget, neo4j_driver, tmp_path_factory: pytest.TempPathFactory
                    ) -> TrainedCatalog:
    """Trained once per test session (a few epochs, then the tagger); modules take copies (catalog_home)."""
    from engine.pipeline import train_and_publish
    from engine.workspace import Workspace
    from gnn.attributes.extraction import AttributeExtractor
    from gnn.config import ExperimentConfig
    from readers.datasets import myntra_catalog

    catalog = myntra_catalog()
    if not catalog.is_file():
        pytest.skip(f"needs myntra-small at {catalog} (TAILOR_DATASETS)")
    if not neo4j_target.owned:
        pytest.skip(f"loads a catalog into an empty database, and {neo4j_target.how} was not started by the tests")
    trained = TrainedCatalog(tmp_path_factory.mktemp("trained") / "home", catalog, CATALOG_LIMIT)
    load_catalog_slice(neo4j_driver, trained)
    ws = Workspace(trained.home)
    engine = train_and_publish(neo4j_driver, ws, "graph_catalog", ExperimentConfig.from_file(None, epochs=4, seed=0))
    AttributeExtractor.train(engine.bundle.attribute_names, ws.extractor, epochs=4, max_sentences=800)
    return trained


@pytest.fixture(scope="module")
def catalog_home(trained_catalog: TrainedCatalog, neo4j_driver, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For one test module: a copy of the trained workspace over a freshly loaded slice (no interactions of
    other modules in the graph or in the engine)."""
    home = tmp_path_factory.mktemp("catalog") / "home"
    shutil.copytree(trained_catalog.home, home)
    load_catalog_slice(neo4j_driver, trained_catalog)
    return home
