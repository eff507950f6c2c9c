// A latency heatmap (GET /api/v1/heatmap) drawn with Plotly: columns over time, rows of
// latency buckets on a log scale, colour = requests; p50/p95/p99 lines over it and the policy
// revisions of the window as vertical markers. window.MeshHeatmap.draw(element, heatmap, revisions).
(() => {
  "use strict";
  const ROOT2 = Math.SQRT2;

  // Plotly reads a few tags in hover and annotation text: what a person typed is text only.
  const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  function label(ms) {
    if (ms >= 1000) return `${(ms / 1000).toPrecision(2)} s`;
    return ms >= 10 ? `${Math.round(ms)} ms` : `${ms.toPrecision(2)} ms`;
  }

  // A latency in ms as a position on the row axis: row r spans [r, r + 1).
  function rowOf(ms, first) {
    return ms === null || ms === undefined ? null : Math.log(ms / first) / Math.log(ROOT2);
  }

  function traces(heatmap) {
    const { buckets_ms: bounds, columns, step } = heatmap;
    const x = columns.map((c) => new Date((c.start + step / 2) * 1000));
    const rows = bounds.map((_, r) => r + 0.5);
    // An empty cell is no cell (the panel shows through), so the requests stand out.
    const z = bounds.map((_, r) => columns.map((c) => c.counts[r] || null));
    const text = bounds.map((low, r) => columns.map((c) => {
      const high = r + 1 < bounds.length ? bounds[r + 1] : heatmap.top_ms;
      const from = new Date(c.start * 1000).toLocaleTimeString([], { hour12: false });
      const to = new Date((c.start + step) * 1000).toLocaleTimeString([], { hour12: false });
      const share = c.requests ? ((c.counts[r] || 0) / c.requests * 100).toFixed(1) : "0.0";
      return `${from}–${to}<br>${label(low)}–${label(high)}<br>${c.counts[r] || 0} requests (${share}% of the column)`;
    }));
    const first = bounds[0];
    const line = (key, name, dash) => ({
      type: "scatter", mode: "lines", name, x, y: columns.map((c) => rowOf(c[key], first)),
      line: { color: "#e8eef6", width: 1.5, dash }, hoverinfo: "skip", connectgaps: false,
    });
    return [
      { type: "heatmap", x, y: rows, z, text, hoverinfo: "text", colorscale: [[0, "#1f4e79"], [0.35, "#2f9e8f"], [0.7, "#e3b341"], [1, "#f85149"]],
        zmin: 1, xgap: 1, ygap: 1, colorbar: { title: { text: "requests", side: "right" }, thickness: 10 } },
      line("p50_ms", "p50", "dot"), line("p95_ms", "p95", "dash"), line("p99_ms", "p99", "solid"),
    ];
  }

  function layout(heatmap, revisions) {
    const bounds = heatmap.buckets_ms;
    // At most ~9 labelled row edges: every one of 20 rows crowds a 300 px tall axis.
    const every = Math.max(1, Math.ceil((bounds.length + 1) / 9));
    const edges = bounds.concat([heatmap.top_ms]);
    const ticks = edges.map((_, r) => r).filter((r) => r % every === 0);
    const tickText = ticks.map((r) => label(edges[r]));
    const markers = revisions.map((r) => ({
      type: "line", xref: "x", yref: "paper", x0: r.created_at, x1: r.created_at, y0: 0, y1: 1,
      line: { color: "#7aa2f7", width: 1, dash: "dot" },
    }));
    const notes = revisions.map((r) => ({
      x: r.created_at, y: 1, xref: "x", yref: "paper", yanchor: "bottom", showarrow: false,
      text: `rev ${r.revision}`, font: { size: 10, color: "#7aa2f7" },
      hovertext: `revision ${r.revision} by ${escape(r.author || "—")}: ${escape(r.message || "(no message)")}`,
    }));
    return {
      margin: { l: 64, r: 16, t: 18, b: 32 }, height: 300,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: "#9aa7b8", size: 11 }, showlegend: true,
      legend: { orientation: "h", x: 0, y: -0.18, font: { size: 10 } },
      xaxis: { type: "date", gridcolor: "#243044" },
      yaxis: { tickvals: ticks, ticktext: tickText, range: [0, bounds.length], gridcolor: "#243044", zeroline: false },
      shapes: markers, annotations: notes,
    };
  }

  function draw(element, heatmap, revisions) {
    Plotly.react(element, traces(heatmap), layout(heatmap, revisions),
      { displayModeBar: false, responsive: true });
  }

  window.MeshHeatmap = { draw, rowOf, label };
})();
