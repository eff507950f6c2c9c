// Firing and pending alerts on the graph, live (docs/ui.md): GET /api/v1/alerts every few
// seconds; each alert's concrete target (a pattern rule lists one row per match) is put on
// its node ({service}, {service, version}, {instance}) or its edge ({source, target}, with or
// without version). An edge that alerts is drawn in the alert's colour (red firing, amber
// pending) and both get a badge with the count; a click on a badge opens /alerts filtered to
// its rules. The states and colours come from the server (#graph-page's `alerts`).
//
//   const alerts = MeshGraphAlerts(PAGE.alerts, redraw);   // redraw() after a change
//   const {data, layout} = alerts.decorate(figure);  alerts.linkOf(annotation)
(() => {
  "use strict";
  const { api } = window.MeshUI;
  const BADGE = "alert-badge-";
  const TEXT = "#ffffff";
  const OUTLINE = "#0d1117";

  // A name as literal Plotly text (meshui.dashboard.figure.plotly_text).
  const plotlyText = (value) => String(value).replace(/[&<>"'$\r\n]/g, (c) => `&#${c.charCodeAt(0)};`);

  function create(settings, changed) {
    const firing = new Set(settings.firing);
    const pending = new Set(settings.pending);
    const stat = document.getElementById("sum-alerts");
    let active = [];
    let seen = "";
    let links = {}; // badge annotation name -> /alerts?rule=...
    const instanceService = {}; // proxy id -> service, for an {instance} target without one

    async function learnInstances() {
      const answer = await api("GET", "/api/v1/instances").catch(() => null);
      if (answer && answer.status === 200) {
        for (const i of answer.body.instances) instanceService[i.proxy_id] = i.service;
      }
    }

    async function poll() {
      const answer = await api("GET", "/api/v1/alerts").catch(() => null);
      if (answer && answer.status === 200) {
        const now = answer.body.alerts.filter((a) => firing.has(a.state) || pending.has(a.state));
        if (now.some((a) => a.target.instance && !a.target.service && !(a.target.instance in instanceService))) {
          await learnInstances();
        }
        const key = JSON.stringify(now.map((a) => [a.rule, a.target, a.state]));
        if (key !== seen || seen === "") {
          seen = key;
          active = now;
          showStat();
          changed();
        }
      }
      setTimeout(poll, settings.poll_ms);
    }

    function showStat() {
      if (!stat) return;
      const hot = active.filter((a) => firing.has(a.state)).length;
      const waiting = active.length - hot;
      const value = stat.querySelector(".value");
      value.className = "value " + (hot ? "firing" : waiting ? "pending" : "quiet");
      value.textContent = hot || waiting ? [hot ? `${hot} firing` : "", waiting ? `${waiting} pending` : ""].filter(Boolean).join(" · ") : "none";
      stat.href = hot ? "/alerts?state=Firing" : waiting ? "/alerts?state=Pending" : "/alerts";
    }

    // Where an alert goes on the graph: "edge:<source>-><target>" or "node:<service>".
    function placeOf(target) {
      if (target.source !== undefined && target.target !== undefined) return `edge:${target.source}->${target.target}`;
      const service = target.service || instanceService[target.instance];
      return service ? `node:${service}` : null;
    }

    function grouped() {
      const places = new Map();
      for (const alert of active) {
        const place = placeOf(alert.target);
        if (!place) continue;
        if (!places.has(place)) places.set(place, { firing: [], pending: [] });
        places.get(place)[firing.has(alert.state) ? "firing" : "pending"].push(alert);
      }
      return places;
    }

    function colorOf(group) {
      return group.firing.length ? settings.colors.firing : settings.colors.pending;
    }

    function badge(x, y, xshift, yshift, group, name) {
      const alerts = [...group.firing, ...group.pending];
      const lines = alerts.map((a) => `${plotlyText(a.name)}: ${a.state}`);
      return { x, y, xref: "x", yref: "y", showarrow: false, xshift, yshift, name,
        text: `<b>${alerts.length}</b>`, font: { color: TEXT, size: 12 }, bgcolor: colorOf(group),
        bordercolor: OUTLINE, borderwidth: 2, borderpad: 3, captureevents: true,
        hovertext: `${group.firing.length} firing · ${group.pending.length} pending<br>${lines.join("<br>")}`,
        hoverlabel: { bgcolor: "#1c2330", bordercolor: colorOf(group), font: { color: "#c9d1d9" } } };
    }

    // The figure with the alerts drawn on it; the server's figure is left as it was.
    function decorate(figure) {
      links = {};
      const places = grouped();
      document.body.dataset.alertBadges = String(places.size);
      if (!places.size || !figure) return figure || { data: [], layout: {} };
      const data = figure.data.slice();
      const edges = data.findIndex((t) => t.name === "edges");
      const services = data.findIndex((t) => t.name === "services");
      const annotations = (figure.layout.annotations || []).slice();
      const badges = [];
      let count = 0;
      const add = (place, annotation, group) => {
        const name = `${BADGE}${count++}`;
        const rules = [...new Set([...group.firing, ...group.pending].map((a) => a.rule))];
        links[name] = `/alerts?rule=${rules.join(",")}`;
        badges.push({ ...annotation, name });
      };
      if (edges >= 0) {
        const trace = data[edges];
        const colors = trace.marker.color.slice();
        trace.customdata.forEach((id, i) => {
          const group = places.get(`edge:${id}`);
          if (!group) return;
          colors[i] = colorOf(group);
          add(id, badge(trace.x[i], trace.y[i], 0, 16, group), group);
        });
        data[edges] = { ...trace, marker: { ...trace.marker, color: colors } };
        annotations.forEach((a, n) => {
          const match = /^edge-(\d+)$/.exec(a.name || "");
          const group = match && places.get(`edge:${trace.customdata[Number(match[1])]}`);
          if (group) annotations[n] = { ...a, arrowcolor: colorOf(group), arrowwidth: a.arrowwidth + 1, opacity: 1 };
        });
      }
      if (services >= 0) {
        const trace = data[services];
        trace.customdata.forEach((id, i) => {
          const group = places.get(`node:${id}`);
          if (!group) return;
          const size = Array.isArray(trace.marker.size) ? trace.marker.size[i] : trace.marker.size;
          add(id, badge(trace.x[i], trace.y[i], size / 2 + 2, size / 2 + 2, group), group);
        });
      }
      const shown = new Set([...(edges >= 0 ? data[edges].customdata.map((id) => `edge:${id}`) : []),
        ...(services >= 0 ? data[services].customdata.map((id) => `node:${id}`) : [])]);
      document.body.dataset.alertBadges = String(badges.length);
      document.body.dataset.alertsOffGraph = String([...places.keys()].filter((p) => !shown.has(p)).length);
      return { data, layout: { ...figure.layout, annotations: [...annotations, ...badges] } };
    }

    function linkOf(annotation) {
      return annotation && links[annotation.name];
    }

    poll();
    return { decorate, linkOf, active: () => active };
  }

  window.MeshGraphAlerts = create;
})();
