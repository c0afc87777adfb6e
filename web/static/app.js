// tailor's page: plain JavaScript, no framework, nothing fetched from outside this server.
// Every product title, caption, attribute and reason is put on the page as text (textContent or text
// nodes), never as markup: a title containing <script> shows as those characters.
"use strict";

const state = {
  token: null,      // bearer token, when the server asks for one (from #token=... in the address)
  who: "web",
  session: null,    // the session id of the steps shown
  step: null,       // the step shown (its query id, text, roles, candidate)
  candidate: null,  // the product the next step starts from
  parent: null,     // the step the next step continues from
  results: [],
  history: [],
  attributes: [],
};

// ---- small helpers ----------------------------------------------------------------------------------
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

const $ = (id) => document.getElementById(id);

function say(message, isError) {
  const status = $("status");
  status.textContent = message || "";
  status.classList.toggle("error", Boolean(isError));
}

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    const reason = data && data.error ? data.error : `${response.status} ${response.statusText}`;
    throw new Error(reason);
  }
  return data;
}

async function busy(message, work) {
  say(message);
  try {
    const out = await work();
    say("");
    return out;
  } catch (err) {
    say(err.message, true);
    return null;
  }
}

function imageUrl(id) {
  return "/ui/image/" + encodeURIComponent(id);
}

// Images are plain <img src> on loopback; with a token they are fetched with it and shown from a blob.
function photo(id, alt, onclick) {
  const img = el("img", { alt: alt || id, loading: "lazy", onclick });
  if (!state.token) {
    img.src = imageUrl(id);
  } else {
    fetch(imageUrl(id), { headers: headers(false) })
      .then((r) => (r.ok ? r.blob() : null))
      .then((blob) => { if (blob) img.src = URL.createObjectURL(blob); });
  }
  return img;
}

// ---- finding a product ------------------------------------------------------------------------------
async function find(event) {
  event.preventDefault();
  const text = $("find-text").value.trim();
  if (!text) return;
  const out = await busy("finding ...", () => api("GET", "/ui/find?text=" + encodeURIComponent(text)));
  if (!out) return;
  const found = clear($("found"));
  const byId = out.products.length && out.products[0].id === text ? [`the product with id ${text}`] : [];
  const matched = [...byId, ...out.phrases.map((p) => `attribute '${p}'`),
                   ...out.words.filter((w) => !byId.length || w !== text.toLowerCase()).map((w) => `'${w}' in the title`)];
  $("find-summary").textContent = out.products.length
    ? `${out.products.length} products (${matched.join(", ") || "by id"})`
    : "nothing found: try other words";
  for (const p of out.products) {
    found.append(el("li", { class: "product-card", "data-id": p.id, title: "start from this product",
                            onclick: () => startFrom(p.id) },
      photo(p.id, p.title), el("div", { class: "title", text: p.title }), el("div", { class: "id", text: p.id })));
  }
}

// A product picked from the finder starts a new session; one picked from the results continues this one.
async function startFrom(id) {
  state.session = null;
  state.parent = null;
  state.step = null;
  state.results = [];
  state.history = [];
  renderHistory();
  clear($("results"));
  clear($("roles"));
  await setCandidate(id);
}

async function setCandidate(id) {
  const product = await busy("loading the product ...", () => api("GET", "/ui/product/" + encodeURIComponent(id)));
  if (!product) return;
  state.candidate = product;
  renderCandidate();
  $("change-text").disabled = false;
  $("change-button").disabled = false;
  $("change-text").value = "";
  $("change-text").focus();
}

function attributeChips(product, options) {
  const opts = options || {};
  const list = el("ul", { class: "chips attributes" });
  for (const a of product.attributes) {
    const tagged = a.edge === "USER_TAGGED";
    const label = tagged ? `${a.name} (${a.source} ${a.who || ""})`.replace(/\s+\)/, ")") : a.name;
    const chip = el("li", { class: "chip" + (tagged ? " tag" : "") + (opts.fresh && opts.fresh.has(a.name) ? " new" : ""),
                            "data-name": a.name, title: `${a.kind}: ${a.source}` }, label);
    if (opts.removable) {
      chip.append(el("button", { type: "button", class: "remove", title: "remove this tag",
                                 onclick: () => opts.removable(a) }, "\u00d7"));
    }
    list.append(chip);
  }
  return list;
}

