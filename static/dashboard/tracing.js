// What the two trace pages share (docs/ui.md, "Traces"): a stable colour per service, the
// duration and time formats, Plotly-safe text, and the words for an API answer that failed.
// window.MeshTracing. Everything a trace holds came from the network: text only, never markup.
(function () {
  "use strict";

  // Distinct on the dark theme, none of them the red that marks errors.
  const PALETTE = ["#58a6ff", "#3fb950", "#d2a8ff", "#ffa657", "#39c5cf", "#e3b341",
    "#f778ba", "#a5d6ff", "#7ee787", "#bc8cff", "#56d4bc", "#ffdf5d"];
  const TRACE_ID = /^[0-9a-f]{32}$/;

  // Plotly reads a few tags in hover text: data from a span is text only.
  const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  // FNV-1a over the name's UTF-16 units: the same service gets the same colour on every page.
  function hash(name) {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) {
      h ^= name.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h;
  }

  // name -> colour for a set of services: each at its hashed slot, or the next free one when
  // two of the set collide (in name order, so the same set always gets the same colours).
  function serviceColors(names) {
    const colors = new Map();
    const used = new Set();
    for (const name of [...new Set(names)].sort()) {
      let slot = hash(name) % PALETTE.length;
      if (used.size < PALETTE.length) while (used.has(slot)) slot = (slot + 1) % PALETTE.length;
      used.add(slot);
      colors.set(name, PALETTE[slot]);
    }
    return colors;
  }

  function duration(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "–";
    if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10000 ? 1 : 2)} s`;
    if (ms >= 100) return `${ms.toFixed(0)} ms`;
    if (ms >= 10) return `${ms.toFixed(1)} ms`;
    return `${ms.toFixed(2)} ms`;
  }

  const pad = (n, width) => String(n).padStart(width || 2, "0");

  // 14:03:12.345 (local time), with the date in front when it is not today.
  function clock(epochSeconds, withDate) {
    const d = new Date(epochSeconds * 1000);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    const today = new Date().toDateString() === d.toDateString();
    return withDate || !today ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}` : time;
  }

  function ago(epochSeconds) {
    const s = Math.max(0, Date.now() / 1000 - epochSeconds);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  // A trace id as typed or pasted: its canonical form, or null.
  function traceId(text) {
    const id = String(text || "").trim().toLowerCase();
    return TRACE_ID.test(id) && !/^0+$/.test(id) ? id : null;
  }

  // What to tell the person when an API call did not give the trace data: an actionable
  // sentence, whether retrying can help, and the parameter at fault (400).
  function problem(answer, what) {
    const detail = answer && answer.body && answer.body.detail ? String(answer.body.detail) : "";
    if (!answer) {
      return { text: `meshui did not answer while ${what} (network error). Check that it is running, then retry.`, retry: true };
    }
    if (answer.status === 401) {
      return { text: "Your session has ended: log in again to read traces.", login: true };
    }
    if (answer.status === 400) {
      return { text: detail || "meshui refused the request as invalid.", parameter: answer.body && answer.body.parameter };
    }
    if (answer.status === 503) {
      return { text: `The trace store (Redis) is not answering, so meshui cannot read traces: ${detail || "retry in a few seconds"}.`, retry: true };
    }
    return { text: `meshui answered HTTP ${answer.status} while ${what}${detail ? `: ${detail}` : ""}. Retry; if it persists, meshui's log says why.`, retry: true };
  }

  window.MeshTracing = { PALETTE, escape, hash, serviceColors, duration, clock, ago, traceId, problem };
})();
