// The contact points page (/alerts/contact-points): each point with its status (ok, failing
// with the reason, untested), its last attempt, the rules that notify it and its grouping
// (GET /api/v1/alerts/contact-points, polled); its recent attempts on demand; and for an
// operator "Send test notification" (POST .../{id}/test, the result shown under the row),
// Edit and Delete (asked twice). A URL is shown cut short: a Slack webhook's path is a key.
(() => {
  "use strict";
  const { api, el } = window.MeshUI;
  const A = window.MeshAlerts;
  const $ = (id) => document.getElementById(id);
  const N = JSON.parse($("notify-vocabulary").textContent);
  const ACCESS = JSON.parse($("edit-access").textContent);
  const body = document.querySelector("#contact-points tbody");
  const results = {}; // point id -> the last test's answer (kept across polls)
  const open = new Set(); // points whose attempts are shown
  const attempts = {}; // point id -> its recent attempts
  let rules = {}; // rule id -> name
  let timer = null;

  function shortUrl(raw) {
    try {
      const url = new URL(raw);
      const path = url.pathname.length > 18 ? `${url.pathname.slice(0, 16)}…` : url.pathname;
      return `${url.protocol}//${url.host}${path}`;
    } catch (e) {
      return String(raw).slice(0, 30);
    }
  }

  function statusCell(point) {
    const cell = el("td", { class: "point-status" }, el("span", { class: `pill point-${point.status}`, dataset: { status: point.status } }, point.status));
    if (point.status === "failing") {
      cell.append(el("span", { class: "failing-reason" }, point.failing_reason),
        el("span", { class: "muted small", title: point.failing_since }, `since ${A.absolute(point.failing_since)}`));
    }
    return cell;
  }

  function attemptText(attempt) {
    if (!attempt) return el("span", { class: "muted" }, "never tried");
    return el("span", { class: "attempt" },
      el("span", { class: attempt.ok ? "ok-mark" : "bad-mark" }, attempt.ok ? "✓ sent" : attempt.permanent ? "✗ refused" : "✗ failed"),
      attempt.status_code !== null ? ` · ${attempt.status_code}` : "",
      ` · ${Math.round(attempt.duration_ms)} ms · ${attempt.status} · `,
      el("span", { class: "since", title: attempt.at, dataset: { since: attempt.at } }, el("span", { class: "ago" }, A.relative(attempt.at))),
      attempt.detail ? el("span", { class: "muted small attempt-detail" }, attempt.detail) : null);
  }

  function grouping(point) {
    const by = point.group_by.includes(N.every_label) ? "every label (a message per alert)" : point.group_by.join(", ") || "nothing (one group)";
    const parts = [`by ${by}`, `wait ${A.duration(point.group_wait_s)}`, `every ${A.duration(point.group_interval_s)}`,
      `repeat ${A.duration(point.repeat_interval_s)}`];
    if (!point.send_resolved) parts.push("no resolved messages");
    const mutes = point.mute_times.map((m) => `${(m.days || []).join(" ") || "every day"} ${m.from}–${m.to} ${m.timezone || "UTC"}`);
    return el("td", { class: "grouping small" }, parts.join(" · "),
      mutes.length ? el("span", { class: "muted small mutes" }, `muted ${mutes.join("; ")}`) : null);
  }

  function actions(point) {
    const cell = el("td", { class: "num actions" });
    const toggle = el("button", { type: "button", class: "button small attempts-toggle", "aria-expanded": String(open.has(point.id)) }, "Attempts");
    toggle.addEventListener("click", () => {
      if (open.has(point.id)) open.delete(point.id); else open.add(point.id);
      refresh();
    });
    cell.append(toggle);
    if (!ACCESS.allowed) return cell;
    const test = el("button", { type: "button", class: "button small send-test", title: "Send a firing TestAlert to it now" }, "Send test notification");
    test.addEventListener("click", async () => {
      test.disabled = true;
      test.textContent = "Sending…";
      const answer = await api("POST", `/api/v1/alerts/contact-points/${point.id}/test`).catch(() => null);
      results[point.id] = answer;
      if (open.has(point.id)) delete attempts[point.id];
      refresh();
    });
    const edit = el("a", { class: "button small", href: `/alerts/contact-points/${point.id}/edit` }, "Edit");
    const remove = el("button", { type: "button", class: "button small danger delete-point", title: "Rules stop notifying it" }, "Delete");
    remove.addEventListener("click", async () => {
      if (!remove.classList.contains("confirm")) {
        remove.classList.add("confirm");
        remove.textContent = "Delete it?";
        return;
      }
      remove.disabled = true;
      const answer = await api("DELETE", `/api/v1/alerts/contact-points/${point.id}`).catch(() => null);
      remove.classList.remove("confirm");
      if (!answer || answer.status !== 200) {
        remove.disabled = false;
        remove.textContent = answer && answer.body ? answer.body.detail : "Could not delete it; try again";
        return;
      }
      refresh();
    });
    cell.append(test, edit, remove);
    return cell;
  }

  function resultRow(point) {
    const answer = results[point.id];
    if (!answer) return null;
    const ok = answer.status === 200 && answer.body.ok;
    const text = answer.status === 200
      ? `${ok ? "Test notification sent" : "Test notification failed"}${answer.body.status_code !== null ? ` (${answer.body.status_code})` : ""}: ${answer.body.detail}`
      : `The test could not be sent: ${(answer && answer.body && answer.body.detail) || "no answer"}`;
    return el("tr", { class: "test-result", dataset: { point: String(point.id), ok: String(ok) } },
      el("td", { colspan: "7" }, el("span", { class: ok ? "ok-mark" : "bad-mark" }, ok ? "✓ " : "✗ "), text));
  }

  function attemptsRow(point) {
    if (!open.has(point.id)) return null;
    const listed = attempts[point.id];
    return el("tr", { class: "attempts-row", dataset: { point: String(point.id) } }, el("td", { colspan: "7" },
      !listed ? el("span", { class: "muted" }, "Loading…")
        : !listed.length ? el("span", { class: "muted" }, "No attempt yet.")
          : el("table", { class: "table compact" }, el("tbody", {}, listed.map((a) => el("tr", {},
            el("td", {}, attemptText(a))))))));
  }

  function row(point) {
    const address = point.kind === "email" ? point.address : shortUrl(point.url);
    return el("tr", { class: "point-row", dataset: { point: String(point.id), status: point.status } },
      statusCell(point),
      el("td", { class: "rule-name" }, el("strong", {}, point.name), el("span", { class: "muted small metric" }, point.kind)),
      el("td", { class: "address mono" }, address),
      el("td", { class: "last-attempt" }, attemptText(point.last_attempt)),
      el("td", { class: "notified-by" }, point.rules.length ? point.rules.map((id, i) => el("span", {}, i ? ", " : "",
        el("a", { href: `/alerts/rules/${id}` }, rules[id] || `#${id}`))) : el("span", { class: "muted" }, "no rule")),
      grouping(point), actions(point));
  }

  async function refresh() {
    clearTimeout(timer);
    const [points, listed] = await Promise.all([api("GET", "/api/v1/alerts/contact-points"), api("GET", "/api/v1/alerts/rules")])
      .catch(() => [null, null]);
    if (listed && listed.status === 200) rules = Object.fromEntries(listed.body.rules.map((r) => [r.id, r.name]));
    if (points && points.status === 200) {
      const all = points.body.contact_points;
      await Promise.all([...open].filter((id) => !attempts[id]).map(async (id) => {
        const answer = await api("GET", `/api/v1/alerts/contact-points/${id}/attempts?limit=10`).catch(() => null);
        if (answer && answer.status === 200) attempts[id] = answer.body.attempts;
      }));
      $("no-points").hidden = all.length > 0;
      $("points-card").hidden = all.length === 0;
      if (!body.querySelector(".confirm")) {
        body.replaceChildren(...all.flatMap((p) => [row(p), resultRow(p), attemptsRow(p)].filter(Boolean)));
      }
      $("points-updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    } else {
      $("points-updated").textContent = "could not load the contact points; retrying…";
    }
    // Attempts are read again on the next poll.
    for (const id of Object.keys(attempts)) delete attempts[id];
    timer = setTimeout(refresh, N.poll_ms);
  }

  refresh();
})();
