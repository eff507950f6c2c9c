// The service page's authorization editor (docs/ui.md, "Authorization"): the service's
// ordered rules (ALLOW, DENY, AUDIT), "Allow only what you see" (one AUDIT rule per caller
// seen over a window, reviewed, then saved through the page's Apply), the callers live with
// what the rules denied or would deny, and Enforce (every AUDIT rule becomes ALLOW, in one
// revision, after a confirmation that lists who will be denied). The vocabulary and the
// rules in force come from the server (#service-page's `authorization`:
// meshui.policy.authorization_page).
//
//   const authz = MeshAuthorization.mount({ page, changed, apply, revision, wrote });
//   authz.changed()  authz.rules()  authz.saved()  authz.live(graph)  authz.holder(index)
(function () {
  "use strict";

  const { api, el, fmt, renderDiff } = window.MeshUI;
  const $ = (id) => document.getElementById(id);
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const list = (text) => text.split(",").map((part) => part.trim()).filter(Boolean);
  // node.replaceChildren(...) without the parts that are not there (null).
  const fill = (node, ...parts) => node.replaceChildren(...parts.filter((part) => part !== null && part !== undefined));

  // A rule with only what it sets: what the patch sends and what comparisons use.
  function compact(rule) {
    const out = { name: rule.name, action: rule.action };
    if (rule.sources && rule.sources.length) out.sources = [...rule.sources];
    if (rule.methods && rule.methods.length) out.methods = [...rule.methods];
    if (rule.path_prefix) out.path_prefix = rule.path_prefix;
    if (rule.headers && Object.keys(rule.headers).length) out.headers = { ...rule.headers };
    return out;
  }

  function headersText(headers) {
    return Object.entries(headers || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  }

  function parseHeaders(text) {
    const out = {};
    for (const part of list(text)) {
      const at = part.indexOf("=");
      out[(at < 0 ? part : part.slice(0, at)).trim()] = at < 0 ? "" : part.slice(at + 1).trim();
    }
    return out;
  }

  function mount(options) {
    const PAGE = options.page;
    const A = PAGE.authorization;
    let seed = A.rules.map(compact);
    let rules = seed.map(compact);
    let proposals = null; // {label, callers: [...], items: [...], error}
    let lastGraph = null;
    let lastCallers = A.callers;

    // ---- the rules ----------------------------------------------------------------------
    const ofAction = (set, action) => set.filter((r) => r.action === action);

    function modeOf(set) {
      if (ofAction(set, "ALLOW").length) return { name: "enforcing", text: `enforcing: ${ofAction(set, "ALLOW").length} ALLOW rule${ofAction(set, "ALLOW").length === 1 ? "" : "s"}` };
      if (ofAction(set, "AUDIT").length) return { name: "audit", text: `audit: ${ofAction(set, "AUDIT").length} rule${ofAction(set, "AUDIT").length === 1 ? "" : "s"} on trial` };
      if (set.length) return { name: "deny-list", text: `${set.length} DENY rule${set.length === 1 ? "" : "s"}; everyone else allowed` };
      return { name: "open", text: "no rules: every caller allowed" };
    }

    function renderMode() {
      const mode = modeOf(seed);
      $("authz-mode").className = `authz-mode mark ${mode.name}`;
      $("authz-mode").textContent = mode.text;
      $("authz-mode").dataset.mode = mode.name;
      const enforce = $("authz-enforce");
      const trial = ofAction(seed, "AUDIT").length;
      enforce.disabled = !trial || changed();
      if (options.access.allowed) {
        enforce.title = !trial ? "No AUDIT rule in force to enforce"
          : changed() ? "Apply or reset your rule changes first" : "Turn every AUDIT rule into ALLOW, in one new revision";
      }
    }

    function changed() {
      return !same(rules.map(compact), seed);
    }

    function renderRules() {
      const box = $("authz-rules");
      box.replaceChildren();
      if (!rules.length) {
        box.append(el("li", { class: "muted small empty-row" },
          "No rules: every caller is allowed. “Allow only what you see” proposes rules from the callers seen."));
      }
      rules.forEach((rule, i) => {
        const name = el("input", { type: "text", value: rule.name, class: "authz-name", "aria-label": "rule name", maxlength: String(A.rule_name_max) });
        const action = el("select", { class: `authz-action action-${rule.action}`, "aria-label": "action" },
          A.actions.map((a) => el("option", { value: a, selected: rule.action === a }, a)));
        const sources = el("input", { type: "text", value: (rule.sources || []).join(", "), class: "authz-sources",
          placeholder: `any caller (services, ${A.any_identity}, ${A.unauthenticated})`, "aria-label": "sources" });
        const methods = el("input", { type: "text", value: (rule.methods || []).join(", "), class: "authz-methods", placeholder: "any method", "aria-label": "methods" });
        const prefix = el("input", { type: "text", value: rule.path_prefix || "", class: "authz-prefix", placeholder: "/any", "aria-label": "path prefix" });
        const headers = el("input", { type: "text", value: headersText(rule.headers), class: "authz-headers", placeholder: "x-team=ops", "aria-label": "headers" });
        const update = () => {
          rules[i] = compact({ name: name.value.trim(), action: action.value, sources: list(sources.value),
            methods: list(methods.value).map((m) => m.toUpperCase()), path_prefix: prefix.value.trim() || null,
            headers: parseHeaders(headers.value) });
          action.className = `authz-action action-${action.value}`;
          options.changed();
          renderMode();
        };
        for (const input of [name, action, sources, methods, prefix, headers]) input.addEventListener("change", update);
        const move = (by) => { const [r] = rules.splice(i, 1); rules.splice(i + by, 0, r); renderRules(); options.changed(); renderMode(); };
        const outside = (rule.sources || []).includes(A.unauthenticated);
        box.append(el("li", { class: "route authz-rule", dataset: { index: String(i), name: rule.name, action: rule.action } },
          el("div", { class: "route-fields authz-fields" },
            el("div", { class: "authz-head" }, name, action),
            el("label", {}, "from (sources)", sources), el("label", {}, "methods", methods),
            el("label", {}, "path prefix", prefix), el("label", {}, "headers", headers),
            rule.action === "AUDIT" ? el("span", { class: "hint authz-trial" }, "on trial: denies nothing, counts what it would deny") : null,
            outside ? el("span", { class: "hint authz-outside" }, `${A.unauthenticated}: ${A.unknown_note}`) : null),
          el("div", { class: "route-actions" },
            el("button", { type: "button", class: "icon-button route-up", title: "move up", disabled: i === 0, onclick: () => move(-1) }, "↑"),
            el("button", { type: "button", class: "icon-button route-down", title: "move down", disabled: i === rules.length - 1, onclick: () => move(1) }, "↓"),
            el("button", { type: "button", class: "icon-button route-delete authz-delete", title: "delete",
              onclick: () => { rules.splice(i, 1); renderRules(); options.changed(); renderMode(); } }, "✕")),
          el("span", { class: "field-error", role: "alert", hidden: true })));
      });
      renderMode();
    }

    // ---- allow only what you see --------------------------------------------------------
    // The callers of the service in a graph (meshui.policy.authorization_page.callers).
    function callersOf(graph) {
      return graph.edges.filter((e) => e.target === PAGE.service).map((e) => {
        const events = e.events || {};
        const outside = e.source === A.unauthenticated;
        return { source: e.source, identity: outside ? null : `spiffe://${A.trust_domain}/service/${e.source}`,
          requests: e.requests || 0, mtls_share: outside || !e.requests ? null : Math.min(1, (events.mtls || 0) / e.requests),
          denied: events.denied || 0, audit_denied: events.audit_denied || 0 };
      }).sort((a, b) => b.requests - a.requests || a.source.localeCompare(b.source));
    }

    // seen-<caller>, as a rule name (letters, digits, '.', '_', '-'; at most rule_name_max),
    // and not one already taken.
    function ruleName(caller, taken) {
      let base = (A.proposal_prefix + caller).replace(/[^A-Za-z0-9._-]/g, "-").slice(0, A.rule_name_max)
        .replace(/[^A-Za-z0-9]+$/, "");
      let name = base;
      for (let n = 2; taken.has(name); n += 1) name = `${base.slice(0, A.rule_name_max - String(n).length - 1)}-${n}`;
      taken.add(name);
      return name;
    }

    // The rule in force or in the editor that already lets this caller in.
    function coveredBy(caller) {
      return rules.find((r) => (r.action === "ALLOW" || r.action === "AUDIT") && !r.methods && !r.path_prefix && !r.headers
        && (!r.sources || r.sources.includes(caller) || (caller !== A.unauthenticated && r.sources.includes(A.any_identity))));
    }

    async function propose() {
      const select = $("authz-window");
      const label = select.options[select.selectedIndex].dataset.label;
      $("authz-propose").disabled = true;
      const answer = await api("GET", `/api/v1/graph?window=${encodeURIComponent(select.value)}`).catch(() => null);
      $("authz-propose").disabled = false;
      if (!answer || answer.status !== 200) {
        proposals = { label, items: [], callers: [], error: `The graph is not available (${answer ? answer.status : "no answer"}): nothing to propose.` };
        renderProposals();
        return;
      }
      const callers = callersOf(answer.body).filter((c) => c.requests > 0);
      const taken = new Set(rules.map((r) => r.name));
      proposals = { label, callers, error: null, items: callers.map((c) => {
        const covered = coveredBy(c.source);
        return { caller: c.source, requests: c.requests, covered: covered ? covered.name : null,
          rule: covered ? null : { name: ruleName(c.source, taken), action: "AUDIT", sources: [c.source] } };
      }) };
      renderProposals();
    }

    function renderProposals() {
      const box = $("authz-proposals");
      box.hidden = !proposals;
      if (!proposals) { box.replaceChildren(); return; }
      const close = el("button", { type: "button", class: "button small", id: "authz-discard", onclick: () => { proposals = null; renderProposals(); } }, "Discard");
      const head = el("div", { class: "card-head" }, el("h3", {}, `Allow only what you see: the callers of the ${proposals.label}`));
      if (proposals.error || !proposals.callers.length) {
        box.replaceChildren(head, el("p", { class: "authz-empty", id: "authz-empty" }, proposals.error ||
          `No caller of ${PAGE.service} was seen in the ${proposals.label}, so there is nothing to propose: an allow-list of nobody would deny every request once enforced. Pick a longer window, or come back when it has traffic.`),
        el("div", { class: "dialog-actions" }, close));
        return;
      }
      const items = proposals.items;
      const proposed = items.filter((item) => item.rule);
      const rows = items.map((item) => el("li", { class: `authz-proposal${item.rule ? "" : " covered"}`, dataset: { caller: item.caller } },
        el("span", { class: "authz-proposal-rule" }, item.rule ? el("code", {}, item.rule.name) : el("span", { class: "muted" }, "already allowed")),
        el("span", {}, item.rule ? "AUDIT from " : "", el("strong", {}, item.caller),
          item.covered ? el("span", { class: "muted" }, ` by rule ${item.covered}`) : null),
        el("span", { class: "muted small num" }, `${item.requests.toLocaleString()} request${item.requests === 1 ? "" : "s"}`),
        item.caller === A.unauthenticated ? el("span", { class: "hint authz-outside" }, A.unknown_note) : el("span", {}),
        item.rule ? el("button", { type: "button", class: "icon-button route-delete authz-proposal-remove", title: `leave ${item.caller} out`,
          "aria-label": `leave ${item.caller} out`, onclick: () => { items.splice(items.indexOf(item), 1); renderProposals(); } }, "✕") : el("span", {})));
      const allows = ofAction(rules, "ALLOW").length;
      const save = el("button", { type: "button", class: "button primary small", id: "authz-save", disabled: !proposed.length,
        onclick: () => saveProposals(proposed) }, `Save ${proposed.length} rule${proposed.length === 1 ? "" : "s"} in audit mode…`);
      fill(box, head,
        el("p", { class: "muted small" }, `One AUDIT rule per caller: nothing is denied yet. Once saved, the callers table below shows live who these rules would deny (in amber); Enforce then turns them into ALLOW rules.`),
        allows ? el("p", { class: "problem warning" }, `${PAGE.service} has ${allows} ALLOW rule${allows === 1 ? "" : "s"} in the editor: AUDIT rules count nothing while ALLOW rules are in force.`) : null,
        el("ul", { class: "authz-proposal-list" }, rows),
        el("div", { class: "dialog-actions" }, close, save));
    }

    function saveProposals(proposed) {
      const names = proposed.map((item) => item.caller);
      rules.push(...proposed.map((item) => compact(item.rule)));
      const label = proposals.label;
      proposals = null;
      renderProposals();
      renderRules();
      options.changed();
      options.apply(`allow only what you see (${label}): ${names.join(", ")} on trial`);
    }

    // ---- live: who was denied, who would be -----------------------------------------------
    function renderCallers(callers) {
      const body = $("authz-callers").querySelector("tbody");
      if (callers === null) {
        body.replaceChildren(el("tr", { class: "empty-row" }, el("td", { colspan: "5" }, "The live graph is not available.")));
        return;
      }
      if (!callers.length) {
        body.replaceChildren(el("tr", { class: "empty-row" }, el("td", { colspan: "5" }, `No caller in the ${PAGE.window_label}.`)));
      } else {
        body.replaceChildren(...callers.map((c) => el("tr", { dataset: { caller: c.source, auditDenied: String(c.audit_denied), denied: String(c.denied) } },
          el("td", { class: "name", title: c.identity || A.unknown_note }, c.source,
            c.identity ? null : el("span", { class: "muted small" }, " outside the mesh")),
          el("td", { class: "num" }, c.requests.toLocaleString()),
          el("td", { class: "num" }, c.mtls_share === null ? "–" : fmt.percent(c.mtls_share, 0)),
          el("td", { class: `num would-deny${c.audit_denied ? " amber" : " quiet"}` }, c.audit_denied ? c.audit_denied.toLocaleString() : "–"),
          el("td", { class: `num denied${c.denied ? " red" : " quiet"}` }, c.denied ? c.denied.toLocaleString() : "–"))));
      }
      const would = callers.reduce((n, c) => n + c.audit_denied, 0);
      const denied = callers.reduce((n, c) => n + c.denied, 0);
      const summary = $("authz-live-summary");
      fill(summary,
        would ? el("span", { class: "amber" }, `${would.toLocaleString()} would be denied`) : null,
        would && denied ? " · " : null,
        denied ? el("span", { class: "red" }, `${denied.toLocaleString()} denied`) : null,
        !would && !denied ? "nothing denied" : null);
    }

    function live(graph) {
      lastGraph = graph;
      lastCallers = graph ? callersOf(graph) : null;
      renderCallers(lastCallers);
    }

    // ---- enforce ----------------------------------------------------------------------------
    const enforced = () => seed.map((r) => (r.action === "AUDIT" ? { ...r, action: "ALLOW" } : r));

    async function openEnforce() {
      const trial = ofAction(seed, "AUDIT");
      const who = (lastCallers || []).filter((c) => c.audit_denied > 0);
      const allowed = [...new Set(trial.flatMap((r) => r.sources || ["any caller"]))];
      const box = $("enforce-consequences");
      box.replaceChildren(
        el("p", {}, `${trial.length} AUDIT rule${trial.length === 1 ? "" : "s"} become${trial.length === 1 ? "s" : ""} ALLOW: `,
          ...trial.flatMap((r, i) => [i ? ", " : "", el("code", {}, r.name)]), "."),
        el("p", {}, `From now on ${PAGE.service} answers 403 (x-meshui-denied: default-deny) to every request no ALLOW rule matches. Allowed: `,
          el("strong", {}, allowed.join(", ")), "."),
        who.length
          ? el("div", { class: "enforce-denied", id: "enforce-denied" }, el("p", { class: "red" }, `Denied from now on: in the ${PAGE.window_label}, these callers' requests would have been refused:`),
            el("ul", {}, who.map((c) => el("li", { dataset: { caller: c.source } }, el("strong", {}, c.source), ` — ${c.audit_denied.toLocaleString()} of ${c.requests.toLocaleString()} requests`))))
          : el("p", { class: "muted", id: "enforce-denied" }, `No request in the ${PAGE.window_label} would have been denied: every caller seen is allowed by the rules on trial.`));
      $("enforce-problems").replaceChildren();
      $("enforce-message").value = `enforce authorization: ${trial.map((r) => r.name).join(", ")} AUDIT -> ALLOW`;
      $("enforce-confirm").disabled = true;
      $("enforce-dialog").hidden = false;
      const patch = { authorization: { rules: enforced() } };
      const answer = await api("POST", "/api/v1/policy/validate", { service: PAGE.service, patch });
      if (answer.status !== 200) {
        $("enforce-problems").replaceChildren(el("p", { class: "problem error" }, (answer.body && answer.body.detail) || `validation failed (${answer.status})`));
        return;
      }
      $("enforce-problems").replaceChildren(
        ...answer.body.errors.map((p) => el("p", { class: "problem error" }, el("strong", {}, p.field), ": ", p.detail)),
        ...answer.body.warnings.map((p) => el("p", { class: "problem warning" }, el("strong", {}, p.field), ": ", p.detail)));
      renderDiff($("enforce-diff"), answer.body.diff.unified);
      $("enforce-confirm").disabled = !answer.body.valid;
    }

    async function confirmEnforce() {
      $("enforce-confirm").disabled = true;
      const next = enforced();
      const answer = await api("PATCH", `/api/v1/policy/services/${encodeURIComponent(PAGE.service)}`,
        { patch: { authorization: { rules: next } }, parent: options.revision(), source: "ui", message: $("enforce-message").value });
      if (answer.status === 201) {
        $("enforce-dialog").hidden = true;
        seed = next.map(compact);
        rules = next.map(compact);
        renderRules();
        options.wrote(answer.body.revision);
        return;
      }
      const body = answer.body || {};
      const current = body.current;
      $("enforce-problems").replaceChildren(el("p", { class: "problem error conflict" }, answer.status === 409 && current
        ? `${current.author || "someone"} changed the policy meanwhile: revision ${current.revision}. Reload to start from it.`
        : body.detail || `failed (${answer.status})`));
    }

    // ---- start ------------------------------------------------------------------------------
    $("authz-add").addEventListener("click", () => {
      const taken = new Set(rules.map((r) => r.name));
      let n = rules.length + 1;
      while (taken.has(`rule-${n}`)) n += 1;
      rules.push({ name: `rule-${n}`, action: "ALLOW" });
      renderRules(); options.changed();
    });
    $("authz-propose").addEventListener("click", propose);
    $("authz-enforce").addEventListener("click", openEnforce);
    $("enforce-cancel").addEventListener("click", () => { $("enforce-dialog").hidden = true; });
    $("enforce-confirm").addEventListener("click", confirmEnforce);
    renderRules();
    renderCallers(lastCallers);

    return {
      changed,
      rules: () => rules.map(compact),
      saved() { seed = rules.map(compact); renderMode(); },
      live,
      renderMode,
      // Where an API error about rules[index] goes.
      holder: (index) => document.querySelector(`.authz-rule[data-index="${index}"]`) || $("authz-card"),
      graph: () => lastGraph,
    };
  }

  window.MeshAuthorization = { mount };
})();
