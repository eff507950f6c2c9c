// The graph page's instance level (docs/ui.md): the "Instances" toggle expands every service
// into its instances, a click on a node expands or collapses that one, a click on an
// instance opens its state panel (GET /api/v1/instances/{proxy_id}/state; an operator's has
// "Alert on this"). The server draws the boxes (meshui.dashboard.instance_figure); this file
// only says which services to expand: over the graph socket ({"type": "view", ...}) and in
// the URL (?level=instance, ?expand=a,b), so a reload or a shared link shows the same.
// graph.js calls the hooks below.
(function () {
  "use strict";

  const { api, el, fmt } = window.MeshUI;
  const PANEL_REFRESH_MS = 2000; // the panel follows the live graph, at most this often

  // alerts: the page's alert settings ({can_edit}: an operator gets "Alert on this").
  function create(initialView, alerts) {
    let view = { instances: !!initialView.instances, expand: new Set(initialView.expand || []) };
    let socket = null;
    let open = null; // {proxyId, service} of the panel shown
    let fetchedAt = 0;

    const toggle = document.getElementById("instances-toggle");
    const panel = document.getElementById("instance-panel");
    const body = panel.querySelector(".instance-panel-body");
    panel.querySelector(".instance-panel-close").addEventListener("click", close);
    toggle.addEventListener("click", () => {
      view = { instances: !view.instances, expand: new Set() };
      changed();
    });

    function message() {
      return JSON.stringify({ type: "view", instances: view.instances, expand: [...view.expand].sort() });
    }

    function send() {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(message());
    }

    function syncUrl() {
      const url = new URL(location.href);
      url.searchParams.delete("level");
      url.searchParams.delete("expand");
      if (view.instances) url.searchParams.set("level", "instance");
      else if (view.expand.size) url.searchParams.set("expand", [...view.expand].sort().join(","));
      history.replaceState(null, "", url);
    }

    function showToggle() {
      toggle.setAttribute("aria-pressed", String(view.instances));
      toggle.classList.toggle("on", view.instances);
    }

    function changed() {
      showToggle();
      syncUrl();
      send();
      document.body.dataset.instanceView = view.instances ? "all" : [...view.expand].sort().join(",");
    }

    // A click on a service's node: expand it, or collapse it (out of "all": all but it).
    function toggleService(service, graph) {
      if (view.instances) {
        const all = graph ? graph.nodes.filter((n) => n.instances && n.instances.length).map((n) => n.id) : [];
        view = { instances: false, expand: new Set(all.filter((id) => id !== service)) };
      } else if (view.expand.has(service)) {
        view.expand.delete(service);
      } else {
        view.expand.add(service);
      }
      changed();
    }

    function connected(newSocket) {
      socket = newSocket;
      if (view.instances || view.expand.size) send();
    }

    function close() {
      open = null;
      panel.hidden = true;
    }

    function until(iso) {
      if (!iso) return "";
      const at = new Date(iso);
      const left = Math.max(0, Math.round((at - Date.now()) / 1000));
      return `until ${at.toISOString().slice(11, 19)} UTC (in ${left} s)`;
    }

    function stat(label, value, cls) {
      return el("div", { class: "kv" }, el("span", { class: "kv-label" }, label),
        el("span", { class: "kv-value " + (cls || "") }, value));
    }

    function callerTable(rows) {
      if (!rows.length) return el("p", { class: "muted small" }, "No sidecar reports calling it in its last heartbeat.");
      return el("table", { class: "table compact" },
        el("thead", {}, el("tr", {}, el("th", {}, "Caller"), el("th", { class: "num" }, "share"),
          el("th", { class: "num" }, "EWMA"), el("th", { class: "num" }, "in flight"))),
        el("tbody", {}, rows.map((c) => el("tr", { class: c.ejected ? "out" : "" },
          el("td", { class: "name", title: `${c.proxy_id} (${c.service})` }, c.proxy_id,
            c.ejected ? el("span", { class: "out-tag" }, " ejected") : null),
          el("td", { class: "num" }, fmt.percent(c.share)),
          el("td", { class: "num" }, fmt.ms(c.ewma_ms)),
          el("td", { class: "num" }, String(c.outstanding))))));
    }

    function upstreamTables(upstreams, truncated) {
      if (!upstreams.length) return [el("p", { class: "muted small" }, "It reported no calls to other services.")];
      const parts = upstreams.map((u) => el("div", {},
        el("p", { class: "upstream-name" }, u.service, el("span", { class: "muted small" }, ` · ${u.requests} requests in its last interval`)),
        el("table", { class: "table compact" }, el("tbody", {}, u.endpoints.map((e) => el("tr", { class: e.ejected ? "out" : "" },
          el("td", { class: "name", title: e.instance }, e.instance, e.ejected ? el("span", { class: "out-tag" }, " ejected") : null),
          el("td", { class: "num" }, fmt.percent(e.share)),
          el("td", { class: "num" }, fmt.ms(e.ewma_ms)),
          el("td", { class: "num" }, `${e.outstanding} in flight`)))))));
      if (truncated) parts.push(el("p", { class: "muted small" }, `${truncated} more instances left out of its report`));
      return parts;
    }

    // "Alert on this" (operators): the rule editor on this instance.
    function alertLink(proxyId, service) {
      if (!alerts || !alerts.can_edit) return null;
      const target = service ? { service, instance: proxyId } : { instance: proxyId };
      return el("p", { class: "instance-actions" }, el("a", {
        class: "button small", id: "instance-alert", href: `/alerts/rules/new?${new URLSearchParams(target)}` }, "Alert on this"));
    }

    function render(state) {
      const live = state.live ? "live" : state.connected ? "silent" : "disconnected";
      const service = encodeURIComponent(state.service);
      const link = `/services/${service}#instance-${encodeURIComponent(state.proxy_id)}`;
      body.replaceChildren(
        el("div", { class: "instance-head" },
          el("h2", { title: state.proxy_id }, state.proxy_id),
          el("span", { class: `state ${state.live ? "ok" : "idle"}` }, live)),
        el("p", { class: "muted small" }, `${state.service} ${state.version || ""} · ${state.address}`, " · ",
          el("a", { href: link }, "service page")),
        alertLink(state.proxy_id, state.service),
        state.ejected ? el("p", { class: "ejected-note" }, "Ejected by a caller's outlier detection ", until(state.ejected_until)) : null,
        el("div", { class: "kv-grid" },
          stat("EWMA", fmt.ms(state.ewma_ms)),
          stat("In flight", String(state.outstanding)),
          stat("Pool overflow", String(state.overflow), state.overflow ? "warn" : ""),
          stat("Uptime", state.uptime_s === null ? "–" : `${Math.round(state.uptime_s)} s`),
          stat("Requests", state.requests_total === null ? "–" : state.requests_total.toLocaleString()),
          stat("Revision", state.config_revision === null ? "–" : String(state.config_revision))),
        el("h3", {}, "Callers' load balancers"),
        callerTable(state.caller_sidecars),
        el("h3", {}, "Its upstreams"),
        ...upstreamTables(state.upstreams, state.upstreams_truncated),
        el("p", { class: "muted small" }, `last heartbeat ${state.last_seen ? fmt.time(state.last_seen) : "never"}`));
    }

    async function fetchState() {
      if (!open) return;
      const wanted = open.proxyId;
      fetchedAt = Date.now();
      const answer = await api("GET", `/api/v1/instances/${encodeURIComponent(wanted)}/state`).catch(() => null);
      if (!open || open.proxyId !== wanted) return;
      if (answer && answer.status === 200) render(answer.body);
      else body.replaceChildren(el("p", { class: "muted" },
        answer && answer.body && answer.body.detail ? answer.body.detail : "The instance's state could not be read; retrying."),
        alertLink(open.proxyId, open.service));
    }

    function openInstance(proxyId, service) {
      open = { proxyId, service };
      panel.hidden = false;
      body.replaceChildren(el("p", { class: "muted" }, `Loading ${proxyId}…`));
      fetchState();
    }

    // After each live frame: the toggle says what the server drew; an open panel follows.
    function rendered(payload) {
      if (open && Date.now() - fetchedAt >= PANEL_REFRESH_MS) fetchState();
      document.body.dataset.expanded = (payload.expanded || []).join(",");
    }

    showToggle();
    return { connected, toggleService, openInstance, rendered };
  }

  window.MeshUIGraphInstances = create;
})();
