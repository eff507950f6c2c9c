// The traffic split's arithmetic, pure: weights are whole percents that always sum to 100.
// Moving one version rebalances the unlocked others in proportion to their weights (evenly
// when they are all 0), by largest remainder, so no rounding ever breaks the sum.
(function () {
  "use strict";

  function sum(values) { return values.reduce((a, b) => a + b, 0); }

  // `amount` split over `names` in proportion to `weights` (evenly if they sum to 0).
  function share(amount, names, weights) {
    const base = sum(names.map((n) => weights[n] || 0));
    const exact = names.map((n) => (base ? (weights[n] || 0) * amount / base : amount / names.length));
    const out = {};
    names.forEach((n, i) => { out[n] = Math.floor(exact[i]); });
    let left = amount - sum(Object.values(out));
    const order = names.map((n, i) => [exact[i] - out[n], i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (let k = 0; left > 0 && names.length; k = (k + 1) % names.length, left -= 1) {
      out[names[order[k][1]]] += 1;
    }
    return out;
  }

  // Set `version` to `value` (clamped to what the locked ones leave); the unlocked others
  // share the rest. With no unlocked other, `version` takes exactly what is left.
  function rebalance(weights, locked, version, value) {
    const names = Object.keys(weights);
    const lockedSum = sum(names.filter((n) => n !== version && locked.has(n)).map((n) => weights[n]));
    const room = Math.max(0, 100 - lockedSum);
    const others = names.filter((n) => n !== version && !locked.has(n));
    const mine = others.length ? Math.min(room, Math.max(0, Math.round(Number(value) || 0))) : room;
    return { ...weights, ...share(room - mine, others, weights), [version]: mine };
  }

  // Every unlocked version the same weight out of what the locked ones leave.
  function evenly(weights, locked) {
    const names = Object.keys(weights);
    const free = names.filter((n) => !locked.has(n));
    const room = Math.max(0, 100 - sum(names.filter((n) => locked.has(n)).map((n) => weights[n])));
    return { ...weights, ...share(room, free, {}) };
  }

  window.MeshSplit = { rebalance, evenly, share, sum };
})();
