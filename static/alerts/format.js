// What the alert pages share: the server's words for metrics, states and targets
// (#alerts-vocabulary: meshui.alerts.pages), a state as a coloured pill, a value in its
// metric's unit (an error rate as a percent), a moment as "3 min ago" with the absolute time
// beside it. Everything from the network is text.
(() => {
  "use strict";
  const { el } = window.MeshUI;
  const VOCAB = JSON.parse(document.getElementById("alerts-vocabulary").textContent);
  const METRICS = Object.fromEntries(VOCAB.metrics.map((m) => [m.name, m]));
  const STATES = Object.fromEntries(VOCAB.states.map((s) => [s.name, s]));
  const KINDS = Object.fromEntries(VOCAB.targets.map((t) => [t.kind, t]));

  // 12 significant digits: 0.05 * 100 is 5, not 5.000000000000001.
  const tidy = (value) => Number(Number(value).toPrecision(12));
  const scaleOf = (metric) => (METRICS[metric] ? METRICS[metric].scale : 1);
  const toShown = (metric, value) => (value === null || value === undefined ? null : tidy(value * scaleOf(metric)));
  const fromShown = (metric, value) => (value === null || value === undefined ? null : tidy(value / scaleOf(metric)));

  // Three significant digits, none trailing: 5, 8.5, 41.3, 0.0523, 1234.
  function number(value) {
    return Math.abs(value) >= 1000 ? value.toFixed(0) : String(Number(value.toPrecision(3)));
  }

  // "5.2 %", "120 ms", "3.10 req/s"; a no_data value says what it means.
  function valueText(metric, value) {
    if (value === null || value === undefined) return "–";
    const m = METRICS[metric];
    if (!m) return number(value);
    if (m.name === "no_data") return value >= 1 ? "no data" : "has data";
    const unit = m.shown_unit;
    return `${number(toShown(metric, value))}${unit === "%" ? " %" : unit ? " " + unit : ""}`;
  }

  function pill(state) {
    const known = STATES[state] || { class: "unknown", help: "" };
    return el("span", { class: `pill state-${known.class}`, title: known.help, dataset: { state } }, state);
  }

  function severityPill(severity) {
    return el("span", { class: `severity severity-${severity}` }, severity);
  }

  function labelChips(labels) {
    const names = Object.keys(labels || {}).sort();
    if (!names.length) return el("span", { class: "muted" }, "–");
    return el("span", { class: "label-chips" }, names.map((name) => el("span", { class: "label-chip" }, `${name}=${labels[name]}`)));
  }

  // How a page names a target: "checkout → payments", "payments v2", "instance payments-1".
  function targetText(target) {
    if (!target) return "–";
    if (target.source !== undefined && target.source !== null) {
      return `${target.source} → ${target.target}${target.version ? ` (${target.version})` : ""}`;
    }
    if (target.instance) return `instance ${target.instance}${target.service ? ` of ${target.service}` : ""}`;
    return target.version ? `${target.service} ${target.version}` : String(target.service);
  }

  function ago(iso, now) {
    if (!iso) return "–";
    const seconds = Math.max(0, Math.round(((now || Date.now()) - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  // "in 1 h 20 min" for a moment ahead, "3 min ago" for one past.
  function relative(iso) {
    if (!iso) return "–";
    const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
    if (seconds <= 0) return ago(iso);
    return `in ${duration(seconds)}`;
  }

  function absolute(iso) {
    return iso ? new Date(iso).toLocaleString([], { hour12: false }) : "";
  }

  // "3 min ago" over "2026-12-03 10:41:20" (the absolute time also as the tooltip).
  function since(iso) {
    return el("span", { class: "since", title: iso || "", dataset: { since: iso || "" } },
      el("span", { class: "ago" }, relative(iso)), el("span", { class: "muted small absolute" }, absolute(iso)));
  }

  // The relative times on the page move on between polls too.
  setInterval(() => {
    for (const node of document.querySelectorAll(".since[data-since]")) node.querySelector(".ago").textContent = relative(node.dataset.since);
  }, 1000);

  function duration(seconds) {
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60), rest = seconds % 60;
    if (minutes < 60) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
    if (minutes < 1440) return minutes % 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes / 60} h`;
    const days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60);
    return hours ? `${days} d ${hours} h` : `${days} d`;
  }

  // A name as literal Plotly text (meshui.dashboard.figure.plotly_text): no tag, entity,
  // line break or TeX can come from it.
  const plotlyText = (value) => String(value).replace(/[&<>"'$\r\n]/g, (c) => `&#${c.charCodeAt(0)};`);

  // The editor's link for a target: /alerts/rules/new?source=a&target=b.
  function newRuleUrl(target) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(target || {})) if (value) query.set(name, value);
    return `/alerts/rules/new?${query}`;
  }

  window.MeshAlerts = {
    VOCAB, METRICS, STATES, KINDS, toShown, fromShown, valueText, pill, severityPill, labelChips,
    targetText, ago, relative, absolute, since, duration, newRuleUrl, plotlyText,
  };
})();
