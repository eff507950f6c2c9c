// The alerts page (/alerts): every rule on every target with its state, since when and the
// value, polled from GET /api/v1/alerts every few seconds (no reload). The filters (state,
// severity, label, rule) live in the URL's query, so a filtered view can be shared; the
// graph's badges link here with ?rule=<id>[,<id>...].
(() => {
  "use strict";
  const { api, el } = window.MeshUI;
  const A = window.MeshAlerts;
  const ACCESS = JSON.parse(document.getElementById("edit-access").textContent);
  const $ = (id) => document.getElementById(id);
  const form = $("alert-filters");
  const body = document.querySelector("#alerts tbody");
  const counts = $("alert-counts");
  const updated = $("alerts-updated");
  const filterError = $("filter-error");
  const ruleInput = $("filter-rule");
  const chip = $("rule-chip");
  let timer = null;
  let generation = 0;
  let names = {}; // rule id -> name, for the rule chip

  const ruleIds = () => ruleInput.value.split(",").map((v) => v.trim()).filter((v) => /^\d+$/.test(v)).map(Number);

  function filters() {
    return { state: $("filter-state").value, severity: $("filter-severity").value,
      label: $("filter-label").value.trim(), rule: ruleIds().join(",") };
  }

  function filtered() {
    return Object.values(filters()).some(Boolean);
  }

  // The API takes one rule; a badge over several rules asks for all and keeps theirs here.
  function apiQuery() {
    const f = filters();
    const query = new URLSearchParams();
    for (const name of ["state", "severity", "label"]) if (f[name]) query.set(name, f[name]);
    const ids = ruleIds();
    if (ids.length === 1) query.set("rule", String(ids[0]));
    return query.toString();
  }

  function syncUrl() {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filters())) if (value) query.set(name, value);
    const text = query.toString();
    history.replaceState(null, "", location.pathname + (text ? `?${text}` : ""));
  }

  // "Silence this": the rule's name and the target's fields, as the alert's labels have them.
  function silenceUrl(alert) {
    const query = new URLSearchParams();
    query.append("matcher", `${A.VOCAB.alertname}=${alert.name}`);
    for (const [name, value] of Object.entries(alert.target)) if (value) query.append("matcher", `${name}=${value}`);
    return `/alerts/silences?${query}`;
  }

  function row(alert) {
    const m = A.METRICS[alert.metric];
    return el("tr", { class: `alert-row state-${(A.STATES[alert.state] || {}).class || "unknown"}`,
      dataset: { rule: String(alert.rule), state: alert.state, target: JSON.stringify(alert.target) } },
      el("td", {}, A.pill(alert.state),
        alert.silenced ? el("span", { class: "silenced-mark", title: "A silence keeps it out of notifications" }, "silenced") : null),
      el("td", { class: "rule-name" }, el("a", { href: `/alerts/rules/${alert.rule}` }, alert.name),
        el("span", { class: "muted small metric" }, m ? m.label : alert.metric)),
      el("td", { class: "target" }, A.targetText(alert.target)),
      el("td", { class: "num value", title: alert.detail }, A.valueText(alert.metric, alert.value),
        el("span", { class: "muted small detail" }, alert.detail)),
      el("td", {}, A.since(alert.since)),
      el("td", {}, A.severityPill(alert.severity)),
      el("td", {}, A.labelChips(alert.labels)),
      el("td", { class: "num actions" },
        el("a", { class: "button small", href: `/alerts/rules/${alert.rule}`, title: "Its page: the backtest and every state change" }, "History"),
        ACCESS.allowed ? el("a", { class: "button small edit-rule", href: `/alerts/rules/${alert.rule}/edit` }, "Edit") : null,
        ACCESS.allowed ? el("a", { class: "button small silence-this", href: silenceUrl(alert), title: "A silence of this rule on this target" }, "Silence") : null));
  }

  function renderCounts(alerts) {
    const by = {};
    for (const alert of alerts) by[alert.state] = (by[alert.state] || 0) + 1;
    const rules = new Set(alerts.map((a) => a.rule)).size;
    counts.replaceChildren(
      ...A.VOCAB.states.filter((s) => by[s.name]).sort((a, b) => a.rank - b.rank)
        .map((s) => el("li", { dataset: { state: s.name } }, A.pill(s.name), ` ${by[s.name]}`)),
      el("li", { class: "muted small" }, `${rules} rule${rules === 1 ? "" : "s"}, ${alerts.length} target${alerts.length === 1 ? "" : "s"}`));
  }

  function renderChip() {
    const ids = ruleIds();
    chip.hidden = !ids.length;
    if (ids.length) $("rule-chip-text").textContent = `rule: ${ids.map((id) => names[id] || `#${id}`).join(", ")}`;
  }

  function render(alerts) {
    const ids = ruleIds();
    const shown = (ids.length > 1 ? alerts.filter((a) => ids.includes(a.rule)) : alerts).slice()
      .sort((a, b) => (A.STATES[a.state] || {}).rank - (A.STATES[b.state] || {}).rank);
    for (const alert of alerts) names[alert.rule] = alert.name;
    const none = !alerts.length && !filtered();
    $("no-rules").hidden = !none;
    $("alerts-body").hidden = none;
    counts.hidden = none;
    renderCounts(shown);
    renderChip();
    body.replaceChildren(...(shown.length ? shown.map(row)
      : [el("tr", { class: "empty-row" }, el("td", { colspan: "8" }, "No alert matches these filters."))]));
    document.body.dataset.alerts = String(shown.length);
    updated.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  }

  async function poll() {
    clearTimeout(timer);
    const mine = ++generation;
    const answer = await api("GET", `/api/v1/alerts?${apiQuery()}`).catch(() => null);
    if (mine !== generation) return;
    filterError.hidden = true;
    if (answer && answer.status === 200) {
      render(answer.body.alerts);
    } else if (answer && answer.status === 400) {
      filterError.hidden = false;
      filterError.textContent = answer.body.detail;
    } else {
      updated.textContent = answer && answer.status === 503 ? "data source down; retrying…" : "could not load the alerts; retrying…";
    }
    timer = setTimeout(poll, A.VOCAB.poll_ms);
  }

  function changed() {
    syncUrl();
    poll();
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); changed(); });
  form.addEventListener("change", changed);
  $("rule-chip-clear").addEventListener("click", () => { ruleInput.value = ""; changed(); });
  $("filter-clear").addEventListener("click", (event) => {
    event.preventDefault();
    form.reset();
    for (const input of form.querySelectorAll("input, select")) input.value = "";
    changed();
  });
  poll();
})();
