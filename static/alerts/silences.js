// The silences page (/alerts/silences): every silence (GET /api/v1/alerts/silences, polled)
// with its matchers, when it starts and ends and which alerts it silences now; an operator
// creates one (POST, matchers + duration + comment; an alert's "Silence this" link opens the
// form pre-filled) and expires one (DELETE .../silences/{id}, asked twice). A 400 names the
// field (`silence.matchers[1].value`): the message goes next to it.
(() => {
  "use strict";
  const { api, el } = window.MeshUI;
  const A = window.MeshAlerts;
  const $ = (id) => document.getElementById(id);
  const N = JSON.parse($("notify-vocabulary").textContent);
  const PAGE = JSON.parse($("silences-page").textContent);
  const ACCESS = JSON.parse($("edit-access").textContent);
  const form = $("silence-form");
  const rows = $("matcher-rows");
  const body = document.querySelector("#silences tbody");
  let timer = null;

  // ---- the form ----------------------------------------------------------------------------
  function matcherRow(matcher) {
    const op = el("select", { class: "matcher-op", "aria-label": "Operator" },
      N.ops.map((o) => el("option", { value: o.op, selected: o.op === matcher.op, title: o.label }, `${o.op}  (${o.label})`)));
    const row = el("div", { class: "matcher-row", dataset: { param: "" } },
      el("input", { type: "text", class: "matcher-name", value: matcher.name, placeholder: "label", "aria-label": "Label name", maxlength: "64" }),
      op,
      el("input", { type: "text", class: "matcher-value", value: matcher.value, placeholder: "value", "aria-label": "Value", maxlength: "256" }),
      el("button", { type: "button", class: "icon-button matcher-remove", "aria-label": "Remove this matcher", title: "Remove" }, "×"),
      el("span", { class: "field-error", role: "alert", hidden: true }));
    row.querySelector(".matcher-remove").addEventListener("click", () => { row.remove(); numberRows(); });
    return row;
  }

  function numberRows() {
    [...rows.children].forEach((row, i) => { row.dataset.param = `silence.matchers[${i}]`; });
  }

  function openForm(prefill) {
    form.hidden = false;
    rows.replaceChildren(...prefill.matchers.map(matcherRow));
    numberRows();
    $("silence-comment").value = prefill.comment || "";
    $("silence-duration").value = String(prefill.duration_s || N.default_duration_s);
    $("silence-start").value = "";
    clearErrors();
    const empty = [...rows.querySelectorAll("input")].find((input) => !input.value);
    (empty || $("silence-comment")).focus();
  }

  function closeForm() {
    form.hidden = true;
    const url = new URL(location.href);
    for (const name of ["matcher", "comment", "new"]) url.searchParams.delete(name);
    history.replaceState(null, "", url);
  }

  function silenceBody() {
    const matchers = [...rows.children].map((row) => ({
      name: row.querySelector(".matcher-name").value.trim(), op: row.querySelector(".matcher-op").value,
      value: row.querySelector(".matcher-value").value }));
    const start = $("silence-start").value;
    const silence = { matchers, duration_s: Number($("silence-duration").value), comment: $("silence-comment").value.trim() };
    if (start) silence.starts_at = new Date(start).toISOString();
    return silence;
  }

  function clearErrors() {
    for (const node of form.querySelectorAll(".has-error")) node.classList.remove("has-error");
    for (const span of form.querySelectorAll(".field-error")) { span.hidden = true; span.textContent = ""; }
  }

  // `silence.matchers[1].value` -> that row; `silence.ends_at` -> the duration.
  function showError(answer) {
    const detail = (answer && answer.body && answer.body.detail) || "The silence was refused; try again.";
    let parameter = (answer && answer.body && answer.body.parameter) || "";
    if (parameter === "silence.ends_at") parameter = "silence.duration_s";
    const match = /^silence\.matchers\[(\d+)\]/.exec(parameter);
    const field = match ? rows.children[Number(match[1])] : parameter ? form.querySelector(`[data-param="${CSS.escape(parameter)}"]`) : null;
    const span = field ? field.querySelector(".field-error") : $("silence-error");
    if (field) field.classList.add("has-error");
    span.hidden = false;
    span.textContent = detail;
  }

  async function create() {
    const button = $("silence-create");
    button.disabled = true;
    clearErrors();
    const answer = await api("POST", "/api/v1/alerts/silences", silenceBody()).catch(() => null);
    button.disabled = false;
    if (answer && answer.status === 201) {
      closeForm();
      document.body.dataset.created = String(answer.body.id);
      poll();
      return;
    }
    showError(answer);
  }

  // ---- the list ----------------------------------------------------------------------------
  function matcherChips(matchers) {
    return el("span", { class: "label-chips" }, matchers.map((m) => el("span", { class: "label-chip" }, `${m.name}${m.op}"${m.value}"`)));
  }

  function expireButton(silence) {
    if (!ACCESS.allowed || silence.state === "expired") return null;
    const button = el("button", { type: "button", class: "button small danger expire", title: "End it now (it stays listed, expired)" }, "Expire");
    button.addEventListener("click", async () => {
      if (!button.classList.contains("confirm")) {
        button.classList.add("confirm");
        button.textContent = "Expire now?";
        return;
      }
      button.disabled = true;
      const answer = await api("DELETE", `/api/v1/alerts/silences/${silence.id}`).catch(() => null);
      button.classList.remove("confirm");
      if (!answer || answer.status !== 200) {
        button.disabled = false;
        button.textContent = answer && answer.body ? answer.body.detail : "Could not expire it; try again";
        return;
      }
      poll();
    });
    return button;
  }

  function matching(silence) {
    if (silence.state === "expired") return el("span", { class: "muted" }, "–");
    if (!silence.matching.length) return el("span", { class: "muted" }, "no alert now");
    return el("span", { class: "matching" }, `${silence.matching.length} alert${silence.matching.length === 1 ? "" : "s"}: `,
      silence.matching.slice(0, 3).map((a, i) => el("span", {}, i ? ", " : "",
        el("a", { href: `/alerts/rules/${a.rule}` }, a.name), ` on ${A.targetText(a.target)}`)),
      silence.matching.length > 3 ? ` and ${silence.matching.length - 3} more` : "");
  }

  function row(silence) {
    return el("tr", { class: `silence-row silence-${silence.state}`, dataset: { silence: String(silence.id), state: silence.state } },
      el("td", {}, el("span", { class: `pill silence-${silence.state}` }, silence.state)),
      el("td", { class: "matchers" }, matcherChips(silence.matchers)),
      el("td", {}, A.since(silence.starts_at)),
      el("td", {}, A.since(silence.ends_at)),
      el("td", { class: "comment" }, silence.comment || el("span", { class: "muted" }, "–")),
      el("td", {}, silence.created_by || "–"),
      el("td", { class: "silenced-now" }, matching(silence)),
      el("td", { class: "num actions" }, expireButton(silence)));
  }

  async function poll() {
    clearTimeout(timer);
    const state = $("filter-silence-state").value;
    const answer = await api("GET", `/api/v1/alerts/silences${state ? `?state=${state}` : ""}`).catch(() => null);
    if (answer && answer.status === 200) {
      const silences = answer.body.silences;
      // A row being confirmed keeps its button: redraw only what changed.
      if (!body.querySelector(".expire.confirm")) {
        body.replaceChildren(...(silences.length ? silences.map(row)
          : [el("tr", { class: "empty-row" }, el("td", { colspan: "8" }, state ? `No ${state} silence.` : "No silence yet: every alert notifies its contact points."))]));
      }
      $("silences-updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    } else {
      $("silences-updated").textContent = "could not load the silences; retrying…";
    }
    timer = setTimeout(poll, N.poll_ms);
  }

  $("new-silence").addEventListener("click", () => openForm({ matchers: [{ name: N.alertname, op: "=", value: "" }] }));
  $("matcher-add").addEventListener("click", () => { rows.append(matcherRow({ name: "", op: "=", value: "" })); numberRows(); });
  $("silence-cancel").addEventListener("click", closeForm);
  $("silence-create").addEventListener("click", create);
  $("silence-filters").addEventListener("change", () => {
    const url = new URL(location.href);
    const state = $("filter-silence-state").value;
    if (state) url.searchParams.set("state", state); else url.searchParams.delete("state");
    history.replaceState(null, "", url);
    poll();
  });
  $("silence-filters").addEventListener("submit", (event) => { event.preventDefault(); poll(); });

  if (PAGE.prefill.open && ACCESS.allowed) openForm(PAGE.prefill);
  poll();
})();
