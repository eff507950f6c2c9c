// A rule's backtest (POST /api/v1/alerts/rules/preview) as a Plotly chart: the metric of each
// target over the last hour, the fire and recover thresholds as lines, and the periods in
// which the rule would have been pending, firing, recovering or without data shaded (from
// each target's `periods`). The editor and the rule page draw with it:
//
//   MeshBacktest.draw(element, preview, {target: index});  -> the summary sentence
//
// Values are shown in the form's units (an error rate as a percent).
(() => {
  "use strict";
  const A = window.MeshAlerts;
  const PLOT = { displayModeBar: false, responsive: true };
  const LINES = ["#58a6ff", "#bc8cff", "#3fb950", "#e3b341", "#f0883e", "#39c5cf", "#db61a2", "#8b949e"];
  const SHADE = { Pending: "rgba(210, 153, 34, 0.3)", Firing: "rgba(248, 81, 73, 0.3)",
    Recovering: "rgba(248, 131, 73, 0.16)", NoData: "rgba(139, 148, 158, 0.09)", Error: "rgba(188, 140, 255, 0.2)" };
  const FIRE = "#f85149";
  const RECOVER = "#3fb950";

  const date = (epoch) => new Date(epoch * 1000);

  function thresholdLine(name, value, color, text) {
    return { type: "line", name, xref: "paper", x0: 0, x1: 1, yref: "y", y0: value, y1: value,
      line: { color, width: 1.5, dash: name === "fire" ? "dash" : "dot" },
      label: { text, textposition: "end", yanchor: "bottom", font: { size: 10, color } } };
  }

  function periodShape(period) {
    return { type: "rect", name: `period:${period.state}`, xref: "x", yref: "paper", layer: "below",
      x0: date(period.start), x1: date(period.end), y0: 0, y1: 1,
      fillcolor: SHADE[period.state] || SHADE.NoData, line: { width: 0 } };
  }

  // What the hour would have looked like, in a sentence.
  function summary(preview, shown) {
    const one = preview.targets[shown];
    if (!one) return "";
    const fired = one.transitions.filter((t) => t.to_state === "Firing" && t.from_state !== "Recovering").length;
    const seconds = (state) => one.periods.filter((p) => state.includes(p.state)).reduce((n, p) => n + p.end - p.start, 0);
    const firing = seconds(["Firing", "Recovering"]);
    const pending = seconds(["Pending"]);
    const noData = seconds(["NoData"]);
    const parts = [fired ? `would have fired ${fired} time${fired === 1 ? "" : "s"} (firing ${A.duration(firing)} in all)` : "would not have fired"];
    if (pending) parts.push(`pending ${A.duration(pending)}`);
    if (noData) parts.push(`no data ${A.duration(noData)}`);
    const who = preview.targets.length > 1 ? ` on ${A.targetText(one.target)}` : "";
    return `In the last hour it ${parts.join(", ")}${who}.`;
  }

  function draw(root, preview, options) {
    const shown = Math.min((options && options.target) || 0, preview.targets.length - 1);
    const metric = preview.metric;
    const m = A.METRICS[metric] || { shown_unit: "", thresholds: true };
    const x = preview.times.map(date);
    const traces = preview.targets.map((t, i) => ({
      type: "scatter", mode: "lines", name: A.plotlyText(A.targetText(t.target)), x,
      y: t.values.map((v) => A.toShown(metric, v)), connectgaps: false,
      line: { color: LINES[i % LINES.length], width: i === shown ? 2 : 1.2 }, opacity: i === shown ? 1 : 0.55,
      // Names are text: Plotly reads a subset of HTML in trace names, hover shows the value only.
      hovertemplate: `%{y:.4~f} ${m.shown_unit}<extra></extra>`,
    }));
    const fire = A.toShown(metric, preview.fire);
    const recover = A.toShown(metric, preview.recover);
    const shapes = (preview.targets[shown] ? preview.targets[shown].periods : []).map(periodShape);
    if (m.thresholds) {
      shapes.push(thresholdLine("fire", fire, FIRE, `fire ${A.valueText(metric, preview.fire)}`));
      if (recover !== fire) shapes.push(thresholdLine("recover", recover, RECOVER, `recover ${A.valueText(metric, preview.recover)}`));
    }
    const values = traces.flatMap((t) => t.y).filter((v) => v !== null);
    const top = Math.max(...values, m.thresholds ? fire : 1, m.thresholds ? recover : 1, 0) * 1.15 || 1;
    const layout = {
      margin: { l: 52, r: 12, t: 8, b: 28 }, height: 280,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: "#9aa7b8", size: 11 }, showlegend: preview.targets.length > 1,
      legend: { orientation: "h", x: 0, y: -0.15, font: { size: 10 } },
      xaxis: { type: "date", gridcolor: "#243044", tickformat: "%H:%M",
        range: [date(preview.times[0] - preview.step), date(preview.times[preview.times.length - 1] + preview.step)] },
      yaxis: { gridcolor: "#243044", zeroline: false, range: [0, top],
        ticksuffix: m.shown_unit === "%" ? " %" : m.shown_unit ? ` ${m.shown_unit}` : "" },
      shapes, hovermode: "x unified",
    };
    Plotly.react(root, traces, layout, PLOT);
    root.dataset.periods = String(shapes.filter((s) => s.type === "rect").length);
    root.dataset.drawn = String(Date.now());
    return summary(preview, shown);
  }

  // The legend of the shading, as the page's own elements.
  function legend() {
    const { el } = window.MeshUI;
    return el("ul", { class: "legend inline backtest-legend" },
      el("li", {}, el("i", { class: "swatch fire-line" }), "fire"),
      el("li", {}, el("i", { class: "swatch recover-line" }), "recover"),
      ["Pending", "Firing", "Recovering", "NoData"].map((state) => el("li", {},
        el("i", { class: "swatch", style: `background:${SHADE[state]}` }), state === "NoData" ? "no data" : state.toLowerCase())));
  }

  window.MeshBacktest = { draw, legend, summary };
})();
