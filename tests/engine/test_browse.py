"""engine.browse without a database: how a step carries the roles of the steps before it, and the shape of
the Neo4j Browser link."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from engine.browse import accumulate_roles, browser_link
from engine.config import PageConfig
from readers.captions import CaptionRoles

KINDS = {"black": ("colour",), "red": ("colour",), "navy blue": ("colour",), "kurtas": ("article_type",),
         "shirts": ("article_type", "sub_category"), "long sleeves": (), "cotton": ("fabric",)}
EXCLUSIVE = PageConfig().exclusive_kinds


def carry(parent: CaptionRoles | None, own: CaptionRoles) -> CaptionRoles:
    return accumulate_roles(parent, own, KINDS, EXCLUSIVE)


def test_a_first_step_is_its_own_text():
    own = CaptionRoles(added=("black",), removed=("red",))
    assert carry(None, own) == own


def test_a_later_step_keeps_what_earlier_steps_asked():
    step1 = carry(None, CaptionRoles(added=("black",)))
    step2 = carry(step1, CaptionRoles(added=("long sleeves",)))
    assert step2 == CaptionRoles(added=("long sleeves", "black"))
    step3 = carry(step2, CaptionRoles(mentioned=("cotton",)))
    assert step3 == CaptionRoles(added=("long sleeves", "black"), mentioned=("cotton",))


def test_a_later_step_undoes_or_replaces_what_it_names():
    step1 = carry(None, CaptionRoles(added=("black", "long sleeves"), removed=("red",)))
    # "without long sleeves": removed now; black stays.
    assert carry(step1, CaptionRoles(removed=("long sleeves",))) == CaptionRoles(
        added=("black",), removed=("long sleeves", "red"))
    # "in red": red is asked for again, and the earlier colour gives way (one colour a product).
    assert carry(step1, CaptionRoles(added=("red",))) == CaptionRoles(
        added=("red", "long sleeves"), removed=("black",))
    # Another kind does not displace a colour: a kurta, still black.
    assert carry(step1, CaptionRoles(added=("kurtas",))) == CaptionRoles(
        added=("kurtas", "black", "long sleeves"), removed=("red",))
    # Merely mentioning an earlier attribute keeps it out of both lists (the new text decides).
    assert carry(step1, CaptionRoles(mentioned=("black",))) == CaptionRoles(
        added=("long sleeves",), removed=("red",), mentioned=("black",))


def test_no_attribute_is_in_two_roles():
    step1 = CaptionRoles(added=("black",), removed=("navy blue",), mentioned=("cotton",))
    step2 = carry(step1, CaptionRoles(added=("navy blue",)))
    every = [*step2.added, *step2.removed, *step2.mentioned]
    assert len(every) == len(set(every))
    assert step2 == CaptionRoles(added=("navy blue",), removed=("black",), mentioned=("cotton",))


def test_browser_link_carries_the_text_as_one_url_parameter():
    text = "MATCH (c:Caption {id: 'q-1'}) // a & b = c?\nRETURN c"
    url = browser_link("http://127.0.0.1:7474/browser/", text, "bolt://neo4j@127.0.0.1:7687")
    parts = urlparse(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:7474", "/browser/")
    query = parse_qs(parts.query)
    assert query == {"cmd": ["edit"], "arg": [text], "dbms": ["bolt://neo4j@127.0.0.1:7687"]}
