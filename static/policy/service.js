// The service page: live numbers from /api/v1/graph and /api/v1/proxies, the editors, and
// Apply: the patch of what changed -> validate (diff, warnings) -> PATCH with the revision
// the page was loaded with -> the sidecars' ACKs, live. Fields, defaults and the values in
// force come from the server (#service-page: meshui.policy.service_page), never from here.
// The authorization editor is static/policy/authorization.js: its rules go into the same
// patch, its proposals open the same Apply, its Enforce writes a revision of its own.
(function () {
  "use strict";

  const { api, el, fmt, renderDiff, watchSync } = window.MeshUI;
  const { rebalance, evenly } = window.MeshSplit;
  const PAGE = JSON.parse(document.getElementById("service-page").textContent);
  const ACCESS = JSON.parse(document.getElementById("edit-access").textContent);
  const LABELS = JSON.parse(document.getElementById("mark-labels").textContent);
  const FIELDS = PAGE.fields;
  const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
  const $ = (id) => document.getElementById(id);

  const copy = (value) => JSON.parse(JSON.stringify(value));
  // Seeds: what is in force now; Apply compares against them and moves them on success.
  let revision = PAGE.revision;
  let seed = copy(PAGE.values);
  let seedSplit = copy(PAGE.split);
  let seedRoutes = copy(PAGE.routes);
  let routes = copy(PAGE.routes);
  let weights = {};
  let splitTouched = false;
  const locked = new Set();
  let observed = PAGE.graph ? PAGE.graph.observed : {};
  let authz = null; // the authorization editor (authorization.js), mounted at the start

  // ---- traffic split --------------------------------------------------------------------
  function initialWeights() {
    const names = PAGE.versions;
    if (Object.keys(seedSplit).length) {
      const out = {};
      names.forEach((v) => { out[v] = Math.round(seedSplit[v] || 0); });
      return out;
    }
    return evenly(Object.fromEntries(names.map((v) => [v, 0])), new Set());
  }

  function observedText(version) {
    const o = observed && observed[version];
    return o ? `observed ${fmt.percent(o.share)} · ${o.requests.toLocaleString()} req` : "no traffic";
  }

  function renderSplit() {
    const rows = $("split-rows");
    rows.replaceChildren();
    const names = Object.keys(weights);
    $("split-note").textContent = !names.length ? "No version of this service is known yet."
      : Object.keys(seedSplit).length ? "" : "No split in force: every version is balanced together, by instance. Move a slider to set one.";
    $("split-even").disabled = names.length < 2;
    for (const version of names) {
      const range = el("input", { type: "range", min: "0", max: "100", step: "1", value: String(weights[version]),
        class: "split-range", "aria-label": `weight of ${version}`, dataset: { version } });
      const box = el("input", { type: "number", min: "0", max: "100", step: "1", value: String(weights[version]),
        class: "split-number", "aria-label": `weight of ${version} (exact)`, dataset: { version } });
      const lock = el("input", { type: "checkbox", class: "split-lock", dataset: { version }, checked: locked.has(version) });
      range.addEventListener("input", () => setWeight(version, range.value));
      box.addEventListener("change", () => setWeight(version, box.value));
      lock.addEventListener("change", () => { lock.checked ? locked.add(version) : locked.delete(version); });
      rows.append(el("div", { class: "split-row", dataset: { version } },
        el("span", { class: "split-version" }, version), range,
        el("span", { class: "split-value" }, box, "%"),
        el("label", { class: "split-lock-label", title: "keep this weight when others move" }, lock, "lock"),
        el("span", { class: "observed", dataset: { version } }, observedText(version))));
    }
    renderTotal();
  }

  function renderTotal() {
    const total = Object.values(weights).reduce((a, b) => a + b, 0);
    $("split-total").textContent = Object.keys(weights).length ? `total ${total}%` : "";
    $("split-total").className = "split-total small " + (total === 100 ? "ok" : "bad");
  }

  function setWeight(version, value) {
    weights = rebalance(weights, locked, version, value);
    splitTouched = true;
    for (const input of document.querySelectorAll(".split-range, .split-number")) {
      input.value = String(weights[input.dataset.version]);
    }
    renderTotal();
    changed();
  }

  function renderObserved() {
    for (const span of document.querySelectorAll(".observed")) span.textContent = observedText(span.dataset.version);
  }

  // ---- route rules ----------------------------------------------------------------------
  function headersText(headers) {
    return Object.entries(headers || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  }

  function parseHeaders(text) {
    const out = {};
    for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
      const at = part.indexOf("=");
      out[(at < 0 ? part : part.slice(0, at)).trim()] = at < 0 ? "" : part.slice(at + 1).trim();
    }
    return out;
  }

  function targetOf(route) {
    const keys = route.split ? Object.keys(route.split) : [];
    if (!keys.length) return "";
    return keys.length === 1 && route.split[keys[0]] === 100 ? keys[0] : "custom";
  }

  function renderRoutes() {
    const list = $("routes");
    list.replaceChildren();
    if (!routes.length) list.append(el("li", { class: "muted small empty-row" }, "No rules: every request follows the split."));
    routes.forEach((route, i) => {
      const match = route.match || {};
      const name = el("input", { type: "text", value: route.name, class: "route-name", "aria-label": "rule name" });
      const prefix = el("input", { type: "text", value: match.path_prefix || "", placeholder: "/any", class: "route-prefix", "aria-label": "path prefix" });
      const method = el("select", { class: "route-method", "aria-label": "method" },
        el("option", { value: "" }, "any method"), METHODS.map((m) => el("option", { value: m, selected: match.method === m }, m)));
      const headers = el("input", { type: "text", value: headersText(match.headers), placeholder: "x-canary=1", class: "route-headers", "aria-label": "headers" });
      const target = targetOf(route);
      const to = el("select", { class: "route-target", "aria-label": "send to" },
        el("option", { value: "" }, "the split"),
        Object.keys(weights).map((v) => el("option", { value: v, selected: target === v }, `${v} only`)),
        target === "custom" ? el("option", { value: "custom", selected: true }, "its own split (YAML)") : null);
      const update = () => {
        route.name = name.value;
        route.match = { path_prefix: prefix.value || null, method: method.value || null, headers: parseHeaders(headers.value) };
        if (to.value !== "custom") route.split = to.value ? { [to.value]: 100 } : null;
        changed();
      };
      for (const input of [name, prefix, method, headers, to]) input.addEventListener("change", update);
      const move = (by) => { const [r] = routes.splice(i, 1); routes.splice(i + by, 0, r); renderRoutes(); changed(); };
      list.append(el("li", { class: "route", dataset: { index: String(i) } },
        el("div", { class: "route-fields" }, name,
          el("label", {}, "path", prefix), el("label", {}, "method", method),
          el("label", {}, "headers", headers), el("label", {}, "send to", to),
          route.fault ? el("span", { class: "mark fault" }, "fault") : null),
        el("div", { class: "route-actions" },
          el("button", { type: "button", class: "icon-button route-up", title: "move up", disabled: i === 0, onclick: () => move(-1) }, "↑"),
          el("button", { type: "button", class: "icon-button route-down", title: "move down", disabled: i === routes.length - 1, onclick: () => move(1) }, "↓"),
          el("button", { type: "button", class: "icon-button route-delete", title: "delete", onclick: () => { routes.splice(i, 1); renderRoutes(); changed(); } }, "✕")),
        el("span", { class: "field-error", role: "alert", hidden: true })));
    });
  }

  // ---- fields ---------------------------------------------------------------------------
  function control(path) { return document.querySelector(`[data-path="${path}"]`); }

  function read(field) {
    const input = control(field.path);
    if (field.kind === "flag") return input.checked;
    if (field.kind === "choice") return input.value;
    if (field.kind === "conditions") return [...input.querySelectorAll("input:checked")].map((c) => c.value).sort();
    if (field.kind === "statuses") {
      return input.value.split(",").map((s) => s.trim()).filter(Boolean).map((s) => (/^\d+$/.test(s) ? Number(s) : s)).sort();
    }
    return input.value.trim() === "" ? null : Number(input.value);
  }

  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

  function put(target, path, value) {
    const keys = path.split(".");
    let at = target;
    for (const key of keys.slice(0, -1)) {
      if (!at[key] || typeof at[key] !== "object") at[key] = {};
      at = at[key];
    }
    at[keys[keys.length - 1]] = value;
  }

  function faultOf(values) {
    const delay = values["fault.delay.fixed_ms"] === null ? null : { fixed_ms: values["fault.delay.fixed_ms"] };
    const abort = values["fault.abort.status"] === null ? null : { status: values["fault.abort.status"] };
    if (delay && values["fault.delay.percent"] !== null) delay.percent = values["fault.delay.percent"];
    if (abort && values["fault.abort.percent"] !== null) abort.percent = values["fault.abort.percent"];
    return delay || abort ? { delay, abort } : null;
  }

  // The merge patch (RFC 7386) of the service's policy: only what differs from the seeds.
  function buildPatch() {
    const values = Object.fromEntries(FIELDS.map((f) => [f.path, read(f)]));
    const patch = {};
    const cleared = [];
    for (const f of FIELDS) {
      if (f.path.startsWith("fault.") || same(values[f.path], seed[f.path])) continue;
      put(patch, f.path, values[f.path]);
      if (values[f.path] === null && f.clears) cleared.push(f.clears);
    }
    cleared.forEach((path) => put(patch, path, null)); // an emptied rate: no bucket at all
    const fault = faultOf(values);
    const faultChanged = FIELDS.some((f) => f.path.startsWith("fault.") && !same(values[f.path], seed[f.path]));
    if (faultChanged || !same(routes, seedRoutes)) {
      patch.routes = [...routes, ...(fault ? [{ name: PAGE.fault_route, match: {}, fault }] : [])];
    }
    if (splitTouched && !same(weights, seedSplit)) patch.split = { ...weights };
    if (authz && authz.changed()) patch.authorization = { rules: authz.rules() };
    $("fault-badge").hidden = !fault;
    return { patch, values };
  }

  function changed() {
    const count = Object.keys(buildPatch().patch).length;
    if (authz) authz.renderMode();
    $("change-count").textContent = count ? `${count} section${count === 1 ? "" : "s"} changed` : "No changes";
    $("change-count").className = count ? "changes" : "muted";
    clearErrors();
  }

  // ---- errors next to their field -------------------------------------------------------
  function clearErrors() {
    for (const e of document.querySelectorAll(".editors .field-error")) { e.hidden = true; e.textContent = ""; }
    for (const e of document.querySelectorAll(".has-error")) e.classList.remove("has-error");
  }

  // services.<name>.outlier_detection.interval_s -> the [data-field] holding that control.
  function holderOf(field) {
    const prefix = `services.${PAGE.service}.`;
    const rest = field.startsWith(prefix) ? field.slice(prefix.length) : field;
    const rule = /^authorization\.rules\[(\d+)\]/.exec(rest);
    if (rule) return authz.holder(rule[1]);
    const route = /^routes\[(\d+)\]/.exec(rest);
    if (route) {
      const item = document.querySelector(`.route[data-index="${route[1]}"]`);
      return item || $("fault-card").querySelector(".field") || $("routes-card");
    }
    const holders = [...document.querySelectorAll(".editors [data-field]")]
      .filter((h) => rest === h.dataset.field || rest.startsWith(h.dataset.field + "."));
    return holders.sort((a, b) => b.dataset.field.length - a.dataset.field.length)[0] || null;
  }

  function showError(field, detail) {
    const holder = holderOf(field);
    if (!holder) return false;
    const slot = holder.querySelector(".field-error");
    slot.textContent = `${field}: ${detail}`;
    slot.hidden = false;
    holder.classList.add("has-error");
    holder.scrollIntoView({ block: "center", behavior: "smooth" });
    return true;
  }

  // ---- apply ----------------------------------------------------------------------------
  let pending = null;

  function problemList(items, kind) {
    return items.map((p) => el("p", { class: `problem ${kind}` }, el("strong", {}, p.field), ": ", p.detail));
  }

  async function openApply(message) {
    const { patch } = buildPatch();
    $("apply-message").value = typeof message === "string" ? message : $("apply-message").value;
    if (!Object.keys(patch).length) { $("change-count").textContent = "No changes to apply"; return; }
    const answer = await api("POST", "/api/v1/policy/validate", { service: PAGE.service, patch });
    const box = $("apply-problems");
    box.replaceChildren();
    if (answer.status !== 200) {
      box.append(el("p", { class: "problem error" }, (answer.body && answer.body.detail) || `validation failed (${answer.status})`));
    } else {
      box.append(...problemList(answer.body.errors, "error"), ...problemList(answer.body.warnings, "warning"));
      answer.body.errors.forEach((e) => showError(e.field, e.detail));
      renderDiff($("apply-diff"), answer.body.diff.unified);
    }
    $("apply-confirm").disabled = answer.status !== 200 || !answer.body.valid;
    pending = patch;
    $("apply-dialog").hidden = false;
    $("apply-message").focus();
  }

  function stale(current) {
    const who = current.author ? `${current.author}` : "someone";
    const box = $("apply-problems");
    box.replaceChildren(el("p", { class: "problem error conflict" },
      `${who} changed the policy meanwhile: revision ${current.revision}`,
      current.created_at ? ` at ${fmt.time(current.created_at)}` : "", current.message ? ` (“${current.message}”)` : "",
      ". Reload to start from it; your changes here are not kept.", " ",
      el("button", { type: "button", class: "button small", id: "reload", onclick: () => location.reload() }, "Reload")));
    $("apply-confirm").disabled = true;
  }

  async function confirmApply() {
    $("apply-confirm").disabled = true;
    const answer = await api("PATCH", `/api/v1/policy/services/${encodeURIComponent(PAGE.service)}`,
      { patch: pending, parent: revision, source: "ui", message: $("apply-message").value });
    if (answer.status === 201) {
      $("apply-dialog").hidden = true;
      revision = answer.body.revision;
      $("loaded-revision").textContent = String(revision);
      seed = Object.fromEntries(FIELDS.map((f) => [f.path, read(f)]));
      seedRoutes = copy(routes);
      if (splitTouched) seedSplit = { ...weights };
      authz.saved();
      changed();
      watchSync(revision, $("apply-progress"), renderInstances, 500, 30000);
      return;
    }
    const body = answer.body || {};
    if (answer.status === 409 && body.current) return stale(body.current);
    $("apply-problems").replaceChildren(el("p", { class: "problem error" }, body.detail || `failed (${answer.status})`));
    if (answer.status === 400 && body.field) {
      $("apply-dialog").hidden = true;
      if (!showError(body.field, (body.errors && body.errors[0] && body.errors[0].detail) || body.detail)) {
        $("apply-progress").textContent = body.detail;
      }
    }
  }

  // ---- live numbers ---------------------------------------------------------------------
  function renderGraph(graph) {
    const g = graph && graph.golden;
    $("g-rps").textContent = g ? fmt.rate(g.rps) : "–";
    $("g-success").textContent = g && g.success !== null ? fmt.percent(g.success, 2) : "–";
    $("g-p50").textContent = g ? fmt.ms(g.p50_ms) : "–";
    $("g-p95").textContent = g ? fmt.ms(g.p95_ms) : "–";
    $("g-p99").textContent = g ? fmt.ms(g.p99_ms) : "–";
    const b = (graph && graph.breaker) || { ejections: 0, overflows: 0 };
    $("breaker-live").replaceChildren(
      el("span", { class: "live-count" + (b.ejections ? " warn" : ""), id: "live-ejections" }, `${b.ejections} ejection${b.ejections === 1 ? "" : "s"} in the ${PAGE.window_label}`),
      el("span", { class: "live-count" + (b.overflows ? " warn" : ""), id: "live-overflows" }, `${b.overflows} overflow${b.overflows === 1 ? "" : "s"} in the ${PAGE.window_label}`),
    );
    observed = (graph && graph.observed) || {};
    renderObserved();
  }

  // Who keeps which instance out now, from the sidecars' heartbeats (GET /api/v1/ejections).
  function renderEjections(rows) {
    const box = $("ejected-now");
    if (!rows.length) {
      box.replaceChildren(el("span", { class: "live-count" }, "No instance ejected now"));
      return;
    }
    box.replaceChildren(...rows.map((row) => {
      const left = Math.max(0, Math.round((Date.parse(row.until) - Date.now()) / 1000));
      const callers = row.ejected_by.length === 1 ? row.ejected_by[0] : `${row.ejected_by.length} callers`;
      return el("div", { class: "ejected-row", dataset: { instance: row.instance } },
        el("span", { class: "live-count warn" }, `${row.instance} ejected`),
        el("span", { class: "small", title: row.ejected_by.join(", ") },
          ` by ${callers} until ${new Date(row.until).toLocaleTimeString([], { hour12: false })} (${left} s left)`));
    }));
  }

  // Where the time goes (MeshPanel): the service's, one version's or one instance's live
  // heatmap and golden metrics, picked in #panel-scope; a link picks one with #version-v2 or
  // #instance-<proxy id> (the graph's instance panel links there).
  function mountPanel() {
    const select = $("panel-scope");
    const versions = PAGE.instances.map((g) => g.version).filter((v) => v);
    for (const version of versions) select.append(el("option", { value: `version=${version}` }, `version ${version}`));
    for (const group of PAGE.instances) {
      for (const instance of group.instances) select.append(el("option", { value: `instance=${instance.proxy_id}` }, `instance ${instance.proxy_id}`));
    }
    const scopeOf = (value) => {
      const [kind, name] = value.split(/=(.*)/s);
      return name ? { service: PAGE.service, [kind]: name } : { service: PAGE.service };
    };
    const hashOf = (value) => (value ? `#${value.replace("=", "-")}` : "");
    const linked = () => {
      const wanted = [...select.options].find((o) => o.value && hashOf(o.value) === decodeURIComponent(location.hash));
      if (wanted) select.value = wanted.value;
      return Boolean(wanted);
    };
    linked();
    // "Alert on this" (operators): a new rule on the scope picked.
    const alertLink = $("alert-on-this");
    const linkAlert = () => {
      if (alertLink) alertLink.href = `/alerts/rules/new?${new URLSearchParams(scopeOf(select.value))}`;
    };
    linkAlert();
    const panel = window.MeshPanel.mount($("service-panel"), scopeOf(select.value));
    select.addEventListener("change", () => {
      linkAlert();
      panel.scope(scopeOf(select.value));
      history.replaceState(null, "", location.pathname + location.search + hashOf(select.value));
    });
    window.addEventListener("hashchange", () => { if (linked()) { linkAlert(); panel.scope(scopeOf(select.value)); } });
  }

  // The same sums as meshui.policy.service_page, over the graph API's JSON.
  function fromGraph(graph) {
    const edges = graph.edges.filter((e) => e.target === PAGE.service);
    const node = graph.nodes.find((n) => n.id === PAGE.service);
    const sums = {};
    let total = 0;
    for (const edge of edges) {
      for (const [version, t] of Object.entries(edge.by_version || {})) {
        const acc = sums[version] || (sums[version] = { requests: 0, errors: 0, rps: 0 });
        acc.requests += t.requests || 0; acc.errors += t.errors || 0; acc.rps += t.rps || 0;
        total += t.requests || 0;
      }
    }
    const seen = {};
    if (total) for (const [v, acc] of Object.entries(sums)) seen[v] = { ...acc, share: acc.requests / total };
    const events = (key) => edges.reduce((n, e) => n + ((e.events || {})[key] || 0), 0);
    return {
      golden: node ? { rps: node.rps, success: node.requests ? 1 - node.error_rate : null,
        p50_ms: node.p50_ms, p95_ms: node.p95_ms, p99_ms: node.p99_ms } : null,
      observed: seen, breaker: { ejections: events("ejections"), overflows: events("overflows") },
    };
  }

  const STATE_CLASS = { SYNCED: "ok", PENDING: "warn", STALE: "warn", NACKED: "bad", NOT_SENT: "idle" };

  function renderInstances(proxies) {
    const mine = proxies.filter((p) => p.service === PAGE.service);
    const box = $("instances");
    box.replaceChildren();
    if (!mine.length) { box.append(el("p", { class: "muted small" }, "No sidecar of this service has registered.")); return; }
    const versions = [...new Set(mine.map((p) => p.version))].sort();
    for (const version of versions) {
      const rows = mine.filter((p) => p.version === version);
      box.append(el("h3", {}, version || "(no version)", el("span", { class: "muted small" }, ` · ${rows.length} instance${rows.length === 1 ? "" : "s"}`)),
        el("table", { class: "table instances" }, el("tbody", {}, rows.map((p) => el("tr", { id: `instance-${p.proxy_id}`, class: location.hash === `#instance-${p.proxy_id}` ? "linked" : "", dataset: { proxy: p.proxy_id } },
          el("td", { class: "name", title: p.address }, p.proxy_id, el("span", { class: "muted small" }, ` ${p.address}`)),
          el("td", {}, el("span", { class: `state ${STATE_CLASS[p.config.state] || "idle"}` }, p.connected ? p.config.state : "disconnected")),
          el("td", { class: "muted small reason" }, p.config.nack_reason || (p.config.revision_acked ? `runs revision ${p.config.revision_acked}` : "")))))));
    }
  }

  function renderMarks(marks) {
    $("marks").replaceChildren(...marks.map((m) => el("li", { class: `mark ${m}` }, LABELS[m] || m)));
  }

  async function poll(path, each, every) {
    const answer = await api("GET", path).catch(() => null);
    if (answer && answer.status === 200) each(answer.body);
    if (path.startsWith("/api/v1/graph") && answer) $("source-down").hidden = answer.status !== 503;
    setTimeout(() => poll(path, each, every), every);
  }

  // ---- start ----------------------------------------------------------------------------
  // Its rules join the patch; a revision Enforce wrote is the page's parent from then on.
  authz = window.MeshAuthorization.mount({
    page: PAGE, access: ACCESS, changed, apply: openApply, revision: () => revision,
    wrote(number) {
      revision = number;
      $("loaded-revision").textContent = String(number);
      watchSync(number, $("apply-progress"), renderInstances, 500, 30000);
    },
  });
  weights = initialWeights();
  renderSplit();
  renderRoutes();
  renderGraph(PAGE.graph);
  renderInstances(PAGE.instances.flatMap((g) => g.instances.map((i) => ({ ...i, service: PAGE.service, version: g.version,
    config: { state: i.state, revision_acked: i.revision_acked, nack_reason: i.nack_reason } }))));
  renderMarks(PAGE.marks);
  // /services/<name>#instance-<proxy_id> (the graph's instance panel): the row exists only now.
  if (location.hash.startsWith("#instance-")) {
    const linked = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (linked) linked.scrollIntoView({ block: "center" });
  }
  document.querySelector(".editors").addEventListener("input", (e) => { if (!e.target.closest("#split-card")) changed(); });
  document.querySelector(".editors").addEventListener("change", (e) => { if (!e.target.closest("#split-card, #routes")) changed(); });
  $("split-even").addEventListener("click", () => { weights = evenly(weights, locked); splitTouched = true; renderSplit(); changed(); });
  $("route-add").addEventListener("click", () => {
    routes.push({ name: `rule-${routes.length + 1}`, match: { path_prefix: null, method: null, headers: {} }, split: null, fault: null });
    renderRoutes(); changed();
  });
  $("reset").addEventListener("click", () => location.reload());
  $("apply").addEventListener("click", () => openApply());
  $("apply-cancel").addEventListener("click", () => { $("apply-dialog").hidden = true; });
  $("apply-confirm").addEventListener("click", confirmApply);
  changed();
  poll(`/api/v1/graph?window=${PAGE.window}`, (graph) => { renderGraph(fromGraph(graph)); authz.live(graph); }, 2000);
  poll("/api/v1/proxies", (body) => renderInstances(body.proxies), 3000);
  mountPanel();
  poll(`/api/v1/ejections?service=${encodeURIComponent(PAGE.service)}`, (body) => renderEjections(body.ejections), 3000);
  poll("/api/v1/policy/marks", (body) => renderMarks(body.services[PAGE.service] || body.default), 5000);
  if (!ACCESS.allowed) document.body.dataset.readOnly = "true";
})();
