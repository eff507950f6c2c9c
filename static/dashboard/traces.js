// The trace search (/traces): the filter form <-> the query string (a shareable URL, the
// contract in docs/ui.md), GET /api/v1/traces, then a Plotly scatter of duration over time
// (one dot per trace, errors red, click opens the waterfall) and a table (a row opens it).
// The limits and ranges come from the server (#traces-page, meshui.dashboard.trace_pages).
(function () {
  "use strict";

  const { api, el } = window.MeshUI;
  const T = window.MeshTracing;
  const PAGE = JSON.parse(document.getElementById("traces-page").textContent);
  const $ = (id) => document.getElementById(id);
  const PLOTLY_CONFIG = { displayModeBar: false, responsive: true };
  // Query-string names <-> inputs; the time range is `last` (seconds back from now) or
  // `start`/`end` (epoch seconds), handled apart.
  const FIELDS = { service: "f-service", source: "f-source", target: "f-target", operation: "f-operation",
    status: "f-status", min_ms: "f-min", max_ms: "f-max", limit: "f-limit" };
  // The API's 400 names a parameter: the field to mark.
  const FIELD_OF = { ...FIELDS, start: "f-start", end: "f-end", trace_id: "f-trace" };
  const SORTS = {
    newest: (a, b) => b.start - a.start,
    longest: (a, b) => b.duration_ms - a.duration_ms || b.start - a.start,
    shortest: (a, b) => a.duration_ms - b.duration_ms || b.start - a.start,
    spans: (a, b) => b.span_count - a.span_count || b.start - a.start,
  };
  const MAX_SUGGESTIONS = 200;

  let traces = [];
  let searched = null; // the query of the results shown
  let loaded = { start: null, end: null }; // start/end from the URL, kept exact while untouched
  let generation = 0;

  // ---- the form and the query string --------------------------------------------------------
  function pad(n) { return String(n).padStart(2, "0"); }

  function localInput(epochSeconds) {
    const d = new Date(epochSeconds * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function epochOf(input) {
    if (!input.value) return null;
    const ms = new Date(input.value).getTime();
    return isFinite(ms) ? ms / 1000 : NaN;
  }

  function rangeLabel(seconds) {
    const known = PAGE.ranges.find((r) => r.seconds === seconds);
    return known ? known.label : `last ${seconds} s`;
  }

  function fill(params) {
    for (const [name, id] of Object.entries(FIELDS)) $(id).value = params.get(name) || "";
    if (!$("f-limit").value) $("f-limit").value = String(PAGE.limit);
    $("f-trace").value = params.get("trace_id") || "";
    const start = params.get("start"), end = params.get("end");
    loaded = { start: null, end: null };
    if (start || end) {
      $("f-range").value = "custom";
      for (const [name, value] of [["start", start], ["end", end]]) {
        const input = $(`f-${name}`);
        const number = Number(value);
        input.value = value && isFinite(number) ? localInput(number) : "";
        // Kept as given (fractional seconds, or a value the API should refuse by name).
        loaded[name] = value ? { value, shown: input.value } : null;
      }
    } else {
      const last = Number(params.get("last"));
      const known = PAGE.ranges.some((r) => r.seconds === last);
      $("f-range").value = known ? String(last) : String(PAGE.default_range_s);
      $("f-start").value = $("f-end").value = "";
    }
    $("sort").value = SORTS[params.get("sort")] ? params.get("sort") : "newest";
    showCustom();
  }

  function showCustom() {
    $("custom-range").hidden = $("f-range").value !== "custom";
  }

  // The page's query string: what a person would share (relative ranges stay relative).
  function pageQuery() {
    const q = new URLSearchParams();
    for (const [name, id] of Object.entries(FIELDS)) {
      const value = $(id).value.trim();
      if (value && !(name === "limit" && value === String(PAGE.limit))) q.set(name, value);
    }
    if ($("f-range").value === "custom") {
      for (const name of ["start", "end"]) {
        const input = $(`f-${name}`);
        const kept = loaded[name];
        if (kept && input.value === kept.shown) q.set(name, kept.value);
        else if (input.value) q.set(name, String(epochOf(input)));
      }
    } else if (Number($("f-range").value) !== PAGE.default_range_s) {
      q.set("last", $("f-range").value);
    }
    if ($("sort").value !== "newest") q.set("sort", $("sort").value);
    return q;
  }

  // The API's query for the page's: `last` becomes a start, the page's own keys go.
  function apiQuery(q) {
    const out = new URLSearchParams(q);
    out.delete("sort");
    out.delete("last");
    if (q.has("last")) out.set("start", String(Math.floor(Date.now() / 1000) - Number(q.get("last"))));
    if (!out.has("limit")) out.set("limit", String(PAGE.limit));
    return out;
  }

  // "service catalog · duration ≥ 200 ms · in the last hour": the filters, as words.
  function describe(q) {
    const parts = [];
    if (q.get("service")) parts.push(`service ${q.get("service")}`);
    if (q.get("source") || q.get("target")) parts.push(`calls ${q.get("source") || "?"} → ${q.get("target") || "?"}`);
    if (q.get("operation")) parts.push(`operation ${q.get("operation")}`);
    if (q.get("status")) parts.push(`status ${q.get("status")}`);
    const min = q.get("min_ms"), max = q.get("max_ms");
    if (min && max) parts.push(`duration ${min}–${max} ms`);
    else if (min) parts.push(`duration ≥ ${min} ms`);
    else if (max) parts.push(`duration ≤ ${max} ms`);
    let range;
    if (q.has("start") || q.has("end")) {
      const when = (name) => (isFinite(Number(q.get(name))) ? T.clock(Number(q.get(name)), true) : q.get(name));
      range = q.has("start") && q.has("end") ? `between ${when("start")} and ${when("end")}`
        : q.has("start") ? `since ${when("start")}` : `in the hour before ${when("end")}`;
    } else {
      range = `in the ${rangeLabel(q.has("last") ? Number(q.get("last")) : PAGE.default_range_s)}`;
    }
    return { filters: parts, range };
  }

  // ---- states -------------------------------------------------------------------------------
  function clearErrors() {
    $("search-error").hidden = true;
    $("retry").hidden = true;
    for (const id of Object.values(FIELD_OF)) {
      $(id).classList.remove("invalid");
      $(id).removeAttribute("aria-invalid");
    }
    $("trace-id-error").hidden = true;
  }

  function showError(found) {
    const text = $("search-error-text");
    text.replaceChildren(el("strong", {}, "The search failed. "), found.text);
    if (found.parameter && FIELD_OF[found.parameter]) {
      const field = $(FIELD_OF[found.parameter]);
      if (found.parameter === "start" || found.parameter === "end") {
        $("f-range").value = "custom";
        showCustom();
      }
      field.classList.add("invalid");
      field.setAttribute("aria-invalid", "true");
      text.append(" Fix the highlighted field and search again.");
    }
    if (found.login) {
      text.append(" ", el("a", { href: `/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}` }, "Log in"));
    }
    $("retry").hidden = !found.retry;
    $("search-error").hidden = false;
  }

  function setLoading(on, q) {
    $("loading").hidden = !on;
    $("search").disabled = on;
    $("scatter-card").classList.toggle("busy", on);
    $("table-card").classList.toggle("busy", on);
    if (on) $("loading-text").textContent = `Searching ${describe(q).range}…`;
  }

  // ---- search -------------------------------------------------------------------------------
  async function search(how) {
    const q = pageQuery();
    const url = location.pathname + (q.toString() ? `?${q}` : "");
    if (how === "push" && url !== location.pathname + location.search) history.pushState(null, "", url);
    else if (how !== "pop") history.replaceState(null, "", url);
    clearErrors();
    setLoading(true, q);
    const mine = ++generation;
    const answer = await api("GET", `/api/v1/traces?${apiQuery(q)}`).catch(() => null);
    if (mine !== generation) return; // a newer search has started
    setLoading(false);
    if (!answer || answer.status !== 200 || !answer.body || !Array.isArray(answer.body.traces)) {
      showError(T.problem(answer && answer.status === 200 ? { status: 500, body: null } : answer, "searching traces"));
      return;
    }
    searched = q;
    traces = answer.body.traces;
    render(answer.body);
  }

  function render(body) {
    const count = traces.length;
    const limit = Number(apiQuery(searched).get("limit"));
    const { filters, range } = describe(searched);
    $("result-count").textContent = count ? `${count.toLocaleString()} trace${count === 1 ? "" : "s"}` : "";
    const notes = [];
    if (count) notes.push(`${filters.length ? filters.join(" · ") + " · " : ""}${range}`);
    if (count === limit) notes.push(`the newest ${limit}: page back for older ones`);
    if (body.truncated) notes.push(`the search stopped after reading ${body.examined.toLocaleString()} stored traces: narrow the time range or add a filter`);
    $("result-note").textContent = notes.join(" — ");
    $("empty").hidden = count > 0;
    $("scatter").hidden = count === 0;
    $("table-card").hidden = count === 0;
    if (!count) {
      $("empty-title").textContent = filters.length ? "No traces match" : "No traces yet";
      $("empty-filters").textContent = filters.length
        ? `No traces match ${filters.join(" · ")} ${range}.`
        : `No traces were stored ${range}.`;
      $("empty-hint").textContent = body.truncated
        ? `The search read ${body.examined.toLocaleString()} stored traces and stopped: narrow the time range or add a service.`
        : filters.length
          ? `Widen the time range or remove a filter. Only sampled requests are traced, and traces are kept ${PAGE.ttl}.`
          : "Send traffic through the sidecars (make demo), or point an OpenTelemetry SDK at the collector on :4318.";
      if (window.Plotly && $("scatter").data) Plotly.purge($("scatter"));
    } else {
      drawScatter();
    }
    renderTable();
    suggest();
    pager(limit);
  }

  // ---- scatter ------------------------------------------------------------------------------
  function drawScatter() {
    const durations = traces.map((t) => t.duration_ms);
    const low = Math.max(Math.min(...durations), 0.001), high = Math.max(...durations, 0.001);
    const log = high / low > 100;
    const dot = (t) => Math.min(22, 7 + Math.sqrt(t.span_count) * 1.6);
    const series = (error) => {
      const list = traces.filter((t) => t.error === error);
      return {
        type: "scatter", mode: "markers", name: error ? "error" : "ok",
        x: list.map((t) => new Date(t.start * 1000)), y: list.map((t) => Math.max(t.duration_ms, log ? 0.001 : 0)),
        customdata: list.map((t) => t.trace_id),
        text: list.map((t) => `<b>${T.escape(t.root ? t.root.service : "root not stored")}</b> ${T.escape(t.root ? t.root.operation : "")}`
          + `<br>${T.duration(t.duration_ms)} · ${t.span_count} span${t.span_count === 1 ? "" : "s"} · ${t.services.length} service${t.services.length === 1 ? "" : "s"}`
          + `<br>${T.clock(t.start)}${error ? " · <b>error</b>" : ""}`),
        hovertemplate: "%{text}<extra></extra>",
        marker: { size: list.map(dot), color: error ? "#f85149" : "#58a6ff", opacity: 0.85,
                  line: { width: 1, color: error ? "#ffa198" : "#a5d6ff" } },
      };
    };
    const layout = {
      margin: { l: 60, r: 16, t: 8, b: 36 }, height: 240, showlegend: false,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", hovermode: "closest",
      font: { color: "#9aa7b8", size: 11 },
      hoverlabel: { bgcolor: "#1c2330", bordercolor: "#30363d", font: { color: "#e6edf3" } },
      xaxis: { type: "date", gridcolor: "#243044", zeroline: false },
      yaxis: { type: log ? "log" : "linear", gridcolor: "#243044", zeroline: false, rangemode: "tozero",
               title: { text: log ? "duration (ms, log)" : "duration (ms)", font: { size: 11 } } },
    };
    const gd = $("scatter");
    Plotly.react(gd, [series(false), series(true)], layout, PLOTLY_CONFIG);
    if (!gd.dataset.clicks) {
      gd.dataset.clicks = "1";
      gd.on("plotly_click", (event) => {
        const point = event.points && event.points[0];
        if (point && T.traceId(point.customdata)) location.href = `/traces/${point.customdata}`;
      });
    }
  }

  // ---- table --------------------------------------------------------------------------------
  function renderTable() {
    const body = document.querySelector("#trace-table tbody");
    const sorted = [...traces].sort(SORTS[$("sort").value] || SORTS.newest);
    const longest = Math.max(...traces.map((t) => t.duration_ms), 0.001);
    const colors = T.serviceColors(traces.flatMap((t) => t.services));
    const rows = sorted.map((t) => {
      const href = `/traces/${t.trace_id}`;
      const root = t.root
        ? [el("i", { class: "svc-dot", style: `background:${colors.get(t.root.service) || "#8b949e"}` }),
           el("span", { class: "root-service" }, t.root.service), " ",
           el("span", { class: "root-op" }, t.root.operation)]
        : [el("span", { class: "muted" }, "root span not stored")];
      const shown = t.services.slice(0, 4);
      const services = shown.map((s) => el("span", { class: "svc-chip", title: s },
        el("i", { class: "svc-dot", style: `background:${colors.get(s)}` }), s));
      if (t.services.length > shown.length) {
        services.push(el("span", { class: "muted small", title: t.services.slice(4).join(", ") }, `+${t.services.length - shown.length}`));
      }
      const row = el("tr", { class: "trace-row", dataset: { traceId: t.trace_id } },
        el("td", { class: "started", title: T.clock(t.start, true) }, T.clock(t.start),
          el("span", { class: "muted small ago" }, T.ago(t.start))),
        el("td", { class: "root name" }, el("a", { href, class: "trace-link" }, root),
          el("code", { class: "trace-short", title: t.trace_id }, t.trace_id.slice(0, 8))),
        el("td", { class: "num duration" },
          el("span", { class: "duration-bar" }, el("i", { style: `width:${Math.max(2, t.duration_ms / longest * 100).toFixed(1)}%`, class: t.error ? "bad" : "" })),
          T.duration(t.duration_ms)),
        el("td", { class: "num" }, String(t.span_count)),
        el("td", { class: "services" }, services),
        el("td", {}, el("span", { class: `state ${t.error ? "bad" : "ok"}` }, t.error ? "error" : "ok")));
      row.addEventListener("click", (event) => {
        if (event.target.closest("a") || window.getSelection().toString()) return;
        location.href = href;
      });
      return row;
    });
    body.replaceChildren(...rows);
  }

  function suggest() {
    const fillList = (id, names) => $(id).replaceChildren(
      ...[...new Set(names)].sort().slice(0, MAX_SUGGESTIONS).map((name) => el("option", { value: name })));
    fillList("known-services", traces.flatMap((t) => t.services));
    fillList("known-operations", traces.flatMap((t) => t.operations));
  }

  // Older traces: the same search ending just before the oldest trace listed (docs/api.md).
  function pager(limit) {
    $("pager").hidden = traces.length < limit;
    if (traces.length < limit) return;
    const oldest = Math.min(...traces.map((t) => t.start));
    const q = new URLSearchParams(searched);
    const api = apiQuery(searched);
    q.delete("last");
    q.set("end", (oldest - 0.000001).toFixed(6));
    if (api.has("start")) q.set("start", api.get("start"));
    $("older").href = `/traces?${q}`;
  }

  // ---- wiring -------------------------------------------------------------------------------
  function openTrace() {
    const id = T.traceId($("f-trace").value);
    if (id) {
      location.href = `/traces/${id}`;
      return;
    }
    const length = $("f-trace").value.trim().length;
    $("f-trace").classList.add("invalid");
    $("trace-id-error").textContent = `A trace id is 32 hexadecimal digits, not all zero (this has ${length} character${length === 1 ? "" : "s"}).`;
    $("trace-id-error").hidden = false;
  }

  $("filters").addEventListener("submit", (event) => { event.preventDefault(); search("push"); });
  $("f-range").addEventListener("change", () => {
    showCustom();
    if ($("f-range").value === "custom" && !$("f-start").value) {
      $("f-start").value = localInput(Date.now() / 1000 - PAGE.default_range_s);
    }
  });
  $("f-trace").addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); openTrace(); }
  });
  $("f-trace").addEventListener("input", () => { $("f-trace").classList.remove("invalid"); $("trace-id-error").hidden = true; });
  $("open-trace").addEventListener("click", openTrace);
  $("clear-filters").addEventListener("click", () => { fill(new URLSearchParams()); search("push"); });
  $("retry").addEventListener("click", () => search("replace"));
  $("sort").addEventListener("change", () => {
    renderTable();
    history.replaceState(null, "", location.pathname + (pageQuery().toString() ? `?${pageQuery()}` : ""));
  });
  window.addEventListener("popstate", () => { fill(new URLSearchParams(location.search)); search("pop"); });

  fill(new URLSearchParams(location.search));
  if ($("f-trace").value) openTrace(); // a ?trace_id= the server could not open: say why
  search("replace");
})();
