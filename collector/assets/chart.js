// A line chart as inline SVG: hourly average with the min–max range shaded, over the
// recommended and allowable bands. No library: a few dozen SVG elements.

import { s } from "./dom.js";

const W = 720, H = 260;
const PAD = { left: 44, right: 12, top: 12, bottom: 28 };

// points: [{t, avg, min, max}] with t in ms (start of the slot) and °C values (null: no data);
// from/to: the period (ms); bands: from bands.js. Returns an <svg> element.
export function temperatureChart(points, from, to, bands) {
  const values = points.flatMap((p) => [p.min, p.max]).filter(Number.isFinite);
  const low = Math.floor(Math.min(bands.recommended[0] - 2, ...values));
  const high = Math.ceil(Math.max(bands.allowable[1] + 1, ...values));
  const x = (t) => PAD.left + ((t - from) / (to - from)) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + ((high - v) / (high - low)) * (H - PAD.top - PAD.bottom);
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": "inlet temperature over 24 hours",
  });
  const band = (lo, hi, cls) => {
    const top = y(Math.min(hi, high)), bottom = y(Math.max(lo, low));
    if (bottom > top) svg.append(s("rect", { x: PAD.left, y: top, width: W - PAD.left - PAD.right, height: bottom - top, class: cls }));
  };
  band(bands.allowable[0], bands.allowable[1], "band-allowable");
  band(bands.recommended[0], bands.recommended[1], "band-recommended");
  // Horizontal grid and labels every 2 or 5 °C.
  const step = high - low > 20 ? 5 : 2;
  for (let v = Math.ceil(low / step) * step; v <= high; v += step) {
    svg.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: PAD.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, `${v}`));
  }
  // Hour labels every 3 hours.
  for (let t = from; t < to; t += 3 * 3600e3) {
    const d = new Date(t);
    svg.append(s("text", { x: x(t), y: H - 8, class: "axis", "text-anchor": "middle" },
      `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`));
  }
  // Runs of consecutive slots with data, so a gap shows as a gap.
  const runs = [];
  let run = [];
  for (const p of points) {
    if (Number.isFinite(p.avg)) run.push(p);
    else if (run.length) { runs.push(run); run = []; }
  }
  if (run.length) runs.push(run);
  const slot = points.length > 1 ? points[1].t - points[0].t : 3600e3;
  const mid = (p) => x(p.t + slot / 2);
  for (const r of runs) {
    const upper = r.map((p) => `${mid(p)},${y(p.max)}`);
    const lower = r.map((p) => `${mid(p)},${y(p.min)}`).reverse();
    svg.append(s("polygon", { points: upper.concat(lower).join(" "), class: "range" }));
    svg.append(s("polyline", { points: r.map((p) => `${mid(p)},${y(p.avg)}`).join(" "), class: "avg" }));
    for (const p of r) svg.append(s("circle", { cx: mid(p), cy: y(p.avg), r: 3, class: "dot" },
      s("title", {}, `${new Date(p.t).toLocaleString()}: avg ${p.avg.toFixed(1)} °C, max ${p.max.toFixed(1)} °C`)));
  }
  svg.append(s("rect", { x: PAD.left, y: PAD.top, width: W - PAD.left - PAD.right, height: H - PAD.top - PAD.bottom, class: "frame" }));
  return svg;
}
