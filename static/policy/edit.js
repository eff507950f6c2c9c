// The YAML editor: the server parses and validates as you type (debounced), each error
// names its field and the line it is on; Create revision writes it on the revision the
// page was loaded with, then the sidecars' ACKs show live.
(function () {
  "use strict";

  const { api, el, renderDiff, watchSync } = window.MeshUI;
  const PAGE = JSON.parse(document.getElementById("edit-page").textContent);
  const ACCESS = JSON.parse(document.getElementById("edit-access").textContent);
  const $ = (id) => document.getElementById(id);
  const text = $("yaml");
  let parent = PAGE.revision;
  let valid = false;
  let timer = null;
  let asked = 0;

  function gutter(badLines) {
    const count = text.value.split("\n").length;
    const lines = [];
    for (let n = 1; n <= count; n += 1) lines.push(el("span", { class: badLines.has(n) ? "bad-line" : null }, String(n)));
    $("gutter").replaceChildren(...lines);
    text.rows = count + 1;
  }

  function problems(errors, warnings) {
    const box = $("yaml-problems");
    box.replaceChildren();
    if (!errors.length) box.append(el("p", { class: "ok-line" }, "Valid: every sidecar would accept this document."));
    for (const [kind, items] of [["error", errors], ["warning", warnings]]) {
      for (const p of items) {
        box.append(el("p", { class: `problem ${kind}`, dataset: { field: p.field, line: p.line || "" } },
          p.line ? el("span", { class: "line" }, `line ${p.line} · `) : null, el("strong", {}, p.field), ": ", p.detail));
      }
    }
    gutter(new Set(errors.map((p) => p.line).filter(Boolean)));
  }

  async function validate() {
    const mine = ++asked;
    const answer = await api("POST", "/api/v1/policy/validate", { yaml: text.value });
    if (mine !== asked) return; // a newer keystroke's answer is on its way
    if (answer.status !== 200) {
      problems([{ field: "yaml", detail: (answer.body && answer.body.detail) || `failed (${answer.status})` }], []);
      valid = false;
    } else {
      problems(answer.body.errors, answer.body.warnings);
      renderDiff($("yaml-diff"), answer.body.diff.unified);
      valid = answer.body.valid && answer.body.diff.unified !== "";
    }
    $("yaml-save").disabled = !ACCESS.allowed || !valid;
  }

  async function save() {
    $("yaml-save").disabled = true;
    const answer = await api("POST", "/api/v1/policy/revisions",
      { yaml: text.value, parent, message: $("yaml-message").value, source: "ui" });
    const body = answer.body || {};
    if (answer.status === 201) {
      parent = body.revision;
      $("base-revision").textContent = String(parent);
      watchSync(parent, $("yaml-progress"), null, 500, 30000);
      validate();
      return;
    }
    if (answer.status === 400 && body.errors) problems(body.errors, body.warnings || []);
    const progress = $("yaml-progress");
    progress.className = "progress failed";
    progress.replaceChildren(el("span", {}, body.detail || `failed (${answer.status})`), " ",
      answer.status === 409 ? el("a", { href: location.pathname }, "Reload") : null);
  }

  text.addEventListener("input", () => {
    gutter(new Set());
    clearTimeout(timer);
    timer = setTimeout(validate, 350);
  });
  text.addEventListener("keydown", (e) => { // Tab indents (two spaces) instead of leaving
    if (e.key !== "Tab" || text.readOnly) return;
    e.preventDefault();
    text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end");
    text.dispatchEvent(new Event("input"));
  });
  $("yaml-save").addEventListener("click", save);
  gutter(new Set());
  validate();
})();