function tagForm(product, after) {
  const input = el("input", { class: "tag-text", type: "text", maxlength: 500,
                              placeholder: "tell us about it: e.g. it has long sleeves" });
  const form = el("form", { class: "inline tag-form" }, input, el("button", { type: "submit", class: "tag-button" }, "Tell"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const sentence = input.value.trim();
    if (!sentence) return;
    const out = await busy("tagging and refreshing the index ...",
      () => api("POST", "/ui/tag", { image: product.id, sentence, who: state.who }));
    if (!out) return;
    input.value = "";
    say(`tagged ${product.id}: ` + out.tags.map((t) => t.attribute).join(", "));
    await after(out.product, new Set(out.tags.map((t) => t.attribute)));
  });
  return form;
}

function renderCandidate(fresh) {
  const box = clear($("candidate"));
  const product = state.candidate;
  box.classList.toggle("empty", !product);
  if (!product) return;
  box.append(
    photo(product.id, product.title),
    el("div", { class: "body" },
      el("h2", { class: "title", text: product.title }),
      el("div", { class: "id", text: `candidate ${product.id}` + (product.indexed ? "" : " (not in the index yet)") }),
      attributeChips(product, { fresh }),
      tagForm(product, async (updated, added) => {
        state.candidate = updated;
        renderCandidate(added);
        if (state.step) await showStep(state.step.query_id, "the ranking after the tag");
      })));
}

// ---- steps -----------------------------------------------------------------------------------------
async function ask(event) {
  event.preventDefault();
  const text = $("change-text").value.trim();
  if (!text || !state.candidate) return;
  const body = { candidate: state.candidate.id, text, who: state.who };
  if (state.session) body.session = state.session;
  if (state.parent) body.parent = state.parent;
  const out = await busy("searching ...", () => api("POST", "/ui/step", body));
  if (out) renderStep(out);
}

function renderStep(out, previous, focus) {
  state.step = out.step;
  state.session = out.step.session;
  state.parent = out.step.query_id;
  state.results = out.results;
  state.history = out.history;
  renderRoles(out.step);
  renderResults(previous, focus);
  renderHistory();
}

function renderRoles(step) {
  const box = clear($("roles"));
  const carried = step.carried || { added: [], removed: [], mentioned: [] };
  const part = (label, names, role) => {
    if (!names.length) return null;
    const span = el("span", { class: "role " + role }, label + ": ");
    names.forEach((name, i) => {
      if (i) span.append(", ");
      const earlier = carried[role].includes(name);
      span.append(el("span", { class: earlier ? "carried" : "own",
                               title: earlier ? "from an earlier step" : "from this step" },
                     earlier ? `${name} (earlier step)` : name));
    });
    return span;
  };
  const parts = [part("asking for", step.roles.added, "added"), part("without", step.roles.removed, "removed"),
                 part("mentioned", step.roles.mentioned, "mentioned")].filter(Boolean);
  box.append(el("span", { text: `step ${step.n}: "${step.text}" on ${step.candidate}. ` }));
  if (parts.length) parts.forEach((p) => box.append(p));
  else box.append(el("span", { text: "no known attribute named: ranked by the picture and the words" }));
}

function renderResults(previous, focus) {
  const list = clear($("results"));
  const before = new Map((previous || []).map((r) => [r.id, r.rank]));
  for (const r of state.results) {
    const moved = r.id === focus && before.has(r.id) && before.get(r.id) !== r.rank;
    const card = el("li", { class: "result-card" + (r.liked ? " liked" : "") + (moved ? " moved" : ""),
                            "data-id": r.id, "data-rank": r.rank });
    const reasons = el("ul", { class: "reasons" });
    for (const reason of r.reasons.slice(0, 4)) reasons.append(el("li", { text: reason }));
    const was = before.has(r.id) && before.get(r.id) !== r.rank ? ` (was ${before.get(r.id)})` : "";
    card.append(
      photo(r.id, r.title, () => useAsCandidate(r.id)),
      el("div", {}, el("span", { class: "rank", text: `#${r.rank}${was}` }), " ",
        el("span", { class: "id", text: r.id }), " ", el("span", { class: "score", text: typeof r.score === "number" ? r.score.toFixed(3) : "" })),
      el("div", { class: "title", text: r.title }),
      reasons,
      el("div", { class: "actions" },
        el("button", { type: "button", class: "like" + (r.liked ? " on" : ""), onclick: () => like(r.id) },
          r.liked ? "Liked" : "I like this"),
        el("button", { type: "button", class: "why", onclick: () => explain(r.id) }, "Why?"),
        el("button", { type: "button", class: "about", onclick: () => about(r.id) }, "About"),
        el("button", { type: "button", class: "use", onclick: () => useAsCandidate(r.id) }, "Next from this")));
    list.append(card);
  }
}

