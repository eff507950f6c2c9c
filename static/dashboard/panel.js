// Where the time goes for one edge, service, version or instance: a live latency heatmap
// (GET /api/v1/heatmap) whose cells open their exemplar traces, and golden metrics over time
// (GET /api/v1/series) as Plotly line charts, effective vs actual in the manner of
// `linkerd viz routes -o wide`. The graph page's edge detail and the service page mount it:
//
//   const panel = MeshPanel.mount(element, {source, target} | {service, version?, instance?});
//   panel.scope({service, instance});  panel.stop();
//
// Everything that came from the network (names, trace ids) is text: built with MeshUI.el.
(() => {
  "use strict";
  const { api, el, fmt } = window.MeshUI;

  // The ranges a user picks; a heatmap column and a chart point are window / 60 seconds.
  const RANGES = [{ label: "5 min", window: 300 }, { label: "15 min", window: 900 }, { label: "1 h", window: 3600 }];
  const EVENTS = ["retries", "timeouts", "ejections", "rate_limited"];
  const EVENT_COLORS = { retries: "#e3b341", timeouts: "#f85149", ejections: "#bc8cff", rate_limited: "#58a6ff" };
  const PLOT = { displayModeBar: false, responsive: true };

  const stepOf = (seconds) => Math.min(60, Math.max(1, Math.ceil(seconds / 60)));
  const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
  const clock = (epoch) => new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });

  function chartLayout(title, unit, extra) {
    return {
      title: { text: title, font: { size: 12, color: "#c9d1d9" }, x: 0, xanchor: "left" },
      margin: { l: 48, r: 8, t: 26, b: 24 }, height: 180,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: "#9aa7b8", size: 10 }, showlegend: true,
      legend: { orientation: "h", x: 0, y: -0.2, font: { size: 10 } },
      xaxis: { type: "date", gridcolor: "#243044", tickformat: "%H:%M" },
      yaxis: { gridcolor: "#243044", zeroline: false, rangemode: "tozero", ticksuffix: unit },
      ...extra,
    };
  }

  function mount(root, initialScope) {
    let scope = { ...initialScope };
    let range = RANGES[0];
    let timer = null;
    let heatmap = null;
    let stopped = false;
    let selected = null; // {start, row, low} of the clicked cell, kept across refreshes
    let generation = 0; // a scope or range change makes answers still in flight stale

    const rangeNav = el("nav", { class: "window-choices panel-ranges", "aria-label": "Range" },
      RANGES.map((r) => el("a", { href: "#", dataset: { window: String(r.window) } }, r.label)));
    const status = el("span", { class: "muted small panel-status", role: "status" });
    const heat = el("div", { class: "heatmap", role: "img", "aria-label": "Latency heatmap" });
    const heatEmpty = el("p", { class: "muted empty-note", hidden: true });
    const cell = el("div", { class: "cell-traces", hidden: true, "aria-live": "polite" });
    const charts = {
      rate: el("div", { class: "chart", dataset: { chart: "rate" } }),
      success: el("div", { class: "chart", dataset: { chart: "success" } }),
      latency: el("div", { class: "chart", dataset: { chart: "latency" } }),
      events: el("div", { class: "chart", dataset: { chart: "events" } }),
    };
    root.replaceChildren(
      el("div", { class: "panel-head" }, rangeNav, status),
      el("h3", { class: "panel-title" }, "Latency heatmap",
        el("span", { class: "muted small" }, " · colour: requests · lines: p50, p95, p99 · dotted: policy revisions · click a cell for its traces")),
      el("div", { class: "panel-heatmap" }, heat, heatEmpty),
      cell,
      el("div", { class: "panel-charts" }, Object.values(charts)));

    rangeNav.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-window]");
      if (!link) return;
      event.preventDefault();
      range = RANGES.find((r) => String(r.window) === link.dataset.window) || RANGES[0];
      selected = null;
      cell.hidden = true;
      refresh();
    });

    function markRange() {
      for (const link of rangeNav.querySelectorAll("a")) {
        const current = link.dataset.window === String(range.window);
        link.classList.toggle("current", current);
        if (current) link.setAttribute("aria-current", "true"); else link.removeAttribute("aria-current");
      }
    }

    function what() {
      if (scope.source) return `${scope.source} → ${scope.target}${scope.version ? ` (${scope.version})` : ""}`;
      return scope.instance ? `instance ${scope.instance}` : scope.version ? `${scope.service} ${scope.version}` : scope.service;
    }

    async function revisionsIn(seconds) {
      const listed = await api("GET", "/api/v1/policy/revisions?per_page=20").catch(() => null);
      const since = Date.now() - seconds * 1000;
      return listed && listed.status === 200
        ? listed.body.revisions.filter((r) => Date.parse(r.created_at) >= since) : [];
    }

    async function refresh() {
      clearTimeout(timer);
      if (stopped) return;
      const mine = ++generation;
      markRange();
      const seconds = range.window;
      const step = stepOf(seconds);
      const params = { ...scope, window: seconds, step };
      const [heatAnswer, seriesAnswer, revisions] = await Promise.all([
        api("GET", `/api/v1/heatmap?${query(params)}`).catch(() => null),
        api("GET", `/api/v1/series?${query(params)}&metric=${[
          "rps", "actual_rps", "success_rate", "actual_success_rate", "p50", "p95", "p99",
          ...(scope.source && !scope.version ? ["server_p99", "network_p99"] : []), ...EVENTS].join(",")}`).catch(() => null),
        revisionsIn(seconds),
      ]);
      if (stopped || mine !== generation) return;
      if (!heatAnswer || heatAnswer.status !== 200) {
        const detail = heatAnswer && heatAnswer.body && heatAnswer.body.detail;
        status.textContent = heatAnswer && heatAnswer.status === 503
          ? "Data source down: showing the last data; retrying…"
          : `Could not load the heatmap${detail ? `: ${detail}` : ""}. Retrying…`;
        status.classList.add("warn");
      } else {
        status.classList.remove("warn");
        heatmap = heatAnswer.body;
        drawHeatmap(revisions);
        status.textContent = `${what()} · ${step} s columns · updated ${clock(Date.now() / 1000)}`;
      }
      if (seriesAnswer && seriesAnswer.status === 200) drawCharts(seriesAnswer.body, revisions);
      // A new column every `step` seconds: poll at that pace (at most every 5 s).
      timer = setTimeout(refresh, Math.max(5, step) * 1000);
    }

    function drawHeatmap(revisions) {
      const busy = heatmap.columns.some((c) => c.requests);
      root.dataset.columns = String(heatmap.columns.length);
      root.dataset.requests = String(heatmap.columns.reduce((n, c) => n + c.requests, 0));
      root.dataset.scope = query({ ...scope, window: range.window, step: heatmap.step });
      root.dataset.lastColumn = heatmap.columns.length ? String(heatmap.columns[heatmap.columns.length - 1].start) : "";
      heatEmpty.hidden = busy;
      heat.hidden = !busy;
      if (!busy) {
        heatEmpty.textContent = `No requests for ${what()} in the last ${range.label}. Traffic shows up here within seconds.`;
        return;
      }
      window.MeshHeatmap.draw(heat, heatmap, revisions);
      if (!heat.dataset.clickable) {
        heat.dataset.clickable = "true";
        heat.on("plotly_click", (event) => {
          const point = event.points && event.points.find((p) => p.data.type === "heatmap");
          if (!point) return;
          const [row, column] = point.pointNumber;
          selected = { start: heatmap.columns[column].start, row, low: heatmap.buckets_ms[row] };
          showCell();
        });
      }
      if (selected) showCell();
    }

    // The exemplar traces of the clicked cell, and a search for every stored trace in it.
    function showCell() {
      const column = heatmap.columns.findIndex((c) => c.start === selected.start);
      const row = heatmap.buckets_ms.indexOf(selected.low);
      if (column < 0 || row < 0) { cell.hidden = true; return; }
      const low = heatmap.buckets_ms[row];
      const high = row + 1 < heatmap.buckets_ms.length ? heatmap.buckets_ms[row + 1] : heatmap.top_ms;
      const start = heatmap.columns[column].start;
      const count = heatmap.columns[column].counts[row] || 0;
      const found = heatmap.exemplars.filter((x) => x.column === column && x.bucket === row);
      const search = `/traces?${query({
        service: scope.service, source: scope.source, target: scope.target,
        min_ms: Math.floor(low), max_ms: Math.ceil(high), start, end: start + heatmap.step })}`;
      cell.hidden = false;
      cell.replaceChildren(
        el("div", { class: "cell-head" },
          el("strong", {}, `${clock(start)}–${clock(start + heatmap.step)} · ${window.MeshHeatmap.label(low)}–${window.MeshHeatmap.label(high)}`),
          el("span", { class: "muted small" }, ` ${count} request${count === 1 ? "" : "s"}`),
          el("a", { class: "button small", href: search }, "Search traces in this cell"),
          el("button", { type: "button", class: "link-button small", "aria-label": "Close" }, "close")),
        found.length
          ? el("ul", { class: "exemplars" }, found.map((x) => el("li", { dataset: { trace: x.trace_id } },
            el("a", { href: `/traces/${encodeURIComponent(x.trace_id)}`, class: "trace-link" },
              el("code", {}, x.trace_id.slice(0, 16)), ` ${fmt.ms(x.value_ms)}`),
            el("span", { class: x.error ? "state bad" : "muted small" }, x.error ? " error" : ` at ${clock(x.time)}`))))
          : el("p", { class: "muted small" }, "No exemplar trace was recorded in this cell (only traced requests have one: sampled ones, and those kept for being slow or failed): search the stored traces instead."));
      cell.querySelector("button").addEventListener("click", () => { selected = null; cell.hidden = true; });
    }

    function drawCharts(body, revisions) {
      const x = body.times.map((t) => new Date((t + body.step / 2) * 1000));
      const line = (metric, name, color, dash, scale) => {
        const found = body.series.find((s) => s.metric === metric);
        return { type: "scatter", mode: "lines", name, x, y: found ? found.values.map((v) => (v === null ? null : v * (scale || 1))) : [],
          line: { color, width: 1.6, dash }, connectgaps: false, hovertemplate: `%{y:.3~f} ${name}<extra></extra>` };
      };
      const marks = revisions.map((r) => ({ type: "line", xref: "x", yref: "paper", x0: r.created_at, x1: r.created_at, y0: 0, y1: 1, line: { color: "#7aa2f7", width: 1, dash: "dot" } }));
      Plotly.react(charts.rate, [line("rps", "effective", "#58a6ff"), line("actual_rps", "actual (with retries)", "#e3b341", "dot")],
        chartLayout("Request rate", "/s", { shapes: marks }), PLOT);
      Plotly.react(charts.success, [line("success_rate", "effective", "#3fb950", undefined, 100), line("actual_success_rate", "actual (every try)", "#e3b341", "dot", 100)],
        chartLayout("Success rate", "%", { shapes: marks, yaxis: { gridcolor: "#243044", zeroline: false, ticksuffix: "%", autorange: true } }), PLOT);
      const latency = [line("p50", "p50", "#8b949e", "dot"), line("p95", "p95", "#58a6ff", "dash"), line("p99", "p99", "#f0883e")];
      if (scope.source && !scope.version) latency.push(line("server_p99", "server p99", "#3fb950", "dot"), line("network_p99", "network p99", "#bc8cff", "dashdot"));
      Plotly.react(charts.latency, latency, chartLayout("Latency", " ms", { shapes: marks }), PLOT);
      const events = EVENTS.map((key) => line(key, key.replace("_", " "), EVENT_COLORS[key]));
      const known = events.some((t) => t.y.some((v) => v !== null));
      Plotly.react(charts.events, known ? events : [],
        chartLayout(known ? "Policy events" : "Policy events (not counted per version)", "/s", { shapes: marks }), PLOT);
    }

    refresh();
    return {
      scope(next) { scope = { ...next }; selected = null; cell.hidden = true; refresh(); },
      stop() { stopped = true; clearTimeout(timer); },
    };
  }

  window.MeshPanel = { mount, RANGES };
})();
