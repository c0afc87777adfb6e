"""graphdb.bulk's CSV for the offline importer, read back with the csv module: every field as the records
say, awkward ones (commas, quotes, line breaks in ids and names) included. Pure code, no server."""

from __future__ import annotations

import csv

from graphdb.bulk import write_import_csv
from readers.records import AttributeValue, ImageRecord, QueryRecord


def test_relationship_rows_read_back_as_the_records_say(tmp_path) -> None:
    names = ["red", 'navy, "dark" blue', "two\nlines"]
    images = [ImageRecord(f"i{n},{n}", f'Title "{n}", with comma', f"/img/{n}.jpg", "train", "g",
                          tuple(AttributeValue("colour", name) for name in names[: n + 1]), source_line=n + 2)
              for n in range(3)]
    queries = [QueryRecord('q"0"', "i0,0", "i1,1", "replace red with blue", "train", "g",
                           added=(names[1],), removed=("red",), mentioned=(names[2],), source_line=2),
               QueryRecord("q1", "i1,1", None, "open", "test", "g", added=("red",), source_line=3)]
    files = write_import_csv([(images, queries)], tmp_path, source="generated")

    def rows(rel: str) -> list[list[str]]:
        with open(files.relationships[rel], encoding="utf-8", newline="") as fh:
            return list(csv.reader(fh))[1:]

    has = rows("HAS_ATTRIBUTE")
    assert [(r[0], r[1]) for r in has] == [(im.id, a.name) for im in images for a in im.attributes]
    assert {(r[2], r[3]) for r in has} == {("catalog", "1.0")}
    assert rows("MODIFIES") == [['q"0"', "i0,0"], ["q1", "i1,1"]]
    assert rows("TARGETS") == [['q"0"', "i1,1"]]
    assert rows("MENTIONS") == [['q"0"', names[1], "added"], ['q"0"', "red", "removed"],
                                ['q"0"', names[2], "mentioned"], ["q1", "red", "added"]]
    assert files.counts["HAS_ATTRIBUTE"] == 6 and files.counts["MENTIONS"] == 4 and files.counts["TARGETS"] == 1