function renderHistory() {
  const list = clear($("history"));
  for (const s of state.history) {
    const current = state.step && s.query_id === state.step.query_id;
    list.append(el("li", { class: "step" + (current ? " current" : ""), "data-query": s.query_id, "data-n": s.n,
                           title: s.parent ? "continues an earlier step" : "the first step",
                           onclick: () => goBack(s.query_id) },
      el("span", { class: "n", text: `${s.n}.` }), el("span", { class: "text", text: `${s.candidate} + "${s.text}"` })));
  }
}

async function showStep(queryId, message) {
  const previous = state.results;
  const out = await busy(message || "loading the step ...", () => api("GET", "/ui/step/" + encodeURIComponent(queryId)));
  if (out) renderStep(out, state.step && state.step.query_id === queryId ? previous : null);
  return out;
}

async function goBack(queryId) {
  const out = await showStep(queryId, "back to an earlier step ...");
  if (out) {
    await setCandidate(out.step.candidate);
    $("change-text").value = "";
  }
}

async function useAsCandidate(id) {
  await setCandidate(id);  // the next step continues from the step shown (state.parent)
}

async function like(id) {
  if (!state.step) return;
  const previous = state.results;
  const out = await busy("liking and refreshing the index ...",
    () => api("POST", "/ui/like", { query_id: state.step.query_id, images: [id], who: state.who }));
  if (!out) return;
  renderStep(out, previous, id);
  const now = out.results.find((r) => r.id === id);
  const was = previous.find((r) => r.id === id);
  say(now ? `liked ${id}: rank ${was ? was.rank : "?"} -> ${now.rank}` : `liked ${id}`);
}

// ---- product details and tags ------------------------------------------------------------------------
async function about(id, fresh) {
  const product = await busy("loading ...", () => api("GET", "/ui/product/" + encodeURIComponent(id)));
  if (!product) return;
  renderAbout(product, fresh);
  const dialog = $("product");
  if (!dialog.open) dialog.showModal();
}

function renderAbout(product, fresh) {
  const body = clear($("product-body"));
  body.append(
    el("h2", { class: "title", text: product.title }),
    el("div", { class: "id", text: product.id }),
    photo(product.id, product.title),
    attributeChips(product, { fresh }),
    tagForm(product, async (updated, added) => {
      renderAbout(updated, added);
      if (state.candidate && state.candidate.id === updated.id) { state.candidate = updated; renderCandidate(added); }
      if (state.step) await showStep(state.step.query_id, "the ranking after the tag");
    }));
}

