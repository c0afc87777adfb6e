"""web.limits without a server: JSON parsing within depth and Unicode, and field checks."""

from __future__ import annotations

import pytest

from engine.config import ServeConfig
from web.errors import BadRequest
from web.limits import Fields, parse_json


def test_parse_json_refuses_what_is_not_a_flat_valid_object() -> None:
    assert parse_json(b"", 16) == {} and parse_json(b'{"a": [1, {"b": "c"}]}', 16) == {"a": [1, {"b": "c"}]}
    for raw, why in [(b"[1]", "object"), (b"{", "not JSON"), (b'{"a": "\xff"}', "not JSON"),
                     (b'{"a": "\\ud800"}', "lone surrogate"), (b'{"\\udfff": 1}', "lone surrogate"),
                     (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
                     (b'{"a": ' + b"[" * 20 + b"]" * 20 + b"}", "nested")]:
        with pytest.raises(BadRequest, match=why):
            parse_json(raw, 16)


def test_fields_name_what_is_wrong() -> None:
    config = ServeConfig()
    f = Fields({"image": "i1", "text": "in black", "k": 5}, config, ("image", "text", "k"))
    assert (f.ident("image"), f.text("text"), f.integer("k", 10, 1, config.max_k)) == ("i1", "in black", 5)
    with pytest.raises(BadRequest, match="unknown field 'q'"):
        Fields({"q": 1}, config, ("image",))
    cases = [({"text": "x" * 501}, lambda f: f.text("text"), "501 characters"),
             ({"text": "   "}, lambda f: f.text("text"), "empty"),
             ({"k": True}, lambda f: f.integer("k", 10, 1, 100), "integer from 1 to 100"),
             ({"k": 1000}, lambda f: f.integer("k", 10, 1, 100), "integer from 1 to 100"),
             ({"images": ["a"] * 51}, lambda f: f.idents("images", 50), "at most 50"),
             ({"images": ["a", 3]}, lambda f: f.idents("images", 50), "list of strings"),
             ({}, lambda f: f.ident("image"), "missing field 'image'")]
    for body, read, why in cases:
        with pytest.raises(BadRequest, match=why):
            read(Fields(body, config, tuple(body) or ("image",)))
