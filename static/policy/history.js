// The policy history: a diff between any two revisions, and "roll back to this" (a new
// revision whose document is the older one's), then the sidecars' ACKs, live.
(function () {
  "use strict";

  const { api, el, renderDiff, watchSync } = window.MeshUI;
  const PAGE = JSON.parse(document.getElementById("history-page").textContent);
  const $ = (id) => document.getElementById(id);

  async function showDiff() {
    const to = $("diff-to").value;
    const from = $("diff-from").value;
    if (!to) return;
    const answer = await api("GET", `/api/v1/policy/revisions/${to}/diff?against=${from}`);
    if (answer.status === 200) renderDiff($("diff"), answer.body.unified);
    else $("diff").replaceChildren(el("span", { class: "diff-del" }, (answer.body && answer.body.detail) || `failed (${answer.status})`));
  }

  // Two clicks: the first asks, the second writes.
  async function rollback(button) {
    if (!button.classList.contains("confirming")) {
      for (const other of document.querySelectorAll(".rollback.confirming")) {
        other.classList.remove("confirming", "primary"); other.textContent = "Roll back to this";
      }
      button.classList.add("confirming", "primary");
      button.textContent = `Confirm: roll back to ${button.dataset.revision}`;
      return;
    }
    button.disabled = true;
    const answer = await api("POST", "/api/v1/policy/rollback",
      { revision: Number(button.dataset.revision), parent: PAGE.current });
    if (answer.status === 201) {
      location.assign(`${location.pathname}?written=${answer.body.revision}`);
      return;
    }
    button.disabled = false;
    const body = answer.body || {};
    const progress = $("history-progress");
    progress.className = "progress failed";
    progress.replaceChildren(el("span", {}, body.detail || `failed (${answer.status})`), " ",
      answer.status === 409 ? el("a", { href: location.pathname }, "Reload") : null);
  }

  $("diff-show").addEventListener("click", showDiff);
  for (const button of document.querySelectorAll(".rollback")) button.addEventListener("click", () => rollback(button));
  const written = Number(new URLSearchParams(location.search).get("written"));
  if (written) watchSync(written, $("history-progress"), null, 500, 30000);
  if (document.querySelector("#revisions")) showDiff();
})();
