"""Curator actions over several products at once, running the same scripts as ``cypher/curator/``.

:func:`graphdb.interactions.add_attribute` tags one image; the curator view tags a selection, which must
be all or nothing: one transaction runs ``add_attribute.cypher`` once per image, after checking that every
id exists.
"""

from __future__ import annotations

from neo4j import Driver, ManagedTransaction

from graphdb.interactions import _name, _require_images, cypher_script

__all__ = ["add_attribute_to_images"]


def add_attribute_to_images(driver: Driver, image_ids: list[str], name: str, kind: str, who: str,
                            database: str | None = None) -> dict[str, int | bool | str]:
    """Tag every image in ``image_ids`` with attribute ``name`` (created when new, with ``kind``) as
    curator ``who``; ``{"name", "tagged", "already", "new_attribute"}``. An unknown id writes nothing."""
    attribute = _name(name)
    images = sorted(dict.fromkeys(image_ids))  # sorted: concurrent writers lock images in one order
    if not images:
        raise ValueError("add an attribute to at least one product")

    def work(tx: ManagedTransaction) -> dict[str, int | bool | str]:
        _require_images(tx, images)
        existed = tx.run("MATCH (a:Attribute {name: $name}) RETURN count(a) AS n", name=attribute).single()["n"]
        tagged = 0
        for image_id in images:
            record = tx.run(cypher_script("add_attribute"), image_id=image_id, name=attribute, kind=kind,
                            who=who).single(strict=True)
            tagged += bool(record["tagged_now"])
        return {"name": attribute, "tagged": tagged, "already": len(images) - tagged, "new_attribute": not existed}

    with driver.session(database=database) as session:
        return session.execute_write(work)
