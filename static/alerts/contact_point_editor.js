// A contact point's editor (/alerts/contact-points/new, .../<id>/edit): its kind and where it
// sends (a URL, or email addresses), whether resolved alerts are sent, Alertmanager's
// grouping and the weekly mute times. Save is POST or PUT /api/v1/alerts/contact-points,
// then the list; a 400 names the field (`contact_point.mute_times[0].from`): its message
// goes next to it. The defaults come from the server (#notify-vocabulary).
(() => {
  "use strict";
  const { api, el } = window.MeshUI;
  const $ = (id) => document.getElementById(id);
  const N = JSON.parse($("notify-vocabulary").textContent);
  const PAGE = JSON.parse($("point-editor").textContent);
  const KINDS = Object.fromEntries(N.kinds.map((k) => [k.kind, k]));
  const rows = $("mute-rows");

  function muteRow(mute) {
    const days = el("span", { class: "checks mute-days" }, N.days.map((day) => el("label", {},
      el("input", { type: "checkbox", value: day, checked: (mute.days || []).includes(day) }), day)));
    const row = el("div", { class: "mute-row" },
      days,
      el("label", { class: "small muted" }, "from ", el("input", { type: "text", class: "mute-from", value: mute.from || "00:00", placeholder: "HH:MM", maxlength: "5", size: "5" })),
      el("label", { class: "small muted" }, "to ", el("input", { type: "text", class: "mute-to", value: mute.to || "24:00", placeholder: "HH:MM", maxlength: "5", size: "5" })),
      el("label", { class: "small muted" }, "time zone ", el("input", { type: "text", class: "mute-timezone", value: mute.timezone || "UTC", maxlength: "64", placeholder: "Europe/Paris" })),
      el("button", { type: "button", class: "icon-button mute-remove", "aria-label": "Remove this mute time", title: "Remove" }, "×"),
      el("span", { class: "field-error", role: "alert", hidden: true }));
    row.querySelector(".mute-remove").addEventListener("click", () => row.remove());
    return row;
  }

  function fill(point) {
    const d = N.point_defaults;
    $("point-name").value = point ? point.name : "";
    $("point-kind").value = point ? point.kind : N.kinds[0].kind;
    $("point-url").value = (point && point.url) || "";
    $("point-address").value = (point && point.address) || "";
    $("point-send-resolved").checked = point ? point.send_resolved : d.send_resolved;
    $("point-group-by").value = (point ? point.group_by : d.group_by).join(", ");
    $("point-group-wait").value = point ? point.group_wait_s : d.group_wait_s;
    $("point-group-interval").value = point ? point.group_interval_s : d.group_interval_s;
    $("point-repeat-interval").value = point ? point.repeat_interval_s : d.repeat_interval_s;
    rows.replaceChildren(...((point && point.mute_times) || []).map(muteRow));
  }

  function showKind() {
    const kind = KINDS[$("point-kind").value];
    const url = kind.field === "url";
    $("url-field").hidden = !url;
    $("address-field").hidden = url;
    if (url) $("point-url-label").textContent = kind.label;
    $(url ? "point-url-hint" : "point-address-hint").textContent = kind.help;
    $(url ? "point-url" : "point-address").placeholder = kind.placeholder;
  }

  const number = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));

  function body() {
    const kind = KINDS[$("point-kind").value];
    const point = {
      name: $("point-name").value.trim(), kind: kind.kind, send_resolved: $("point-send-resolved").checked,
      group_by: $("point-group-by").value.split(",").map((v) => v.trim()).filter(Boolean),
      group_wait_s: number("point-group-wait"), group_interval_s: number("point-group-interval"),
      repeat_interval_s: number("point-repeat-interval"),
      mute_times: [...rows.children].map((row) => ({
        days: [...row.querySelectorAll(".mute-days input:checked")].map((input) => input.value),
        from: row.querySelector(".mute-from").value.trim(), to: row.querySelector(".mute-to").value.trim(),
        timezone: row.querySelector(".mute-timezone").value.trim() || "UTC" })),
    };
    point[kind.field] = $(kind.field === "url" ? "point-url" : "point-address").value.trim();
    return point;
  }

  function clearErrors() {
    for (const node of document.querySelectorAll(".has-error")) node.classList.remove("has-error");
    for (const span of document.querySelectorAll("#point-form .field-error, #form-error")) { span.hidden = true; span.textContent = ""; }
  }

  // `contact_point.mute_times[1].to` -> that mute row; others -> their field, else by Save.
  function showError(answer) {
    const detail = (answer && answer.body && answer.body.detail) || "The contact point could not be saved; try again.";
    const parameter = (answer && answer.body && answer.body.parameter) || "";
    const mute = /^contact_point\.mute_times\[(\d+)\]/.exec(parameter);
    let field = mute ? rows.children[Number(mute[1])] : null;
    let name = parameter;
    while (!field && name) {
      field = document.querySelector(`#point-form [data-param="${CSS.escape(name)}"]`);
      if (field && field.hidden) field = null;
      name = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "";
    }
    const span = field ? field.querySelector(".field-error") : $("form-error");
    if (field) field.classList.add("has-error");
    span.hidden = false;
    span.textContent = detail;
  }

  async function save() {
    const button = $("save-point");
    button.disabled = true;
    clearErrors();
    const answer = await (PAGE.id ? api("PUT", `/api/v1/alerts/contact-points/${PAGE.id}`, body())
      : api("POST", "/api/v1/alerts/contact-points", body())).catch(() => null);
    if (answer && (answer.status === 200 || answer.status === 201)) {
      location.assign("/alerts/contact-points");
      return;
    }
    button.disabled = false;
    showError(answer);
  }

  $("point-kind").addEventListener("change", showKind);
  $("mute-add").addEventListener("click", () => rows.append(muteRow({ days: ["sat", "sun"] })));
  $("save-point").addEventListener("click", save);
  fill(PAGE.point);
  showKind();
})();
