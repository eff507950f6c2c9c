// What the policy pages share: the JSON API with the CSRF token, building elements as text
// (never markup from data), number formats, the unified diff, and the watch on the sidecars'
// ACKs after a write ("applied on 7/9 sidecars"), polled from /api/v1/proxies.
(function () {
  "use strict";

  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  // {status, body}; body is the parsed JSON (or null). Writes carry Django's CSRF token.
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = cookie("csrftoken");
    const response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let parsed = null;
    try { parsed = await response.json(); } catch (e) { parsed = null; }
    return { status: response.status, body: parsed };
  }

  // el("td", {class: "num", title: t}, "text", child...): attributes and text, never HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const fmt = {
    rate(rps) {
      if (rps === null || rps === undefined) return "–";
      return (rps >= 100 ? rps.toFixed(0) : rps >= 10 ? rps.toFixed(1) : rps.toFixed(2)) + "/s";
    },
    ms(value) {
      if (value === null || value === undefined) return "–";
      return (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)) + " ms";
    },
    percent(ratio, digits) {
      if (ratio === null || ratio === undefined) return "–";
      return (ratio * 100).toFixed(digits === undefined ? 1 : digits) + "%";
    },
    time(iso) {
      return iso ? new Date(iso).toLocaleString([], { hour12: false }) : "–";
    },
  };

  // A unified diff, one element per line, coloured by its first character.
  function renderDiff(pre, unified) {
    pre.replaceChildren();
    if (!unified) { pre.append(el("span", { class: "diff-same" }, "No change.")); return; }
    for (const line of unified.split("\n")) {
      const kind = line.startsWith("+++") || line.startsWith("---") ? "diff-file"
        : line.startsWith("@@") ? "diff-hunk" : line.startsWith("+") ? "diff-add"
        : line.startsWith("-") ? "diff-del" : "diff-same";
      pre.append(el("span", { class: kind }, line), "\n");
    }
  }

  // Where the connected sidecars stand with `revision` (GET /api/v1/proxies' proxies).
  function syncOf(proxies, revision) {
    const connected = proxies.filter((p) => p.connected);
    const synced = connected.filter((p) => (p.config.revision_acked || 0) >= revision);
    const behind = connected.filter((p) => (p.config.revision_acked || 0) < revision);
    return {
      total: connected.length, synced: synced.length,
      pending: behind.filter((p) => p.config.state === "PENDING").length,
      problems: behind.filter((p) => p.config.state !== "PENDING").map((p) => ({
        proxy_id: p.proxy_id, state: p.config.state, reason: p.config.nack_reason })),
    };
  }

  function syncText(revision, sync) {
    if (!sync.total) return `revision ${revision} written; no sidecar is connected to apply it`;
    if (sync.synced === sync.total) return `revision ${revision} applied on all ${sync.total} sidecar${sync.total === 1 ? "" : "s"}`;
    return `revision ${revision} applied on ${sync.synced}/${sync.total} sidecars`;
  }

  // Polls /api/v1/proxies every `interval` ms until every connected sidecar ACKed
  // `revision` or `timeout` ms pass; draws into `target` and calls onProxies with each list.
  function watchSync(revision, target, onProxies, interval, timeout) {
    const started = Date.now();
    target.className = "progress pending";
    target.replaceChildren(`revision ${revision} written; waiting for the sidecars…`);
    async function tick() {
      const answer = await api("GET", "/api/v1/proxies").catch(() => null);
      if (answer && answer.status === 200) {
        const proxies = answer.body.proxies;
        if (onProxies) onProxies(proxies);
        const sync = syncOf(proxies, revision);
        const done = sync.synced === sync.total;
        const late = Date.now() - started > (timeout || 30000);
        target.className = "progress " + (done ? "done" : sync.problems.some((p) => p.state === "NACKED") ? "failed" : "pending");
        target.replaceChildren(el("span", { class: "sync-count" }, syncText(revision, sync)));
        for (const p of sync.problems) {
          target.append(el("span", { class: "sync-problem" }, `${p.proxy_id} ${p.state}`
            + (p.reason ? `: ${p.reason}` : p.state === "STALE" ? " (no ACK in time)" : "")));
        }
        if (done || late) return;
      }
      setTimeout(tick, interval || 500);
    }
    tick();
  }

  window.MeshUI = { api, el, fmt, renderDiff, syncOf, syncText, watchSync };
})();
