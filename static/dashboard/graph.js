// The live service graph page: draws the server-built Plotly figure, keeps it live over
// /ws/graph, and mirrors the numbers in the summary bar and the side tables. The health
// thresholds and the window come from the server (#graph-page, meshui.dashboard.views).
// It also marks the services that carry policy (#graph-policy, then /api/v1/policy/marks),
// says whether the current revision is applied on every sidecar (/api/v1/proxies), and
// opens a service's page when its row is clicked. A click on a node expands it into its
// instances (graph_instances.js, which also owns the "Instances" toggle); a click on an
// edge's diamond or its row opens the edge's detail view (edge_detail.js). Alerts firing or
// pending are badges on their node or edge (graph_alerts.js); an operator gets "Alert on this".
(function () {
  "use strict";

  const PAGE = JSON.parse(document.getElementById("graph-page").textContent);
  const POLICY = JSON.parse(document.getElementById("graph-policy").textContent);
  let marks = POLICY.marks;
  let lastPayload = null;
  const instances = window.MeshUIGraphInstances(PAGE.view, PAGE.alerts);
  // Firing and pending alerts as badges and edge colours (graph_alerts.js): a change redraws.
  const alerts = window.MeshGraphAlerts(PAGE.alerts, () => { if (lastPayload) render(lastPayload); });
  const BELL = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 17V11a6 6 0 0 1 12 0v6l2 2H4z"/><path d="M10 21h4"/></svg>';

  const graphEl = document.getElementById("graph");
  const emptyEl = document.getElementById("empty");
  const statusEl = document.getElementById("status");
  const sourceDownEl = document.getElementById("source-down");
  const hiddenEl = document.getElementById("hidden-note");
  const edgesBody = document.querySelector("#edges tbody");
  const nodesBody = document.querySelector("#nodes tbody");
  const PLOTLY_CONFIG = { displayModeBar: false, responsive: true };

  function escapeHtml(value) {
    return String(value).replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    })[c]);
  }

  // The first level whose threshold the rate is under; the last takes any rate
  // (meshui.dashboard.health.HealthScale.level).
  function health(requests, errorRate) {
    const scale = PAGE.health;
    if (!requests) return scale.idle;
    return scale.levels.find((level) => level.below === null || errorRate < level.below).name;
  }

  function rate(rps) {
    if (rps >= 100) return rps.toFixed(0);
    if (rps >= 10) return rps.toFixed(1);
    return rps.toFixed(2);
  }

  function ms(value) {
    if (value === null || value === undefined) return "–";
    return (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)) + " ms";
  }

  function percent(value) {
    return (value * 100).toFixed(value >= 0.1 ? 1 : 2) + "%";
  }

  function byRate(a, b) {
    return b.rps - a.rps || (a.id || a.source).localeCompare(b.id || b.source)
      || (a.target || "").localeCompare(b.target || "");
  }

  function renderEdges(edges) {
    if (!edges.length) {
      edgesBody.innerHTML = `<tr class="empty-row"><td colspan="4">No edges in the ${escapeHtml(PAGE.window_label)}</td></tr>`;
      return;
    }
    edgesBody.innerHTML = edges.slice().sort(byRate).map((e) => {
      const h = health(e.requests, e.error_rate);
      return `<tr data-edge="${escapeHtml(e.source + "->" + e.target)}" data-requests="${e.requests}"
                  data-errors="${e.errors}">
        <td class="name" title="${escapeHtml(e.source + " → " + e.target)}"><i class="health dot ${h}"></i>${escapeHtml(e.source)}<span class="arrow">→</span>${escapeHtml(e.target)}</td>
        <td class="num">${rate(e.rps)}</td>
        <td class="num ${h}">${percent(e.error_rate)}</td>
        <td class="num">${ms(e.p95_ms)}</td></tr>`;
    }).join("");
  }

  // An edge's detail view, by its "source->target" id (the figure's and the table's).
  function openEdge(id) {
    const edge = lastPayload && lastPayload.graph.edges.find((e) => `${e.source}->${e.target}` === id);
    if (edge) window.MeshEdgeDetail.show(edge.source, edge.target, lastPayload.graph);
  }

  function renderNodes(nodes) {
    if (!nodes.length) {
      nodesBody.innerHTML = '<tr class="empty-row"><td colspan="4">No services seen yet</td></tr>';
      return;
    }
    nodesBody.innerHTML = nodes.slice().sort(byRate).map((n) => {
      const h = health(n.requests, n.error_rate);
      const versions = n.versions.length ? ` <span class="muted small">${escapeHtml(n.versions.join(" · "))}</span>` : "";
      const badges = marksOf(n.id).map((m) => ` <span class="mark ${escapeHtml(m)}">${escapeHtml(POLICY.labels[m] || m)}</span>`).join("");
      const alertLink = PAGE.alerts.can_edit
        ? `<a class="alert-link" href="/alerts/rules/new?service=${encodeURIComponent(n.id)}" title="Alert on this: a new alert rule on ${escapeHtml(n.service)}" aria-label="Alert on ${escapeHtml(n.service)}">${BELL}</a>` : "";
      return `<tr data-node="${escapeHtml(n.id)}" data-requests="${n.requests}" data-errors="${n.errors}">
        <td class="name" title="${escapeHtml(n.service)}"><i class="health dot ${h}"></i><a class="service-link" href="${serviceUrl(n.id)}">${escapeHtml(n.service)}</a>${versions}${badges}${alertLink}</td>
        <td class="num">${rate(n.rps)}</td>
        <td class="num ${h}">${n.requests ? percent(n.error_rate) : "–"}</td>
        <td class="num">${ms(n.p95_ms)}</td></tr>`;
    }).join("");
  }

  function marksOf(service) {
    return (marks.services[service] || marks.default || []);
  }

  function serviceUrl(service) {
    return "/services/" + encodeURIComponent(service);
  }

  // The policy marks as a third line under each node's label: invisible markers of the
  // node's size carry the text, so it sits below the ring as the label does (Plotly text:
  // only the server's own words are drawn here, never a name).
  function marksTrace(figure) {
    const nodes = figure.data[1];
    if (!nodes || !nodes.customdata) return [];
    const words = nodes.customdata.map((id) => marksOf(id).map((m) => POLICY.labels[m] || m).join(" · "));
    if (!words.some(Boolean)) return [];
    return [{ type: "scatter", mode: "markers+text", name: "policy", hoverinfo: "skip",
      x: nodes.x, y: nodes.y, text: words.map((w) => (w ? "<br><br>" + w : "")),
      textposition: "bottom center", marker: { size: nodes.marker.size, opacity: 0 },
      textfont: { size: 11, color: nodes.customdata.map((id) => (marksOf(id).includes("fault") ? POLICY.fault_color : POLICY.mark_color)) } }];
  }

  function renderSummary(summary) {
    document.getElementById("sum-services").textContent = summary.services;
    document.getElementById("sum-edges").textContent = summary.edges;
    document.getElementById("sum-rps").textContent = rate(summary.rps) + "/s";
    const errors = document.getElementById("sum-errors");
    errors.textContent = percent(summary.error_rate);
    errors.className = "value " + health(summary.edges ? 1 : 0, summary.error_rate);
    document.getElementById("sum-updated").textContent =
      new Date(summary.generated_at * 1000).toLocaleTimeString([], { hour12: false });
  }

  // More services than the server's node cap: the figure shows the busiest, say how many not.
  function renderHidden(graph) {
    const hidden = (graph.hidden && graph.hidden.nodes) || 0;
    hiddenEl.hidden = hidden <= 0;
    if (hidden > 0) {
      hiddenEl.textContent = `${hidden} more service${hidden === 1 ? "" : "s"} hidden`
        + ` (showing the busiest ${graph.nodes.length})`;
    }
  }

  function render(payload) {
    if (!payload) return;
    const empty = payload.graph.nodes.length === 0;
    emptyEl.hidden = !empty;
    graphEl.style.visibility = empty ? "hidden" : "visible";
    // Plotly.react diffs against the current figure: no flicker, zoom and hover kept.
    lastPayload = payload;
    const drawn = alerts.decorate(payload.figure);
    Plotly.react(graphEl, [...drawn.data, ...marksTrace(payload.figure)], drawn.layout, PLOTLY_CONFIG);
    if (!graphEl.dataset.clickable) { // Plotly adds .on() to the div on its first plot
      graphEl.dataset.clickable = "true";
      graphEl.on("plotly_click", (event) => {
        const point = event.points && event.points[0];
        if (!point) return;
        if (point.data.name === "services") instances.toggleService(point.customdata, lastPayload && lastPayload.graph);
        if (point.data.name === "instances") instances.openInstance(...point.customdata);
        if (point.data.name === "edges") openEdge(point.customdata);
      });
      graphEl.on("plotly_clickannotation", (event) => {
        const href = alerts.linkOf(event.annotation);
        if (href) location.assign(href);
      });
    }
    renderEdges(payload.graph.edges);
    window.MeshEdgeDetail.update(payload.graph);
    renderNodes(payload.graph.nodes);
    renderSummary(payload.summary);
    renderHidden(payload.graph);
    instances.rendered(payload);
    document.body.dataset.generatedAt = payload.graph.generated_at;
  }

  function setStatus(state, text) {
    statusEl.className = "badge " + state;
    statusEl.textContent = text;
  }

  // The server's status frames: {"type": "status", "source": "down" | "up"} (docs/api.md).
  function setSource(message) {
    const down = message.source === "down";
    sourceDownEl.hidden = !down;
    document.body.dataset.source = message.source;
    setStatus(down ? "down" : "live", down ? "data source down" : "live");
  }

  // Reconnect with exponential backoff and jitter: 0.5 s, 1 s, 2 s ... at most 15 s.
  let attempt = 0;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/graph");
    socket.onopen = () => {
      attempt = 0;
      instances.connected(socket);
      if (sourceDownEl.hidden) setStatus("live", "live");
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "status") setSource(message);
      if (message.type === "graph") {
        // A fresh graph means the data source answers again.
        if (!sourceDownEl.hidden) setSource({ source: "up" });
        render(message);
      }
    };
    socket.onclose = () => {
      const delay = Math.min(15000, 500 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
      attempt += 1;
      setStatus("reconnecting", "reconnecting…");
      setTimeout(connect, delay);
    };
  }

  // "revision N applied on all sidecars", or who is behind (and why).
  const policyEl = document.getElementById("policy-status");
  function renderSync(body) {
    const revision = body.summary.revision;
    if (!revision) {
      policyEl.className = "status-line muted";
      policyEl.textContent = "no policy revision yet: defaults in force";
      return;
    }
    const sync = window.MeshUI.syncOf(body.proxies, revision);
    policyEl.className = "status-line " + (sync.synced === sync.total ? "ok" : sync.problems.some((p) => p.state === "NACKED") ? "bad" : "warn");
    const behind = sync.problems.map((p) => `${p.proxy_id} ${p.state}${p.reason ? ": " + p.reason : ""}`);
    policyEl.textContent = window.MeshUI.syncText(revision, sync) + (behind.length ? " · " + behind.join(" · ") : "");
  }

  async function pollPolicy() {
    const api = window.MeshUI.api;
    const [proxies, latest] = await Promise.all([api("GET", "/api/v1/proxies"), api("GET", "/api/v1/policy/marks")])
      .catch(() => [null, null]);
    if (proxies && proxies.status === 200) renderSync(proxies.body);
    if (latest && latest.status === 200 && JSON.stringify(latest.body) !== JSON.stringify(marks)) {
      marks = latest.body;
      if (lastPayload) render(lastPayload);
    }
    setTimeout(pollPolicy, POLICY.poll_ms);
  }

  edgesBody.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-edge]");
    if (row) openEdge(row.dataset.edge);
  });

  const initial = JSON.parse(document.getElementById("graph-initial").textContent);
  render(initial);
  const linked = window.MeshEdgeDetail.linked();
  if (linked) window.MeshEdgeDetail.show(linked.source, linked.target, initial.graph);
  connect();
  pollPolicy();
})();
