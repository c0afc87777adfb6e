"""graphdb.bulk's CSV for the offline importer, read back with the csv module: every field as the records
say, awkward ones (commas, quotes, line breaks in ids and names) included. Pure code, no server."""

from __future__ import annotations

import csv

import pytest

from graphdb.bulk import write_import_csv
from readers.records import AttributeValue, ImageRecord, QueryRecord


@pytest.mark.parametrize("parallel", [True, False], ids=["rounds written by forked children", "in process"])
@pytest.mark.parametrize("round_products", [1, 50_000], ids=["a round per chunk", "one round"])
def test_relationship_rows_read_back_as_the_records_say(tmp_path, round_products, parallel) -> None:
    names = ["red", 'navy, "dark" blue', "two\nlines"]
    images = [ImageRecord(f"i{n},{n}", f'Title "{n}", with comma', f"/img/{n}.jpg", "train", "g",
                          tuple(AttributeValue("colour", name) for name in names[: n + 1]), source_line=n + 2)
              for n in range(3)]
    queries = [QueryRecord('q"0"', "i0,0", "i1,1", "replace red with blue", "train", "g",
                           added=(names[1],), removed=("red",), mentioned=(names[2],), source_line=2),
               QueryRecord("q1", "i1,1", None, "open", "test", "g", added=("red",), mentioned=("linen",),
                           source_line=3)]
    # with a round per chunk, the second round names attributes the first did not
    chunks = [(images[:2], queries[:1]), (images[2:], queries[1:])]
    files = write_import_csv(chunks, tmp_path, source="generated", round_products=round_products, parallel=parallel)

    def read(path) -> list[list[str]]:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.reader(fh))

    key = {}  # node number -> the image's or caption's id, the attribute's name
    numbers = []
    for _label, path in files.nodes:
        header, *body = read(path)
        assert header[0] == ":ID"
        numbers += [int(r[0]) for r in body]
        key.update({r[0]: r[1] for r in body})
    assert numbers == list(range(len(numbers)))  # ids ascend across the files, in the order they are read

    def rows(rel: str) -> list[list[str]]:
        return [[key[r[0]], key[r[1]], *r[2:]] for path in files.relationships[rel] for r in read(path)[1:]]

    has = rows("HAS_ATTRIBUTE")
    assert [(r[0], r[1]) for r in has] == [(im.id, a.name) for im in images for a in im.attributes]
    assert {(r[2], r[3]) for r in has} == {("catalog", "1.0")}
    assert rows("MODIFIES") == [['q"0"', "i0,0"], ["q1", "i1,1"]]
    assert rows("TARGETS") == [['q"0"', "i1,1"]]
    assert rows("MENTIONS") == [['q"0"', names[1], "added"], ['q"0"', "red", "removed"],
                                ['q"0"', names[2], "mentioned"], ["q1", "red", "added"], ["q1", "linen", "mentioned"]]
    assert files.counts["HAS_ATTRIBUTE"] == 6 and files.counts["MENTIONS"] == 5 and files.counts["TARGETS"] == 1
    assert sum(label == "Attribute" for label, _ in files.nodes) == (2 if round_products == 1 else 1)


def test_a_failing_round_writer_is_an_error_naming_the_round(tmp_path, monkeypatch) -> None:
    import graphdb.bulk as bulk

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(bulk, "_write_round", broken)
    images = [ImageRecord("i0", "t", "/i0.jpg", "train", "g", (AttributeValue("colour", "red"),))]
    with pytest.raises(RuntimeError, match="round 1 failed"):
        write_import_csv([(images, [])], tmp_path, parallel=True)
