// An edge's detail view on the graph page (click an edge's diamond or its row): the caller's,
// the target's and the network's share of the latency as numbers (live, from the graph the
// page already has), then the edge's live heatmap and golden metrics (MeshPanel), and for an
// operator "Alert on this" (the rule editor on this edge). Deep link: /#edge=<source>,<target>.
(() => {
  "use strict";
  const { el, fmt } = window.MeshUI;
  const card = document.getElementById("edge-detail");
  const title = document.getElementById("edge-detail-title");
  const numbers = document.getElementById("edge-detail-numbers");
  const traces = document.getElementById("edge-detail-traces");
  const alertLink = document.getElementById("edge-detail-alert"); // operators only
  let open = null; // {source, target}
  let panel = null;

  function stat(label, value, hint) {
    return el("div", { class: "stat", title: hint || null }, el("span", { class: "label" }, label),
      el("span", { class: "value", dataset: { stat: label } }, value));
  }

  function update(graph) {
    if (!open) return;
    const edge = graph.edges.find((e) => e.source === open.source && e.target === open.target);
    if (!edge) {
      numbers.replaceChildren(el("p", { class: "muted small" }, `No calls from ${open.source} to ${open.target} in the graph's window.`));
      return;
    }
    numbers.replaceChildren(
      stat("Requests", fmt.rate(edge.rps)),
      stat("Success", edge.requests ? fmt.percent(1 - edge.error_rate, 2) : "–"),
      stat("Client p50 / p99", `${fmt.ms(edge.p50_ms)} / ${fmt.ms(edge.p99_ms)}`, "as the caller's sidecar timed the calls"),
      stat("Server p50 / p99", `${fmt.ms(edge.server_p50_ms)} / ${fmt.ms(edge.server_p99_ms)}`, "as the target's sidecar timed them: arrival to answer"),
      stat("Network p50 / p99", `${fmt.ms(edge.network_p50_ms)} / ${fmt.ms(edge.network_p99_ms)}`, "client minus server: the network and queueing between the two sidecars"),
      stat("Retries", String(edge.events ? edge.events.retries : 0)));
  }

  function show(source, target, graph) {
    open = { source, target };
    card.hidden = false;
    title.textContent = `${source} → ${target}`;
    traces.href = `/traces?source=${encodeURIComponent(source)}&target=${encodeURIComponent(target)}`;
    if (alertLink) alertLink.href = `/alerts/rules/new?${new URLSearchParams({ source, target })}`;
    if (panel) panel.scope(open); else panel = window.MeshPanel.mount(document.getElementById("edge-detail-panel"), open);
    if (graph) update(graph);
    history.replaceState(null, "", `#edge=${encodeURIComponent(source)},${encodeURIComponent(target)}`);
    card.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function close() {
    open = null;
    card.hidden = true;
    if (panel) { panel.stop(); panel = null; }
    history.replaceState(null, "", location.pathname + location.search);
  }

  document.getElementById("edge-detail-close").addEventListener("click", close);

  // The edge a link names (#edge=a,b), if any.
  function linked() {
    const match = /^#edge=([^,]+),(.+)$/.exec(location.hash);
    return match ? { source: decodeURIComponent(match[1]), target: decodeURIComponent(match[2]) } : null;
  }

  window.MeshEdgeDetail = { show, update, close, linked };
})();
