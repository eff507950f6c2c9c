// One trace's waterfall (/traces/<trace_id>): GET /api/v1/traces/{trace_id}, then each span as
// a bar on a time axis (ms from the trace's first span), nested by parent in the API's tree
// order, coloured by service. On a CLIENT span answered by a SERVER span of another service,
// the client's time outside the server's is shaded as network; span events (the sidecar's
// policy decisions) are markers on their span. A row opens the span's details. The events'
// words, the row cap and the external link come from the server (#trace-page,
// meshui.dashboard.trace_pages). Every name, attribute and event is text, never markup.
(function () {
  "use strict";

  const { api, el } = window.MeshUI;
  const T = window.MeshTracing;
  const PAGE = JSON.parse(document.getElementById("trace-page").textContent);
  const $ = (id) => document.getElementById(id);
  const MAX_INDENT = 24; // levels; deeper spans say their depth instead
  const MAX_VALUE = 2000; // characters of one attribute value shown
  const MAX_CHIPS = 3; // event labels beside a span's name
  const MAX_MARKERS = 100; // event markers drawn on one bar
  const MAX_LISTED = 500; // attributes, events and links listed in one span's details

  // ---- the model: pure, from the API's trace ----------------------------------------------
  const end = (s) => s.offset_ms + s.duration_ms;

  function failed(span) {
    const status = Number(span.attributes["http.response.status_code"] ?? span.attributes["http.status_code"]);
    return span.status === "error" || status >= 500;
  }

  // The client's time not covered by its servers' spans, split where they start and end.
  function networkOf(client, servers) {
    const from = client.offset_ms, to = end(client);
    const covered = servers.map((s) => [Math.max(from, s.offset_ms), Math.min(to, end(s))])
      .filter(([a, b]) => b > a).sort((a, b) => a[0] - b[0]);
    const merged = [];
    for (const [a, b] of covered) {
      const last = merged[merged.length - 1];
      if (last && a <= last[1]) last[1] = Math.max(last[1], b);
      else merged.push([a, b]);
    }
    const gaps = [];
    let at = from;
    for (const [a, b] of merged) {
      if (a > at) gaps.push({ from: at, to: a, where: at === from ? "before" : "between" });
      at = Math.max(at, b);
    }
    if (to > at) gaps.push({ from: at, to, where: merged.length ? "after" : "outside" });
    const skewed = servers.some((s) => s.offset_ms < from - 0.001 || end(s) > to + 0.001);
    return { servers, gaps, skewed, total: gaps.reduce((sum, g) => sum + g.to - g.from, 0) };
  }

  function model(trace) {
    const spans = trace.spans;
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const children = new Map();
    for (const s of spans) {
      if (s.parent_span_id && byId.has(s.parent_span_id) && s.parent_span_id !== s.span_id) {
        if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
        children.get(s.parent_span_id).push(s);
      }
    }
    // A hop: a CLIENT span answered by SERVER spans of another service (one per try).
    const hops = new Map();
    for (const s of spans) {
      if (s.kind !== "client") continue;
      const servers = (children.get(s.span_id) || []).filter((c) => c.kind === "server" && c.service !== s.service);
      if (servers.length) hops.set(s.span_id, networkOf(s, servers));
    }
    const services = [];
    const counts = new Map();
    for (const s of spans) {
      if (!counts.has(s.service)) services.push(s.service);
      counts.set(s.service, (counts.get(s.service) || 0) + 1);
    }
    const total = Math.max(0.001, ...spans.map(end));
    return { spans, byId, children, hops, services, counts, total,
             colors: T.serviceColors(services), errors: spans.filter(failed).length,
             depth: spans.reduce((d, s) => Math.max(d, s.depth + 1), 0) };
  }

  // ---- event words ------------------------------------------------------------------------
  const cut = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
  const show = (value) => (typeof value === "string" ? value : JSON.stringify(value));

  function fillIn(template, attributes) {
    return template.replace(/\{([\w.]+)\}/g, (_, key) => (key in attributes && attributes[key] !== null ? cut(show(attributes[key]), 60) : ""))
      .replace(/\s*\(\s*\)/g, "").replace(/\s*#\s*$/, "").trim();
  }

  function eventInfo(event) {
    const words = PAGE.events[event.name];
    const attributes = event.attributes || {};
    if (!words) return { label: cut(event.name || "(unnamed event)", 60), description: "", tone: "other", known: false };
    return { label: fillIn(words.label, attributes) || event.name, description: fillIn(words.description, attributes),
             tone: words.tone, known: true };
  }

  function attributeLines(attributes) {
    return Object.keys(attributes).sort().map((k) => `${k} = ${cut(show(attributes[k]), 200)}`);
  }

  // ---- drawing ----------------------------------------------------------------------------
  const pct = (ms, m) => `${Math.max(0, Math.min(100, (ms / m.total) * 100)).toFixed(3)}%`;

  // Round ticks (1, 2 or 5 times a power of ten) about a quarter of the trace apart; the
  // rows' grid lines repeat at the same step (--tick).
  function step(total) {
    const raw = total / 4, power = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw * 0.999) || raw;
  }

  function axis(m) {
    const every = step(m.total);
    const ticks = [];
    for (let at = 0; at <= m.total * 1.0001 && ticks.length < 12; at += every) {
      const f = at / m.total;
      ticks.push(el("span", { class: `tick${f > 0.93 ? " last" : ""}`, style: `left:${(f * 100).toFixed(3)}%` },
        at ? T.duration(at) : "0 ms"));
    }
    $("wf-axis").replaceChildren(...ticks);
    $("waterfall").style.setProperty("--tick", `${((every / m.total) * 100).toFixed(4)}%`);
  }

  function legend(m) {
    $("service-legend").replaceChildren(...m.services.map((s) => el("li", { class: "svc-chip", title: `${s}: ${m.counts.get(s)} span${m.counts.get(s) === 1 ? "" : "s"}` },
      el("i", { class: "svc-dot", style: `background:${m.colors.get(s)}` }), s,
      el("span", { class: "muted" }, String(m.counts.get(s))))));
  }

  function row(span, index, m) {
    const color = m.colors.get(span.service);
    const next = m.spans[index + 1];
    const parent = next && next.depth > span.depth;
    const hop = m.hops.get(span.span_id);
    const bad = failed(span);
    const events = span.events || [];
    const toggle = parent
      ? el("button", { type: "button", class: "wf-toggle", "aria-label": "collapse the span's children", title: "collapse / expand its children" }, "▾")
      : el("span", { class: "wf-toggle leaf", "aria-hidden": "true" });
    const chips = events.slice(0, MAX_CHIPS).map((e) => {
      const info = eventInfo(e);
      return el("span", { class: `ev-chip ${info.tone}`, title: info.description || info.label }, info.label);
    });
    if (events.length > MAX_CHIPS) chips.push(el("span", { class: "ev-chip more" }, `+${events.length - MAX_CHIPS}`));
    const indent = Math.min(span.depth, MAX_INDENT);
    const label = el("div", { class: "wf-label", style: `padding-left:${8 + indent * 14}px`, title: `${span.service} · ${span.name}` },
      toggle,
      el("i", { class: "svc-dot", style: `background:${color}` }),
      el("span", { class: "wf-service" }, span.service),
      el("span", { class: "wf-name" }, span.name || "(unnamed)"),
      span.depth > MAX_INDENT ? el("span", { class: "ev-chip more" }, `depth ${span.depth}`) : null,
      bad ? el("span", { class: "err-chip", title: span.status_message || "error" }, "!") : null,
      span.parent_missing ? el("span", { class: "ev-chip more", title: "its parent span is not stored (not sampled, or not arrived)" }, "parent missing") : null,
      chips);
    const timeline = el("div", { class: "wf-timeline" });
    const bar = el("div", { class: `wf-bar${bad ? " bad" : ""}`,
      style: `left:${pct(span.offset_ms, m)};width:${pct(span.duration_ms, m)};background:${color}` });
    timeline.append(bar);
    if (hop) {
      for (const g of hop.gaps) {
        timeline.append(el("div", { class: "wf-net", dataset: { where: g.where },
          style: `left:${pct(g.from, m)};width:${pct(g.to - g.from, m)}`,
          title: `network ${T.duration(g.to - g.from)} (${g.where} the server span)` }));
      }
    }
    for (const e of events.slice(0, MAX_MARKERS)) {
      const info = eventInfo(e);
      const at = e.offset_ms - span.offset_ms;
      timeline.append(el("span", { class: `wf-event ${info.tone}`, style: `left:${pct(e.offset_ms, m)}`,
        title: [`${info.label} at +${T.duration(at)} into the span`, info.description, ...attributeLines(e.attributes || {})].filter(Boolean).join("\n"),
        "aria-label": info.label, dataset: { event: e.name } }));
    }
    const startFraction = span.offset_ms / m.total, endFraction = end(span) / m.total;
    const text = T.duration(span.duration_ms) + (hop ? ` · network ${T.duration(hop.total)}` : "");
    timeline.append(endFraction < 0.8
      ? el("span", { class: "wf-duration", style: `left:calc(${pct(end(span), m)} + 6px)` }, text)
      : startFraction > 0.25
        ? el("span", { class: "wf-duration", style: `right:calc(${(100 - startFraction * 100).toFixed(3)}% + 6px)` }, text)
        : el("span", { class: "wf-duration inside", style: `right:calc(${(100 - endFraction * 100).toFixed(3)}% + 6px)` }, text));
    const node = el("div", { class: `wf-row${bad ? " failed" : ""}`, role: "treeitem", tabindex: "0",
      "aria-level": String(span.depth + 1), "aria-expanded": parent ? "true" : null, "aria-selected": "false",
      dataset: { spanId: span.span_id, depth: String(span.depth), service: span.service, kind: span.kind } },
      label, timeline);
    return node;
  }

  // ---- the span's details -----------------------------------------------------------------
  function kv(name, ...value) {
    return [el("dt", {}, name), el("dd", {}, ...value)];
  }

  function detail(span, m) {
    const hop = m.hops.get(span.span_id);
    const parent = span.parent_span_id ? m.byId.get(span.parent_span_id) : null;
    const facts = el("dl", { class: "facts" },
      kv("Service", span.service, span.version ? el("span", { class: "muted" }, ` ${span.version}`) : null),
      kv("Operation", span.name || "(unnamed)"),
      kv("Kind", span.kind),
      kv("Status", el("span", { class: `state ${failed(span) ? "bad" : span.status === "ok" ? "ok" : "idle"}` }, span.status),
        span.status_message ? ` ${span.status_message}` : null),
      kv("Start", `+${T.duration(span.offset_ms)}`, el("span", { class: "muted" }, ` · ${T.clock(span.start, true)}`)),
      kv("Duration", T.duration(span.duration_ms)),
      kv("Span id", el("code", {}, span.span_id)),
      kv("Parent", span.parent_span_id ? el("code", {}, span.parent_span_id) : "none (root)",
        parent ? el("span", { class: "muted" }, ` ${parent.service} · ${parent.name}`) : span.parent_span_id ? el("span", { class: "muted" }, " (not stored)") : null));
    const parts = [facts];
    if (hop) {
      const server = hop.servers[0];
      const pieces = hop.gaps.map((g) => `${T.duration(g.to - g.from)} ${g.where === "between" ? "between its server spans" : g.where === "outside" ? "with no server span inside it" : `${g.where} ${server.service}'s server span`}`);
      parts.push(el("p", { class: "network-line" }, el("i", { class: "key-bar key-net" }),
        el("strong", {}, `network ${T.duration(hop.total)}`),
        ` of ${T.duration(span.duration_ms)} calling ${server.service}${hop.servers.length > 1 ? ` (${hop.servers.length} server spans: one per try)` : ""}`,
        pieces.length ? `: ${pieces.join(", ")}` : "",
        ". The rest is the server's own time.",
        hop.skewed ? el("span", { class: "muted" }, " The clocks disagree: a server span reaches outside its client span.") : null));
    }
    const more = (count) => (count > MAX_LISTED ? el("p", { class: "muted small" }, `The first ${MAX_LISTED} of ${count.toLocaleString()} are listed.`) : null);
    const keys = Object.keys(span.attributes || {}).sort();
    parts.push(el("h3", {}, `Attributes (${keys.length})`));
    parts.push(keys.length
      ? el("table", { class: "table kv" }, el("tbody", {}, keys.slice(0, MAX_LISTED).map((k) => el("tr", {},
        el("th", { class: "mono" }, k), el("td", { class: "mono" }, cut(show(span.attributes[k]), MAX_VALUE))))))
      : el("p", { class: "muted small" }, "No attributes."), more(keys.length));
    const events = span.events || [];
    parts.push(el("h3", {}, `Events (${events.length})`));
    parts.push(events.length
      ? el("table", { class: "table kv events" }, el("thead", {}, el("tr", {}, el("th", { class: "num" }, "at"), el("th", {}, "event"), el("th", {}, "attributes"))),
        el("tbody", {}, events.slice(0, MAX_LISTED).map((e) => {
          const info = eventInfo(e);
          return el("tr", { dataset: { event: e.name } },
            el("td", { class: "num", title: `+${T.duration(e.offset_ms)} from the trace's start` }, `+${T.duration(e.offset_ms - span.offset_ms)}`),
            el("td", {}, el("span", { class: `ev-chip ${info.tone}` }, info.label),
              info.known && info.label !== e.name ? el("code", { class: "ev-name" }, e.name) : null,
              info.description ? el("div", { class: "muted small" }, info.description) : null),
            el("td", { class: "mono small" }, attributeLines(e.attributes || {}).map((line) => el("div", {}, line))));
        })))
      : el("p", { class: "muted small" }, "No events."), more(events.length));
    if ((span.links || []).length) {
      parts.push(el("h3", {}, `Links (${span.links.length})`));
      parts.push(el("ul", { class: "links" }, span.links.slice(0, MAX_LISTED).map((l) => el("li", {},
        T.traceId(l.trace_id) ? el("a", { href: `/traces/${l.trace_id}` }, l.trace_id) : el("code", {}, l.trace_id || "?"),
        " · ", el("code", {}, l.span_id || "?")))));
    }
    return el("div", { class: "wf-detail", dataset: { detailOf: span.span_id } }, ...parts);
  }

  // ---- the page ---------------------------------------------------------------------------
  let m = null;
  let shown = 0;

  function renderMore() {
    const upto = Math.min(m.spans.length, shown + PAGE.max_rows);
    const fragment = document.createDocumentFragment();
    for (let i = shown; i < upto; i++) fragment.append(row(m.spans[i], i, m));
    $("wf-rows").append(fragment);
    shown = upto;
    $("wf-more").hidden = shown >= m.spans.length;
    $("wf-more-text").textContent = `Showing the first ${shown.toLocaleString()} of ${m.spans.length.toLocaleString()} spans (tree order).`;
    $("wf-more-button").textContent = `Show ${Math.min(PAGE.max_rows, m.spans.length - shown).toLocaleString()} more`;
  }

  function toggleDetail(rowEl) {
    const id = rowEl.dataset.spanId;
    const open = rowEl.nextElementSibling && rowEl.nextElementSibling.dataset.detailOf === id;
    if (open) {
      rowEl.nextElementSibling.remove();
      rowEl.classList.remove("selected");
      rowEl.setAttribute("aria-selected", "false");
      return;
    }
    rowEl.after(detail(m.byId.get(id), m));
    rowEl.classList.add("selected");
    rowEl.setAttribute("aria-selected", "true");
  }

  // Collapsing a span hides the rows below it that are deeper (its subtree in tree order).
  function toggleChildren(rowEl) {
    const collapsed = rowEl.classList.toggle("collapsed");
    rowEl.setAttribute("aria-expanded", collapsed ? "false" : "true");
    const depth = Number(rowEl.dataset.depth);
    let hiddenUnder = null;
    for (let node = rowEl.nextElementSibling; node; node = node.nextElementSibling) {
      if (node.classList.contains("wf-detail")) { node.hidden = node.previousElementSibling.hidden; continue; }
      const d = Number(node.dataset.depth);
      if (d <= depth) break;
      if (!collapsed && hiddenUnder !== null && d <= hiddenUnder) hiddenUnder = null;
      node.hidden = collapsed || hiddenUnder !== null;
      if (!collapsed && hiddenUnder === null && node.classList.contains("collapsed")) hiddenUnder = d;
    }
  }

  function summary(trace) {
    const title = $("trace-title");
    if (trace.root) {
      const color = m.colors.get(trace.root.service);
      title.replaceChildren(el("i", { class: "svc-dot big", style: `background:${color}` }),
        el("span", { class: "root-service" }, trace.root.service), " ", el("span", { class: "root-op" }, trace.root.operation));
    } else {
      title.replaceChildren(el("span", {}, `Trace ${trace.trace_id.slice(0, 8)}`),
        el("span", { class: "muted small" }, " root span not stored (not sampled, or not arrived)"));
    }
    $("t-duration").textContent = T.duration(trace.duration_ms);
    $("t-spans").textContent = m.spans.length.toLocaleString();
    $("t-services").textContent = String(m.services.length);
    $("t-errors").textContent = String(m.errors);
    $("t-errors").className = `value ${m.errors ? "bad" : "ok"}`;
    $("t-depth").textContent = String(m.depth);
    $("t-start").replaceChildren(T.clock(trace.start, true), el("span", { class: "muted small" }, ` · ${T.ago(trace.start)}`));
    document.title = `${trace.root ? `${trace.root.service} ${trace.root.operation}` : "Trace"} · ${trace.trace_id.slice(0, 8)} · meshui`;
  }

  function render(trace) {
    m = model(trace);
    summary(trace);
    axis(m);
    legend(m);
    $("wf-rows").replaceChildren();
    shown = 0;
    if (m.spans.length) renderMore();
    else $("wf-rows").append(el("p", { class: "muted empty-note" }, "The trace is stored, but none of its spans could be read."));
    $("trace-state").hidden = true;
    $("trace-view").hidden = false;
  }

  // The empty states' icon: a circle with a mark (SVG elements need their namespace).
  function icon(path) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 64 64");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "state-icon");
    for (const [tag, attrs] of [["circle", { cx: "32", cy: "32", r: "20" }], ["path", { d: path }]]) {
      const shape = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) shape.setAttribute(k, v);
      svg.append(shape);
    }
    return svg;
  }

  function state(name, ...children) {
    const node = $("trace-state");
    node.dataset.state = name;
    node.removeAttribute("role");
    node.replaceChildren(icon(name === "not-found" ? "M24 32h16" : "M32 22v12M32 40v2"), ...children);
    node.hidden = false;
    $("trace-view").hidden = true;
  }

  function notFound() {
    state("not-found",
      el("h1", {}, "Trace not found"),
      el("p", {}, "No trace ", el("code", {}, PAGE.trace_id), " is stored. It may have expired: traces are kept ",
        PAGE.ttl, ", and the oldest are evicted sooner when the store is full. Or it was never sampled, or never reached a collector."),
      el("p", { class: "actions" }, el("a", { class: "button", href: "/traces" }, "Search traces"),
        PAGE.link ? el("a", { class: "button", href: PAGE.link, target: "_blank", rel: "noopener noreferrer" }, "Look in the long-term backend ↗") : null));
  }

  function failedToLoad(found) {
    const retry = el("button", { type: "button", class: "button", id: "retry" }, "Retry");
    retry.addEventListener("click", load);
    state("error", el("h1", {}, "Could not load the trace"), el("p", {}, found.text),
      el("p", { class: "actions" }, found.login
        ? el("a", { class: "button", href: `/accounts/login/?next=${encodeURIComponent(location.pathname)}` }, "Log in")
        : found.retry ? retry : null, el("a", { class: "button", href: "/traces" }, "Search traces")));
  }

  async function load() {
    const answer = await api("GET", `/api/v1/traces/${PAGE.trace_id}`).catch(() => null);
    if (answer && answer.status === 200 && answer.body && Array.isArray(answer.body.spans)) render(answer.body);
    else if (answer && answer.status === 404) notFound();
    else failedToLoad(T.problem(answer && answer.status === 200 ? { status: 500, body: null } : answer, "loading the trace"));
  }

  $("wf-rows").addEventListener("click", (event) => {
    const rowEl = event.target.closest(".wf-row");
    if (!rowEl) return;
    if (event.target.closest(".wf-toggle:not(.leaf)")) toggleChildren(rowEl);
    else if (!window.getSelection().toString()) toggleDetail(rowEl);
  });
  $("wf-rows").addEventListener("keydown", (event) => {
    const rowEl = event.target.closest(".wf-row");
    if (!rowEl || event.target !== rowEl) return;
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggleDetail(rowEl); }
    else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      let next = event.key === "ArrowDown" ? rowEl.nextElementSibling : rowEl.previousElementSibling;
      while (next && (!next.classList.contains("wf-row") || next.hidden)) next = event.key === "ArrowDown" ? next.nextElementSibling : next.previousElementSibling;
      if (next) next.focus();
    }
  });
  $("wf-more-button").addEventListener("click", renderMore);
  // Back to the search this trace was opened from, with its filters.
  try {
    const from = new URL(document.referrer);
    if (from.origin === location.origin && from.pathname === "/traces") $("back-to-search").href = from.pathname + from.search;
  } catch (e) { /* no referrer */ }

  window.MeshWaterfall = { model, networkOf, eventInfo };
  load();
})();