// ---- why this result -----------------------------------------------------------------------------------
async function explain(id) {
  const out = await busy("explaining ...", () =>
    api("GET", `/ui/explain?query=${encodeURIComponent(state.step.query_id)}&result=${encodeURIComponent(id)}`));
  if (!out) return;
  const result = state.results.find((r) => r.id === id);
  $("explain-title").textContent = `${id}${result ? " " + result.title : ""} for "${state.step.text}"`;
  const facts = clear($("explain-facts"));
  for (const fact of out.facts) facts.append(el("li", { text: fact }));
  drawGraph($("explain-graph"), out.graph);
  const link = $("browser-link");
  if (out.browser_url && /^https?:\/\//.test(out.browser_url)) {
    link.href = out.browser_url;
    link.hidden = false;
  } else {
    link.removeAttribute("href");
    link.hidden = true;
  }
  $("explain-cypher").textContent = out.browser;
  const dialog = $("explain");
  if (!dialog.open) dialog.showModal();
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function nodeLabel(n) {
  if (n.label === "Image") return n.id || "";
  if (n.label === "Caption") return n.text || n.id || "";
  return n.name || n.id || "";
}

function short(text, size) {
  return text.length > size ? text.slice(0, size - 1) + "\u2026" : text;
}

// A fixed layout that reads left to right: the candidate, what the query asks and shares, the result.
function layout(graph, width, height) {
  const pos = new Map();
  const nodes = graph.nodes;
  const query = nodes.find((n) => n.role === "query");
  const result = nodes.find((n) => n.role === "result");
  const candidate = nodes.find((n) => n.role === "candidate");
  if (query) pos.set(query.key, [width / 2, 36]);
  if (candidate) pos.set(candidate.key, [70, height / 2]);
  if (result) pos.set(result.key, [width - 70, height / 2]);
  const attributes = nodes.filter((n) => n.label === "Attribute");
  const others = nodes.filter((n) => n.label !== "Attribute" && !pos.has(n.key));
  const perColumn = 6;
  const columns = Math.max(1, Math.ceil(attributes.length / perColumn));
  const spacing = Math.min(110, (width - 340) / Math.max(1, columns - 1));
  attributes.forEach((n, i) => {
    const col = Math.floor(i / perColumn), row = i % perColumn;
    const inColumn = Math.min(perColumn, attributes.length - col * perColumn);
    const x = width / 2 + (col - (columns - 1) / 2) * spacing;
    const y = 95 + (height - 150) * (inColumn === 1 ? 0.5 : row / (inColumn - 1));
    pos.set(n.key, [x, y]);
  });
  others.forEach((n, i) => {
    pos.set(n.key, [60 + (width - 120) * (others.length === 1 ? 0.5 : i / (others.length - 1)), height - 24]);
  });
  return pos;
}

function drawGraph(root, graph) {
  clear(root);
  const width = 680, height = 400;
  const pos = layout(graph, width, height);
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6,
                                 orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#A5ABB6" }));
  defs.append(marker);
  root.append(defs);
  const radius = (n) => (n.label === "Caption" ? 24 : n.label === "Image" ? 22 : 15);
  const byKey = new Map(graph.nodes.map((n) => [n.key, n]));
  for (const e of graph.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1;
    const ra = radius(byKey.get(e.from)), rb = radius(byKey.get(e.to)) + 2;
    const line = svg("line", { class: "edge " + e.type, x1: a[0] + dx * ra / len, y1: a[1] + dy * ra / len,
                               x2: b[0] - dx * rb / len, y2: b[1] - dy * rb / len, "marker-end": "url(#arrow)" });
    line.append(svg("title", {}, e.type + (e.role ? ` {role: ${e.role}}` : "") + (e.who ? ` {who: ${e.who}}` : "")));
    root.append(line);
    const label = e.type === "MENTIONS" && e.role ? e.role : e.type === "HAS_ATTRIBUTE" ? "" : e.type;
    if (label) root.append(svg("text", { class: "edge-label", x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 2,
                                         "text-anchor": "middle" }, label));
  }
  for (const n of graph.nodes) {
    const p = pos.get(n.key);
    if (!p) continue;
    const g = svg("g", { class: "graph-node " + n.label, "data-label": n.label });
    g.append(svg("circle", { class: "node " + n.label, cx: p[0], cy: p[1], r: radius(n) }));
    const text = nodeLabel(n);
    const role = n.role ? `${n.role}: ` : "";
    g.append(svg("title", {}, `${n.label} ${role}${text}${n.title ? " - " + n.title : ""}`));
    g.append(svg("text", { x: p[0], y: p[1] + radius(n) + 11, "text-anchor": "middle" },
                 short((n.role === "candidate" ? "candidate " : n.role === "result" ? "result " : "") + text, 26)));
    root.append(g);
  }
  if (graph.hidden) {
    root.append(svg("text", { x: width - 8, y: height - 6, "text-anchor": "end" }, `${graph.hidden} more nodes not drawn`));
  }
}

// ---- curator -----------------------------------------------------------------------------------------
function curatorSay(message, isError) {
  const status = $("curator-status");
  status.textContent = message || "";
  status.classList.toggle("error", Boolean(isError));
}

async function curate(message, work) {
  curatorSay(message);
  try {
    const out = await work();
    return out;
  } catch (err) {
    curatorSay(err.message, true);
    return null;
  }
}

async function loadAttributes() {
  const out = await curate("loading attributes ...", () => api("GET", "/ui/attributes"));
  if (!out) return;
  curatorSay("");
  state.attributes = out.attributes;
  const names = clear($("attribute-names"));
  for (const a of out.attributes) names.append(el("option", { value: a.name }));
  renderAttributes();
}

function renderAttributes() {
  const filter = $("attr-filter").value.trim().toLowerCase();
  const body = clear(document.querySelector("#attr-table tbody"));
  for (const a of state.attributes) {
    if (filter && !a.name.includes(filter) && !a.kind.includes(filter)) continue;
    body.append(el("tr", { "data-name": a.name, title: "use in the forms", onclick: () => pickAttribute(a.name) },
      el("td", { text: a.name }), el("td", { text: a.kind }), el("td", { text: a.images }),
      el("td", { text: a.tags }), el("td", { text: a.captions })));
  }
}

function pickAttribute(name) {
  if (!$("merge-keep").value) $("merge-keep").value = name;
  else $("merge-drop").value = name;
  $("add-name").value = name;
}

function synced(out) {
  return ` (index ${out.refresh}: ${out.changed_images} embeddings changed)`;
}

async function merge(event) {
  event.preventDefault();
  const keep = $("merge-keep").value.trim(), drop = $("merge-drop").value.trim();
  if (!keep || !drop) return curatorSay("name the attribute to keep and the one to drop", true);
  const out = await curate("merging ...", () => api("POST", "/ui/curator/merge", { keep, drop }));
  if (!out) return;
  const moved = Object.entries(out.moved).map(([k, v]) => `${v} ${k}`).join(", ");
  await loadAttributes();
  curatorSay(`merged '${out.dropped}' into '${out.kept}': moved ${moved}` + synced(out));
  $("merge-keep").value = "";
  $("merge-drop").value = "";
}

async function loadTagged(event) {
  if (event) event.preventDefault();
  const id = $("rt-image").value.trim();
  if (!id) return;
  const product = await curate("loading ...", () => api("GET", "/ui/product/" + encodeURIComponent(id)));
  if (!product) return;
  curatorSay("");
  $("rt-title").textContent = product.title;
  const list = $("rt-attributes");
  list.replaceWith(Object.assign(attributeChips(product, { removable: (a) => removeTag(product.id, a) }), { id: "rt-attributes" }));
}

async function removeTag(id, attribute) {
  const out = await curate("removing ...", () =>
    api("POST", "/ui/curator/remove-tag", { image: id, name: attribute.name, source: attribute.source }));
  if (!out) return;
  await loadTagged();
  await loadAttributes();
  curatorSay(`removed '${out.name}' from ${id}` + synced(out));
}

async function addAttribute(event) {
  event.preventDefault();
  const images = $("add-images").value.split(/[\s,]+/).filter(Boolean);
  const name = $("add-name").value.trim(), kind = $("add-kind").value.trim();
  if (!images.length || !name) return curatorSay("give product ids and an attribute", true);
  const body = { images, name, who: state.who };
  if (kind) body.kind = kind;
  const out = await curate("adding ...", () => api("POST", "/ui/curator/add-attribute", body));
  if (!out) return;
  await loadAttributes();
  curatorSay(`'${out.name}' added to ${out.tagged} products (${out.already} had it)` + synced(out));
}

// ---- wiring ------------------------------------------------------------------------------------------
function showTab(name) {
  $("shop").hidden = name !== "shop";
  $("curator").hidden = name !== "curator";
  $("tab-shop").classList.toggle("active", name === "shop");
  $("tab-curator").classList.toggle("active", name === "curator");
  if (name === "curator") loadAttributes();
}

function readToken() {
  const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("tailor-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);  // keep it out of the address bar
  }
  state.token = sessionStorage.getItem("tailor-token");
}

document.addEventListener("DOMContentLoaded", () => {
  readToken();
  $("find-form").addEventListener("submit", find);
  $("change-form").addEventListener("submit", ask);
  $("tab-shop").addEventListener("click", () => showTab("shop"));
  $("tab-curator").addEventListener("click", () => showTab("curator"));
  $("attr-filter").addEventListener("input", renderAttributes);
  $("merge-form").addEventListener("submit", merge);
  $("rt-form").addEventListener("submit", loadTagged);
  $("add-form").addEventListener("submit", addAttribute);
  for (const button of document.querySelectorAll("dialog .close")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  document.body.dataset.ready = "1";
});
