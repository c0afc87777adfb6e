"""The page of `tailor serve` in a real headless Chromium, against a real server, model and Neo4j: find,
query, like, tag, a second step and the way back, why a result (words, drawing, the Neo4j Browser link),
the curator's actions, markup shown as text, and cross-site writes refused."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import scalar
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, ServeProcess, neo4j_browser_url

pytestmark = [pytest.mark.neo4j, pytest.mark.browser]

REPLACE = re.compile(r"^replace (?P<old>.+) with (?P<new>.+)$")


@pytest.fixture(scope="module")
def served(catalog_home, neo4j_target, tmp_path_factory) -> ServeProcess:
    """`tailor serve` over this module's copy of the trained catalog, its links to the test Neo4j's Browser."""
    browser = neo4j_browser_url(neo4j_target.settings)
    server = ServeProcess(catalog_home, neo4j_target.settings, tmp_path_factory.mktemp("serve") / "serve.log",
                          args=("--browser-url", browser) if browser else ())
    server.start()
    server.url = f"http://127.0.0.1:{server.port}"
    server.browser_url = browser
    yield server
    server.stop()


def api(server: ServeProcess, method: str, path: str) -> tuple[int, object]:
    answer = server.request(method, path)
    return answer.status, answer.body


@pytest.fixture(scope="module")
def example(served, neo4j_driver) -> dict:
    """A real composed query of the catalog: its candidate, the colour it asks for, a usage to add next."""
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (c:Caption {split: 'test'})-[:MODIFIES]->(i:Image) WHERE c.text STARTS WITH 'replace ' "
        "RETURN c.text AS text, i.id AS id, i.title AS title ORDER BY c.id LIMIT 1")
    row = records[0]
    colour = REPLACE.match(row["text"])["new"]
    usage = scalar(neo4j_driver, "MATCH (a:Attribute {kind: 'usage'})<-[:HAS_ATTRIBUTE]-() "
                                 "WITH a, count(*) AS n RETURN a.name ORDER BY n DESC, a.name LIMIT 1")
    return {"candidate": row["id"], "title": row["title"], "colour": colour, "usage": usage}


def open_page(page: Page, served: ServeProcess) -> None:
    page.goto(served.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "1")


def pick(page: Page, words: str, product_id: str) -> None:
    """Find by words and make ``product_id`` the candidate."""
    page.fill("#find-text", words)
    page.click("#find-button")
    card = page.locator(f"#found .product-card[data-id='{product_id}']")
    expect(card).to_be_visible()
    card.click()
    expect(page.locator("#candidate .id")).to_contain_text(product_id)


def ask(page: Page, text: str, n: int) -> list[str]:
    """Type a change, search, wait for step ``n``; the result ids in order."""
    page.fill("#change-text", text)
    page.click("#change-button")
    expect(page.locator(f"#history li.step.current[data-n='{n}']")).to_be_visible()
    expect(page.locator("#results .result-card").first).to_be_visible()
    return page.locator("#results .result-card").evaluate_all("cards => cards.map(c => c.dataset.id)")


def ranks(page: Page) -> list[str]:
    return page.locator("#results .result-card").evaluate_all("cards => cards.map(c => c.dataset.id)")


def test_find_by_title_words_and_by_attribute_with_thumbnails(page, served, example):
    open_page(page, served)
    words = " ".join(example["title"].split()[:4])
    pick(page, words, example["candidate"])
    card = page.locator(f"#found .product-card[data-id='{example['candidate']}']")
    expect(card.locator(".title")).to_have_text(example["title"])
    # The thumbnail is the product's photo, served by id (its pixels arrived).
    assert card.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("#candidate h2")).to_have_text(example["title"])
    expect(page.locator("#candidate .chip").first).to_be_visible()

    page.fill("#find-text", example["colour"])
    page.click("#find-button")
    expect(page.locator("#find-summary")).to_contain_text(f"attribute '{example['colour']}'")
    found = page.locator("#found .product-card")
    expect(found.first).to_be_visible()
    ids = found.evaluate_all("cards => cards.map(c => c.dataset.id)")
    status, details = api(served, "GET", f"/ui/product/{ids[0]}")
    assert status == 200 and example["colour"] in {a["name"] for a in details["attributes"]}


def test_image_route_serves_only_known_ids(served):
    status, _ = api(served, "GET", "/ui/image/..%2F..%2F..%2Fetc%2Fpasswd")
    assert status == 404
    status, _ = api(served, "GET", "/ui/image/no-such-id")
    assert status == 404


def test_query_then_like_moves_the_liked_result_up(page, served, example, neo4j_driver):
    open_page(page, served)
    pick(page, example["candidate"], example["candidate"])
    before = ask(page, f"in {example['colour']}", 1)
    assert len(before) >= 5 and example["candidate"] not in before
    first = page.locator("#results .result-card").first
    expect(first.locator(".reasons li").first).to_be_visible()  # each result says why
    expect(page.locator("#roles")).to_contain_text(f"asking for: {example['colour']}")

    liked = before[4]  # rank 5
    page.locator(f"#results .result-card[data-id='{liked}'] button.like").click()
    expect(page.locator(f"#results .result-card.liked[data-id='{liked}']")).to_be_visible()
    after = ranks(page)
    assert after.index(liked) < before.index(liked), f"rank {before.index(liked) + 1} -> {after.index(liked) + 1}"
    expect(page.locator("#status")).to_contain_text(f"liked {liked}: rank 5 -> {after.index(liked) + 1}")
    query_id = page.locator("#history li.step.current").get_attribute("data-query")
    assert scalar(neo4j_driver, "MATCH (:Image {id: $i})-[l:LIKED_FOR]->(:Caption {id: $q}) RETURN count(l)",
                  i=liked, q=query_id) == 1


def test_a_second_step_keeps_the_first_and_the_history_leads_back(page, served, example, neo4j_driver):
    open_page(page, served)
    pick(page, example["candidate"], example["candidate"])
    first = ask(page, f"in {example['colour']}", 1)
    step1 = page.locator("#history li.step[data-n='1']").get_attribute("data-query")
    # A result becomes the next candidate; the next change is asked of it, knowing the first.
    page.locator(f"#results .result-card[data-id='{first[0]}'] button.use").click()
    expect(page.locator("#candidate .id")).to_contain_text(first[0])
    ask(page, f"in {example['usage']}", 2)
    roles = page.locator("#roles")
    expect(roles).to_contain_text(f"{example['colour']} (earlier step)")
    expect(roles).to_contain_text(example["usage"])
    expect(page.locator("#history li.step")).to_have_count(2)
    step2 = page.locator("#history li.step[data-n='2']").get_attribute("data-query")
    # The graph holds it: step 2 follows step 1 and mentions both attributes as added.
    added = neo4j_driver.execute_query(
        "MATCH (s:Session)-[:HAS_STEP]->(c:Caption {id: $q})-[:FOLLOWS]->(:Caption {id: $p}) "
        "MATCH (c)-[:MENTIONS {role: 'added'}]->(a:Attribute) RETURN collect(a.name) AS names",
        q=step2, p=step1).records[0]["names"]
    assert sorted(added) == sorted({example["colour"], example["usage"]})

    page.locator("#history li.step[data-n='1']").click()  # the way back
    expect(page.locator("#history li.step.current[data-n='1']")).to_be_visible()
    expect(page.locator("#candidate .id")).to_contain_text(example["candidate"])
    expect(roles).not_to_contain_text(example["usage"])
    assert ranks(page) == first  # step 1's answer again (nothing it depends on changed)


def test_telling_about_a_product_shows_the_tag(page, served, example, neo4j_driver):
    open_page(page, served)
    pick(page, example["candidate"], example["candidate"])
    colour = example["colour"]  # a colour the candidate lacks (its query asks for it)
    expect(page.locator(f"#candidate .chip[data-name='{colour}']")).to_have_count(0)
    page.fill("#candidate .tag-text", f"it has some {colour} on it too")
    page.click("#candidate .tag-button")
    chip = page.locator(f"#candidate .chip.tag[data-name='{colour}']")
    expect(chip).to_be_visible()
    expect(chip).to_contain_text("user web")
    expect(chip).to_have_class(re.compile(r"\bnew\b"))  # outlined: just said
    assert scalar(neo4j_driver, "MATCH (:Image {id: $i})-[t:USER_TAGGED {who: 'web'}]->(:Attribute {name: $a}) "
                                "RETURN count(t)", i=example["candidate"], a=colour) == 1
    # A sentence that names no attribute is refused, said so, and nothing appears.
    chips = page.locator("#candidate .chip").count()
    page.fill("#candidate .tag-text", "qwerty zxcv")
    page.click("#candidate .tag-button")
    expect(page.locator("#status.error")).to_contain_text("no attribute")
    expect(page.locator("#candidate .chip")).to_have_count(chips)


def test_why_this_result_in_words_a_drawing_and_a_browser_link(page, served, example, neo4j_target, chromium):
    open_page(page, served)
    pick(page, example["candidate"], example["candidate"])
    results = ask(page, f"in {example['colour']}", 1)
    query_id = page.locator("#history li.step.current").get_attribute("data-query")
    page.locator(f"#results .result-card[data-id='{results[0]}'] button.why").click()
    dialog = page.locator("#explain")
    expect(dialog.locator("#explain-facts li").first).to_be_visible()
    # The drawing: the query's caption green, the candidate and result orange, attributes pink (the grass).
    fills = page.locator("#explain-graph circle").evaluate_all(
        "cs => cs.map(c => [c.parentNode.dataset.label, getComputedStyle(c).fill])")
    colours = {label: fill for label, fill in fills}
    assert colours == {"Image": "rgb(247, 151, 103)", "Caption": "rgb(87, 199, 163)",
                       "Attribute": "rgb(241, 102, 103)"}
    labels = page.locator("#explain-graph g.graph-node text").all_text_contents()
    assert f"candidate {example['candidate']}" in labels and f"result {results[0]}" in labels
    # The link opens Neo4j Browser with the explanation's query in its editor (cmd=edit&arg=...).
    href = dialog.locator("#browser-link").get_attribute("href")
    url = urlparse(href)
    assert served.browser_url and f"{url.scheme}://{url.netloc}{url.path}" == served.browser_url
    arg = parse_qs(url.query)["arg"][0]
    assert parse_qs(url.query)["cmd"] == ["edit"] and f"'{query_id}'" in arg and f"'{results[0]}'" in arg
    assert "MATCH (c:Caption {id: " in arg

    browser = chromium.new_context(viewport={"width": 1300, "height": 900}).new_page()
    try:
        browser.goto(href)
        browser.locator("input[data-testid=password]").fill(neo4j_target.settings.password)
        browser.locator("button[data-testid=connect]").click()
        expect(browser.get_by_text("You are connected as user")).to_be_visible()
        editor = browser.locator("[data-testid=activeEditor]")
        expect(editor).to_contain_text(f"'{query_id}'")
        browser.locator("[data-testid=editor-Run]").click()
        # Browser draws the subgraph: the query, candidate, result and their attributes.
        expect(browser.locator("svg g.node").nth(3)).to_be_attached(timeout=60_000)
    finally:
        browser.context.close()


def test_curator_adds_merges_and_removes_with_counts(page, served, example, neo4j_driver):
    products = [r["id"] for r in neo4j_driver.execute_query(
        "MATCH (i:Image) RETURN i.id AS id ORDER BY i.id LIMIT 3").records]
    open_page(page, served)
    page.click("#tab-curator")
    table = page.locator("#attr-table tbody")
    expect(table.locator("tr").first).to_be_visible()

    def add(name: str, ids: list[str]) -> None:
        page.fill("#add-images", ", ".join(ids))
        page.fill("#add-name", name)
        page.fill("#add-kind", "part")
        page.click("#add-button")
        expect(page.locator("#curator-status")).to_contain_text(f"'{name}' added to")

    def row(name: str):
        return table.locator(f"tr[data-name='{name}']")

    add("short sleeve", products[:2])
    expect(row("short sleeve").locator("td").nth(2)).to_have_text("2")
    add("short-sleeve", products[2:])
    expect(row("short-sleeve").locator("td").nth(2)).to_have_text("1")

    page.fill("#merge-keep", "short sleeve")
    page.fill("#merge-drop", "short-sleeve")
    page.click("#merge-button")
    expect(page.locator("#curator-status")).to_contain_text("merged 'short-sleeve' into 'short sleeve'")
    expect(row("short-sleeve")).to_have_count(0)
    expect(row("short sleeve").locator("td").nth(2)).to_have_text("3")
    assert scalar(neo4j_driver, "MATCH (a:Attribute {name: 'short-sleeve'}) RETURN count(a)") == 0

    page.fill("#rt-image", products[2])
    page.click("#rt-load")
    chip = page.locator("#rt-attributes .chip[data-name='short sleeve']")
    chip.locator("button.remove").click()
    expect(page.locator("#curator-status")).to_contain_text(f"removed 'short sleeve' from {products[2]}")
    expect(row("short sleeve").locator("td").nth(2)).to_have_text("2")
    assert scalar(neo4j_driver, "MATCH (:Image)-[t:USER_TAGGED]->(:Attribute {name: 'short sleeve'}) "
                                "RETURN count(t)") == 2


MARKUP = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def test_titles_captions_and_attributes_with_markup_show_as_text(page, served, example, neo4j_driver):
    target = neo4j_driver.execute_query("MATCH (i:Image) WHERE i.id <> $c RETURN i.id AS id ORDER BY i.id DESC "
                                        "LIMIT 1", c=example["candidate"]).records[0]["id"]
    title = f"Hostile {MARKUP} Shirt"
    neo4j_driver.execute_query("MATCH (i:Image {id: $id}) SET i.title = $title", id=target, title=title)
    open_page(page, served)
    page.fill("#find-text", "hostile")
    page.click("#find-button")
    card = page.locator(f"#found .product-card[data-id='{target}']")
    expect(card.locator(".title")).to_have_text(title)  # the characters, not elements
    card.click()
    expect(page.locator("#candidate h2")).to_have_text(title)
    # A change and an attribute name with markup, through the page.
    change = f"in {example['colour']} <b>now</b> {MARKUP}"
    page.fill("#change-text", change)
    page.click("#change-button")
    expect(page.locator("#history li.step.current .text")).to_have_text(f'{target} + "{change}"')
    page.click("#tab-curator")
    page.fill("#add-images", target)
    page.fill("#add-name", "<i>odd</i> name")
    page.click("#add-button")
    expect(page.locator("#attr-table tbody tr[data-name='<i>odd</i> name'] td").first).to_have_text("<i>odd</i> name")
    assert page.locator("#shop script, #shop img[src='x'], #shop b, #curator i").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")


def _page_server(html: str) -> ThreadingHTTPServer:
    """A second web server on 127.0.0.1 (another origin) serving one page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            data = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_cross_site_posts_and_a_rebound_host_are_refused(chromium, served, example, neo4j_driver):
    """A page on another site posts to the server with a form (a JSON-looking text/plain body); another
    local page posts with a no-cors fetch; a name re-pointed at 127.0.0.1 (DNS rebinding) asks for the
    page. All are refused, and nothing is written."""
    before = scalar(neo4j_driver, "MATCH (c:Caption {split: 'query'}) RETURN count(c)")
    context = chromium.new_context()
    attacker = context.new_page()
    attack = (f'<form id=f method=POST action="{served.url}/ui/step" enctype="text/plain">'
              f'<input name=\'{{"candidate": "{example["candidate"]}", "text": "in red", "x": "\' value=\'"}}\'>'
              '</form>')
    context.route("http://attacker.test/**", lambda route: route.fulfill(content_type="text/html",
                                                                            body=f"<html><body>{attack}</body></html>"))
    try:
        attacker.goto("http://attacker.test/")
        with attacker.expect_response(f"{served.url}/ui/step") as posted:
            attacker.evaluate("() => document.getElementById('f').submit()")
        assert posted.value.status == 403 and "cross-site" in posted.value.json()["error"]
        # Another page on this machine (a different port is a different origin) posts with fetch.
        other = _page_server("<html><body>another local app</body></html>")
        try:
            attacker.goto(f"http://127.0.0.1:{other.server_port}/")
            with attacker.expect_response(f"{served.url}/ui/step") as fetched:
                attacker.evaluate(
                    """([url, body]) => fetch(url, {method: 'POST', mode: 'no-cors', body,
                           headers: {'Content-Type': 'text/plain'}}).catch(() => null)""",
                    [f"{served.url}/ui/step", f'{{"candidate": "{example["candidate"]}", "text": "in red"}}'])
            assert fetched.value.status == 403  # opaque to the page; refused by the server
        finally:
            other.shutdown()
            other.server_close()
    finally:
        context.close()
    assert scalar(neo4j_driver, "MATCH (c:Caption {split: 'query'}) RETURN count(c)") == before

    # DNS rebinding: a name the attacker controls now resolves to 127.0.0.1; the browser sends that name.
    rebinding = chromium.browser_type.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP rebound.test 127.0.0.1"])
    try:
        response = rebinding.new_page().goto(f"http://rebound.test:{served.port}/")
        assert response.status == 403 and "is not served here" in response.text()
    finally:
        rebinding.close()
