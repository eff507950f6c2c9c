// "Delete…" on a rule's page and in its editor: a dialog asks first, then
// DELETE /api/v1/alerts/rules/{id} and on to /alerts.
(() => {
  "use strict";
  const { api } = window.MeshUI;
  const open = document.getElementById("delete-rule");
  const dialog = document.getElementById("delete-dialog");
  if (!open || !dialog) return;
  const confirm = document.getElementById("delete-confirm");
  const error = document.getElementById("delete-error");

  open.addEventListener("click", () => { error.hidden = true; dialog.hidden = false; confirm.focus(); });
  document.getElementById("delete-cancel").addEventListener("click", () => { dialog.hidden = true; });
  dialog.addEventListener("keydown", (event) => { if (event.key === "Escape") dialog.hidden = true; });
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    const answer = await api("DELETE", `/api/v1/alerts/rules/${confirm.dataset.rule}`).catch(() => null);
    if (answer && answer.status === 200) {
      location.assign("/alerts");
      return;
    }
    confirm.disabled = false;
    error.hidden = false;
    error.textContent = answer && answer.body && answer.body.detail ? answer.body.detail : "The rule could not be deleted; try again.";
  });
})();
