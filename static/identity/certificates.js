// The certificates page (/certificates): every sidecar's certificate (GET /api/v1/certificates,
// first from the page, then polled): its SPIFFE ID, serial, not-after (how far, and when),
// last rotation, how many were issued, whether it is connected, the server's warnings (a row
// is marked amber when one warns, red once expired). For an admin, the join tokens
// (GET /api/v1/join-tokens): create one (POST; the token shown once, in a box to copy) and
// revoke one (DELETE .../{id}, after a dialog). Everything from the network is text.
(() => {
  "use strict";
  const { api, el } = window.MeshUI;
  const $ = (id) => document.getElementById(id);
  const PAGE = JSON.parse($("certificates-page").textContent);
  const body = document.querySelector("#certificates tbody");
  let timer = null;

  // ---- times -------------------------------------------------------------------------------
  function span(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) {
      const minutes = Math.floor((s % 3600) / 60);
      return `${Math.floor(s / 3600)} h${minutes ? ` ${minutes} min` : ""}`;
    }
    const hours = Math.floor((s % 86400) / 3600);
    return `${Math.floor(s / 86400)} d${hours ? ` ${hours} h` : ""}`;
  }

  // "in 23 h 59 min" ahead, "3 min ago" past.
  function relative(iso) {
    if (!iso) return "–";
    const seconds = (Date.parse(iso) - Date.now()) / 1000;
    return seconds >= 1 ? `in ${span(seconds)}` : `${span(-seconds)} ago`;
  }

  function absolute(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // The relative time over the absolute one (also the tooltip, in UTC).
  function moment(iso, cls) {
    if (!iso) return el("span", { class: "muted" }, "never");
    return el("span", { class: `since ${cls || ""}`, title: iso, dataset: { at: iso } },
      el("span", { class: "ago" }, relative(iso)), el("span", { class: "absolute muted small" }, absolute(iso)));
  }

  function tick() {
    for (const node of document.querySelectorAll(".since[data-at]")) {
      node.querySelector(".ago").textContent = relative(node.dataset.at);
    }
  }

  // ---- certificates ------------------------------------------------------------------------
  function level(cert) {
    if (Date.parse(cert.not_after) <= Date.now()) return "expired";
    return cert.warnings.length ? "warn" : "ok";
  }

  function row(cert) {
    const state = level(cert);
    return el("tr", { class: `cert-row cert-${state}`, dataset: { proxy: cert.proxy_id, serial: cert.serial, level: state } },
      el("td", { class: "proxy" }, el("strong", {}, cert.proxy_id), el("span", { class: "muted small service" }, cert.service)),
      el("td", { class: "spiffe mono" }, cert.spiffe_id),
      el("td", { class: "serial mono", title: cert.serial }, `${cert.serial.slice(0, 12)}…`),
      el("td", { class: "not-after" }, moment(cert.not_after, state === "ok" ? "" : state)),
      el("td", { class: "rotation" }, moment(cert.last_rotation)),
      el("td", { class: "num renewals" }, String(cert.renewals)),
      el("td", { class: "connected" }, cert.connected
        ? el("span", { class: "conn yes" }, el("span", { class: "dot ok" }), " connected")
        : el("span", { class: "conn no muted" }, el("span", { class: "dot idle" }), " disconnected")),
      el("td", { class: "warnings" }, cert.warnings.length
        ? cert.warnings.map((w) => el("span", { class: `cert-warning ${state}` }, w))
        : el("span", { class: "muted" }, "–")));
  }

  function draw(listing) {
    const certs = listing.certificates;
    $("no-certs").hidden = certs.length > 0;
    $("certs-card").hidden = certs.length === 0;
    body.replaceChildren(...certs.map(row));
    const warned = certs.filter((c) => level(c) !== "ok").length;
    $("count-certs").textContent = String(certs.length);
    $("count-connected").textContent = `${certs.filter((c) => c.connected).length}/${certs.length}`;
    const warnings = $("count-warnings");
    warnings.textContent = String(warned);
    warnings.className = `value ${warned ? "warn" : "ok"}`;
    const expiry = $("ca-expiry");
    expiry.replaceChildren(`not after ${absolute(listing.ca.not_after)} (${relative(listing.ca.not_after)})`);
    expiry.className = `small ${listing.ca.warnings.length ? "warn-text" : "muted"}`;
  }

  async function poll() {
    clearTimeout(timer);
    const answer = await api("GET", "/api/v1/certificates").catch(() => null);
    if (answer && answer.status === 200) {
      draw(answer.body);
      $("certs-updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    } else {
      $("certs-updated").textContent = "could not load the certificates; retrying…";
    }
    timer = setTimeout(poll, PAGE.poll_ms);
  }

  draw(PAGE.listing);
  setInterval(tick, 1000);
  timer = setTimeout(poll, PAGE.poll_ms);
  if (!PAGE.tokens.allowed) return;

  // ---- join tokens (admins) ----------------------------------------------------------------
  const tokensBody = document.querySelector("#tokens tbody");
  const form = $("token-form");
  const dialog = $("revoke-dialog");
  let revoking = null;

  function revokeButton(token) {
    if (token.state === "revoked") return null;
    const button = el("button", { type: "button", class: "button small danger revoke", dataset: { token: String(token.id) } }, "Revoke");
    button.addEventListener("click", () => {
      revoking = token;
      $("revoke-name").textContent = `${token.prefix}… for ${token.service}`;
      $("revoke-error").hidden = true;
      $("revoke-confirm").disabled = false;
      dialog.hidden = false;
      $("revoke-cancel").focus();
    });
    return button;
  }

  function tokenRow(token) {
    return el("tr", { class: `token-row token-${token.state}`, dataset: { token: String(token.id), state: token.state } },
      el("td", { class: "num" }, String(token.id)),
      el("td", {}, el("strong", {}, token.service)),
      el("td", { class: "mono prefix" }, `${token.prefix}…`),
      el("td", {}, el("span", { class: `pill token-${token.state}` }, token.state)),
      el("td", {}, token.state === "revoked" ? moment(token.revoked_at) : moment(token.expires_at)),
      el("td", {}, moment(token.last_used_at)),
      el("td", {}, token.created_by || "–"),
      el("td", { class: "description" }, token.description || el("span", { class: "muted" }, "–")),
      el("td", { class: "num actions" }, revokeButton(token)));
  }

  async function loadTokens() {
    const answer = await api("GET", "/api/v1/join-tokens").catch(() => null);
    if (!answer || answer.status !== 200) {
      tokensBody.replaceChildren(el("tr", { class: "empty-row" }, el("td", { colspan: "9" },
        (answer && answer.body && answer.body.detail) || "Could not load the join tokens; reload the page.")));
      return;
    }
    const all = answer.body.join_tokens;
    const shown = $("tokens-all").checked ? all : all.filter((t) => t.state === "active");
    const hidden = all.length - shown.length;
    tokensBody.replaceChildren(...shown.map(tokenRow));
    if (!shown.length) {
      tokensBody.append(el("tr", { class: "empty-row" }, el("td", { colspan: "9" },
        all.length ? "No active join token." : "No join token yet: create one above.")));
    }
    if (hidden) {
      tokensBody.append(el("tr", { class: "hidden-tokens" }, el("td", { colspan: "9", class: "muted small" },
        `and ${hidden} revoked or expired (show them above)`)));
    }
  }

  function clearErrors() {
    for (const node of form.querySelectorAll(".has-error")) node.classList.remove("has-error");
    for (const span of [...form.querySelectorAll(".field-error"), $("token-error")]) { span.hidden = true; span.textContent = ""; }
  }

  // A 400 names the field (`service`, `body.description`): the message goes next to it.
  function showError(answer) {
    const detail = (answer && answer.body && answer.body.detail) || "The join token was not created; try again.";
    let parameter = (answer && answer.body && answer.body.parameter) || "";
    if (parameter === "body.service") parameter = "service";
    const field = parameter ? form.querySelector(`[data-param="${CSS.escape(parameter)}"]`) : null;
    const span = field ? field.querySelector(".field-error") : $("token-error");
    if (field) field.classList.add("has-error");
    span.hidden = false;
    span.textContent = detail;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const button = $("token-create");
    button.disabled = true;
    const answer = await api("POST", "/api/v1/join-tokens", {
      service: $("token-service").value.trim(), description: $("token-description").value.trim(),
      expires_in_s: Number($("token-expires").value) }).catch(() => null);
    button.disabled = false;
    if (!answer || answer.status !== 201) { showError(answer); return; }
    const token = answer.body;
    $("token-value").value = token.token;
    $("token-once-what").textContent = `Join token ${token.id} for ${token.service}, expires ${absolute(token.expires_at)} (${relative(token.expires_at)}).`;
    $("token-once").hidden = false;
    $("token-value").select();
    $("token-copy").textContent = "Copy";
    form.reset();
    loadTokens();
  });

  $("token-copy").addEventListener("click", async () => {
    const input = $("token-value");
    input.select();
    let copied = false;
    try { await navigator.clipboard.writeText(input.value); copied = true; } catch (e) {
      copied = document.execCommand && document.execCommand("copy");
    }
    $("token-copy").textContent = copied ? "Copied" : "Select and copy (Ctrl+C)";
  });

  // The token leaves the page once it is dismissed: it cannot be shown again.
  $("token-done").addEventListener("click", () => {
    $("token-value").value = "";
    $("token-once").hidden = true;
  });

  $("revoke-cancel").addEventListener("click", () => { dialog.hidden = true; });
  dialog.addEventListener("keydown", (event) => { if (event.key === "Escape") dialog.hidden = true; });
  $("revoke-confirm").addEventListener("click", async () => {
    const confirm = $("revoke-confirm");
    confirm.disabled = true;
    const answer = await api("DELETE", `/api/v1/join-tokens/${revoking.id}`).catch(() => null);
    if (answer && answer.status === 200) {
      dialog.hidden = true;
      loadTokens();
      poll();
      return;
    }
    confirm.disabled = false;
    $("revoke-error").hidden = false;
    $("revoke-error").textContent = (answer && answer.body && answer.body.detail) || "The token could not be revoked; try again.";
  });
  $("tokens-all").addEventListener("change", loadTokens);
  loadTokens();
})();
