// A rule's page (/alerts/rules/<id>): where it stands on each target (GET /api/v1/alerts?rule=,
// polled), every state change (GET .../rules/<id>/history, paged; the first page follows
// along), and its backtest over the last hour (POST .../rules/preview, redrawn every minute).
(() => {
  "use strict";
  const { api, el } = window.MeshUI;
  const A = window.MeshAlerts;
  const $ = (id) => document.getElementById(id);
  const PAGE = JSON.parse($("rule-page").textContent);
  const RULE = PAGE.rule;
  const BACKTEST_MS = 60000;
  const targetSelect = $("backtest-target");
  let page = 1;
  let preview = null;
  let shownTarget = 0;

  function stateRow(alert) {
    return el("tr", { class: "alert-row", dataset: { state: alert.state, target: JSON.stringify(alert.target) } },
      el("td", {}, A.pill(alert.state),
        alert.silenced ? el("span", { class: "silenced-mark", title: "A silence keeps it out of notifications" }, "silenced") : null),
      el("td", { class: "target" }, A.targetText(alert.target)),
      el("td", { class: "num value" }, A.valueText(alert.metric, alert.value)),
      el("td", {}, A.since(alert.since)),
      el("td", { class: "muted small detail" }, alert.detail,
        alert.last_evaluated ? el("span", { class: "muted small" }, ` · evaluated ${A.ago(alert.last_evaluated)}`) : null));
  }

  async function pollStates() {
    const answer = await api("GET", `/api/v1/alerts?rule=${RULE.id}`).catch(() => null);
    if (answer && answer.status === 200) {
      const alerts = answer.body.alerts.slice().sort((a, b) => A.STATES[a.state].rank - A.STATES[b.state].rank);
      $("rule-states").querySelector("tbody").replaceChildren(...alerts.map(stateRow));
      $("states-updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
      document.body.dataset.states = alerts.map((a) => a.state).join(",");
    } else {
      $("states-updated").textContent = "could not load the states; retrying…";
    }
    if (page === 1) await loadHistory();
    setTimeout(pollStates, A.VOCAB.poll_ms);
  }

  function historyRow(t) {
    return el("tr", {},
      el("td", { title: t.at }, A.absolute(t.at), el("span", { class: "muted small" }, ` · ${A.ago(t.at)}`)),
      el("td", { class: "target" }, A.targetText(t.target)),
      el("td", { class: "change" }, A.pill(t.from_state), el("span", { class: "arrow" }, " → "), A.pill(t.to_state)),
      el("td", { class: "num" }, A.valueText(RULE.metric, t.value)),
      el("td", { class: "detail" }, t.detail));
  }

  async function loadHistory() {
    const per = A.VOCAB.history_per_page;
    const answer = await api("GET", `/api/v1/alerts/rules/${RULE.id}/history?page=${page}&per_page=${per}`).catch(() => null);
    if (!answer || answer.status !== 200) return;
    const { count, transitions } = answer.body;
    const body = $("rule-history").querySelector("tbody");
    body.replaceChildren(...(transitions.length ? transitions.map(historyRow)
      : [el("tr", { class: "empty-row" }, el("td", { colspan: "5" }, "No state change yet: every target has stayed Normal since the rule was made (or changed)."))]));
    $("history-count").textContent = `${count} change${count === 1 ? "" : "s"}`;
    const pages = Math.max(1, Math.ceil(count / per));
    const link = (to, text) => {
      const a = el("a", { href: "#" }, text);
      a.addEventListener("click", (event) => { event.preventDefault(); page = to; loadHistory(); });
      return a;
    };
    $("history-pager").replaceChildren(
      page > 1 ? link(page - 1, "← newer") : "", el("span", {}, `page ${page} of ${pages}`),
      page < pages ? link(page + 1, "older →") : "");
  }

  function drawPreview() {
    targetSelect.hidden = preview.targets.length < 2;
    if (!targetSelect.hidden) {
      targetSelect.replaceChildren(...preview.targets.map((t, i) => el("option", { value: String(i), selected: i === shownTarget }, A.targetText(t.target))));
    }
    $("backtest-summary").textContent = MeshBacktest.draw($("backtest-chart"), preview, { target: shownTarget });
    $("backtest-status").textContent = `evaluated every ${preview.step} s, each over the ${preview.window_s} s before it`
      + (preview.truncated ? ` · ${preview.truncated} more matching targets not shown` : "");
  }

  async function backtest() {
    const { id, created_at, updated_at, ...fields } = RULE;
    const answer = await api("POST", "/api/v1/alerts/rules/preview", fields).catch(() => null);
    if (answer && answer.status === 200) {
      preview = answer.body;
      drawPreview();
    } else {
      $("backtest-status").textContent = answer && answer.status === 503
        ? "The live graph store (Redis) is not answering: no backtest for now; retrying…"
        : `Could not work out the backtest${answer && answer.body ? `: ${answer.body.detail}` : ""}.`;
    }
    setTimeout(backtest, BACKTEST_MS);
  }

  targetSelect.addEventListener("change", () => { shownTarget = Number(targetSelect.value); drawPreview(); });
  $("backtest-legend").replaceChildren(MeshBacktest.legend());
  pollStates();
  backtest();
})();
