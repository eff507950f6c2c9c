// The rule editor (/alerts/rules/new, /alerts/rules/<id>/edit): every field of a rule, and
// as it is edited (debounced) its backtest over the last hour (POST .../rules/preview, drawn
// by MeshBacktest). A 400 names the field at fault (`rule.recover`): its message goes next
// to that field. Save is POST (new) or PUT (edit), then the rule's page. Thresholds show in
// the metric's form units (an error rate as a percent) and are sent in the API's (a ratio).
(() => {
  "use strict";
  const { api, el } = window.MeshUI;
  const A = window.MeshAlerts;
  const $ = (id) => document.getElementById(id);
  const PAGE = JSON.parse($("rule-editor").textContent);
  const ACCESS = JSON.parse($("edit-access").textContent);
  const FIELDS = ["source", "target", "service", "version", "instance"];
  const chart = $("backtest-chart");
  const status = $("backtest-status");
  const targetSelect = $("backtest-target");
  const contactPoints = new Set(PAGE.rule.contact_points || []);
  let timer = null;
  let generation = 0;
  let preview = null;
  let shownTarget = 0;
  let metric = PAGE.rule.metric;

  const metricOf = () => A.METRICS[$("metric").value];
  const shown = (value) => (value === null || value === undefined ? "" : String(A.toShown(metric, value)));

  function numberOf(id) {
    const raw = $(id).value.trim();
    return raw === "" ? null : Number(raw);
  }

  // ---- labels ------------------------------------------------------------------------------
  function labelRow(name, value) {
    const row = el("div", { class: "label-row" },
      el("input", { type: "text", class: "label-name", value: name || "", placeholder: "name", "aria-label": "Label name", maxlength: "64" }),
      el("span", { class: "muted" }, "="),
      el("input", { type: "text", class: "label-value", value: value || "", placeholder: "value", "aria-label": "Label value", maxlength: "256" }),
      el("button", { type: "button", class: "icon-button label-remove", "aria-label": "Remove this label", title: "Remove" }, "×"));
    row.querySelector(".label-remove").addEventListener("click", () => { row.remove(); schedule(); });
    return row;
  }

  function labels() {
    const found = {};
    for (const row of document.querySelectorAll(".label-row")) {
      const name = row.querySelector(".label-name").value.trim();
      if (name) found[name] = row.querySelector(".label-value").value;
    }
    return found;
  }

  // ---- the form ----------------------------------------------------------------------------
  function fill(rule) {
    $("name").value = rule.name || "";
    $("target-kind").value = rule.kind || "service";
    for (const field of FIELDS) $(`target-${field}`).value = (rule.target || {})[field] || "";
    $("metric").value = rule.metric;
    $("window_s").value = rule.window_s;
    $("op").value = rule.op || ">";
    $("fire").value = shown(rule.fire);
    $("recover").value = shown(rule.recover);
    $("for_s").value = rule.for_s;
    $("keep_firing_s").value = rule.keep_firing_s;
    $("severity").value = rule.severity;
    const rows = $("label-rows");
    rows.replaceChildren(...Object.entries(rule.labels || {}).map(([name, value]) => labelRow(name, value)));
  }

  function showKind() {
    const kind = A.KINDS[$("target-kind").value];
    for (const field of document.querySelectorAll("[data-target-field]")) {
      const name = field.dataset.targetField;
      field.hidden = !kind.fields.includes(name);
      field.querySelector(".optional").hidden = !kind.optional.includes(name);
    }
  }

  function showMetric() {
    const m = metricOf();
    for (const field of document.querySelectorAll(".field.threshold")) field.hidden = !m.thresholds;
    for (const unit of document.querySelectorAll(".metric-unit")) unit.textContent = m.shown_unit;
    for (const id of ["fire", "recover"]) {
      $(id).min = String(m.low * m.scale);
      if (m.high === null) $(id).removeAttribute("max"); else $(id).max = String(m.high * m.scale);
    }
    $("metric-hint").textContent = m.hint;
    $("recover-hint").textContent = $("op").value === ">" ? "It recovers once below this." : "It recovers once above this.";
  }

  // A new metric brings its own thresholds, unless the ones in the form were typed in.
  function metricChanged() {
    const before = A.METRICS[metric];
    const now = metricOf();
    const untouched = $("op").value === before.default.op
      && numberOf("fire") === A.toShown(before.name, before.default.fire)
      && numberOf("recover") === A.toShown(before.name, before.default.recover);
    const fire = A.fromShown(before.name, numberOf("fire"));
    const recover = A.fromShown(before.name, numberOf("recover"));
    metric = now.name;
    if (untouched) {
      $("op").value = now.default.op;
      $("fire").value = shown(now.default.fire);
      $("recover").value = shown(now.default.recover);
    } else {
      $("fire").value = shown(fire);
      $("recover").value = shown(recover);
    }
    showMetric();
  }

  // The rule as the API takes it.
  function body() {
    const kind = A.KINDS[$("target-kind").value];
    const target = {};
    for (const field of kind.fields) {
      const value = $(`target-${field}`).value.trim();
      if (value) target[field] = value;
    }
    const m = metricOf();
    const rule = {
      name: $("name").value.trim(), target, metric: m.name, window_s: numberOf("window_s"),
      for_s: numberOf("for_s") ?? 0, keep_firing_s: numberOf("keep_firing_s") ?? 0,
      severity: $("severity").value, labels: labels(), contact_points: [...contactPoints].sort((a, b) => a - b),
    };
    if (m.thresholds) {
      rule.op = $("op").value;
      rule.fire = A.fromShown(m.name, numberOf("fire"));
      const recover = A.fromShown(m.name, numberOf("recover"));
      if (recover !== null) rule.recover = recover;
    }
    return rule;
  }

  // ---- errors next to their field ----------------------------------------------------------
  function clearErrors() {
    for (const field of document.querySelectorAll(".has-error")) field.classList.remove("has-error");
    for (const span of document.querySelectorAll("#rule-form .field-error, #form-error")) { span.hidden = true; span.textContent = ""; }
  }

  // `rule.target.colour` -> the target field if there is no such input; `rule.labels.x` ->
  // the labels; anything without a visible field -> beside Save.
  function fieldFor(parameter) {
    let name = parameter;
    while (name) {
      const field = document.querySelector(`#rule-form [data-param="${CSS.escape(name)}"]`);
      if (field && !field.hidden) return field;
      name = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "";
    }
    return null;
  }

  function showError(body) {
    const detail = (body && body.detail) || "The rule was refused.";
    const field = body && body.parameter ? fieldFor(body.parameter) : null;
    const span = field ? field.querySelector(".field-error") : $("form-error");
    if (field) field.classList.add("has-error");
    span.hidden = false;
    span.textContent = detail;
    return field;
  }

  // ---- the backtest ------------------------------------------------------------------------
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(runPreview, A.VOCAB.debounce_ms);
  }

  function renderPreview() {
    const many = preview.targets.length > 1;
    targetSelect.hidden = !many;
    if (many) {
      const wanted = Math.min(shownTarget, preview.targets.length - 1);
      targetSelect.replaceChildren(...preview.targets.map((t, i) => el("option", { value: String(i), selected: i === wanted }, A.targetText(t.target))));
    }
    $("backtest-summary").textContent = MeshBacktest.draw(chart, preview, { target: shownTarget });
    const empty = preview.targets.every((t) => t.values.every((v) => v === null));
    const what = preview.targets.length === 1 ? A.targetText(preview.targets[0].target) : `${preview.targets.length} targets`;
    status.classList.remove("warn");
    status.textContent = empty
      ? `No data for ${what} in the last hour: the chart fills in as traffic comes.`
      : `${what} · evaluated every ${preview.step} s, each over the ${preview.window_s} s before it`
        + (preview.truncated ? ` · ${preview.truncated} more matching targets not shown` : "");
  }

  async function runPreview() {
    clearTimeout(timer);
    const mine = ++generation;
    const rule = body();
    rule.name = rule.name || "preview"; // a preview is saved nowhere: any name does
    status.textContent = "Working out the backtest…";
    const answer = await api("POST", "/api/v1/alerts/rules/preview", rule).catch(() => null);
    if (mine !== generation) return;
    clearErrors();
    chart.classList.toggle("stale", !(answer && answer.status === 200));
    if (answer && answer.status === 200) {
      preview = answer.body;
      renderPreview();
      return;
    }
    status.classList.add("warn");
    if (answer && answer.status === 400) {
      showError(answer.body);
      status.textContent = `Fix the rule to see its backtest: ${answer.body.detail}`;
    } else if (answer && answer.status === 503) {
      status.textContent = "The live graph store (Redis) is not answering: no backtest for now; retrying…";
      timer = setTimeout(runPreview, 5000);
    } else {
      status.textContent = "Could not work out the backtest; it is tried again on the next change.";
    }
  }

  // ---- saving ------------------------------------------------------------------------------
  async function save() {
    const button = $("save-rule");
    button.disabled = true;
    clearErrors();
    const answer = await (PAGE.id ? api("PUT", `/api/v1/alerts/rules/${PAGE.id}`, body())
      : api("POST", "/api/v1/alerts/rules", body())).catch(() => null);
    if (answer && (answer.status === 200 || answer.status === 201)) {
      location.assign(`/alerts/rules/${answer.body.id}`);
      return;
    }
    button.disabled = false;
    const field = showError(answer ? answer.body : { detail: "The rule could not be saved (no answer); try again." });
    if (field) field.scrollIntoView({ block: "center", behavior: "smooth" });
  }

  // ---- what the form offers ----------------------------------------------------------------
  async function loadContactPoints() {
    const box = $("contact-points");
    const answer = await api("GET", "/api/v1/alerts/contact-points").catch(() => null);
    const listed = answer && answer.status === 200 ? answer.body.contact_points || [] : [];
    if (!listed.length) {
      box.replaceChildren(el("span", { class: "muted small", id: "no-contact-points" }, "No contact points yet: the rule's state is kept and shown here; nobody is notified."));
      return;
    }
    box.replaceChildren(...listed.map((cp) => el("label", { class: "contact-point", title: cp.failing_reason || "" },
      el("input", { type: "checkbox", value: String(cp.id), checked: contactPoints.has(cp.id), disabled: !ACCESS.allowed }),
      ` ${cp.name}`, el("span", { class: "muted small" }, ` ${cp.kind}${cp.status && cp.status !== "ok" ? ` · ${cp.status}` : ""}`))));
    for (const box2 of box.querySelectorAll("input")) {
      box2.addEventListener("change", () => {
        if (box2.checked) contactPoints.add(Number(box2.value)); else contactPoints.delete(Number(box2.value));
      });
    }
  }

  // Names to pick from: what the last hour's graph holds (typing any other name works too).
  async function loadSuggestions() {
    const answer = await api("GET", "/api/v1/graph?window=3600&level=instance").catch(() => null);
    if (!answer || answer.status !== 200) return;
    const options = (id, values) => $(id).replaceChildren(...[...new Set(values)].sort().map((v) => el("option", { value: v })));
    const nodes = answer.body.nodes;
    options("known-service", nodes.map((n) => n.id));
    options("known-version", nodes.flatMap((n) => n.versions));
    options("known-instance", nodes.flatMap((n) => (n.instances || []).map((i) => i.instance)));
  }

  // ---- wiring ------------------------------------------------------------------------------
  const form = $("rule-form");
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  $("metric").addEventListener("change", metricChanged);
  $("op").addEventListener("change", showMetric);
  $("target-kind").addEventListener("change", showKind);
  $("label-add").addEventListener("click", () => { $("label-rows").append(labelRow("", "")); });
  targetSelect.addEventListener("change", () => { shownTarget = Number(targetSelect.value); renderPreview(); });
  $("save-rule").addEventListener("click", save);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.matches("input") && ACCESS.allowed) { event.preventDefault(); save(); }
  });

  fill(PAGE.rule);
  showKind();
  showMetric();
  $("backtest-legend").replaceChildren(MeshBacktest.legend());
  runPreview();
  loadContactPoints();
  loadSuggestions();
})();
