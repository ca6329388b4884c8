// SVG charts of the leaderboard page. Each is drawn at its container's width (text stays legible on a phone:
// nothing is scaled down), long model names are shortened on the chart with the full name in a tooltip, and
// each returns an <svg role="img"> whose accessible name says what it shows. The page puts the numbers in a
// data table beside every chart.

const NS = "http://www.w3.org/2000/svg";
const FONT = "11px system-ui, sans-serif"; // the charts' font (arena.css: .plot svg)
const MUTED = "#667085";
const GRID = "#e4e7ec";
// Distinguishable hues for up to twelve lines (Tableau 10 plus two).
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2",
  "#edc948", "#9c755f", "#ff9da7", "#3856d8", "#2f4b7c", "#8c564b",
];

export function el(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const measure = document.createElement("canvas").getContext("2d");
measure.font = FONT;
export const textWidth = (text) => measure.measureText(text).width;

// The longest start of `text` (with an ellipsis) that is at most `px` wide.
export function shorten(text, px) {
  if (textWidth(text) <= px) return text;
  let lo = 0, hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (textWidth(`${text.slice(0, mid)}…`) <= px) lo = mid; else hi = mid - 1;
  }
  return `${text.slice(0, lo)}…`;
}

// A label at most `px` wide; a shortened one keeps the whole text in a tooltip.
function label(attrs, full, px) {
  const text = shorten(full, px);
  const node = el("text", attrs, text);
  if (text !== full) node.append(el("title", {}, full));
  return node;
}

const widest = (texts) => Math.max(0, ...texts.map(textWidth));

function chart(width, height, name) {
  return el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": name, class: "chart-svg" });
}

// Round tick values covering [lo, hi], about `count` of them.
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toFixed(6)));
  return ticks;
}

const MINUTE = 60e3, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
const TIME_STEPS = [MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY,
  7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];
const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export const formatWhen = (t) => fullFormat.format(new Date(t));

// Date ticks on local calendar boundaries (midnights, whole hours) with short labels: a time alone when the day
// is already on the axis, the date when it changes. The finest step whose labels fit in `px` wins.
export function timeTicks(t0, t1, px) {
  for (const step of TIME_STEPS) {
    if ((t1 - t0) / step > 60) continue;
    const ticks = stepTicks(t0, t1, step);
    if (ticks.length < 2) break;
    const labels = tickLabels(ticks, step);
    if (ticks.length * (widest(labels) + 16) <= px) return { ticks, labels };
  }
  return { ticks: t1 > t0 ? [t0, t1] : [t0], labels: null }; // too close or too few: both ends, in full
}

function stepTicks(t0, t1, step) {
  const at = new Date(t0);
  if (step >= DAY) at.setHours(0, 0, 0, 0);
  else if (step >= HOUR) at.setHours(Math.floor(at.getHours() / (step / HOUR)) * (step / HOUR), 0, 0, 0);
  else at.setMinutes(Math.floor(at.getMinutes() / (step / MINUTE)) * (step / MINUTE), 0, 0);
  const ticks = [];
  while (at.getTime() <= t1) {
    if (at.getTime() >= t0) ticks.push(at.getTime());
    if (step >= DAY) at.setDate(at.getDate() + Math.round(step / DAY)); // calendar days, whatever DST does
    else at.setTime(at.getTime() + step);
  }
  return ticks;
}

function tickLabels(ticks, step) {
  let lastDay = "";
  return ticks.map((t) => {
    const day = dayFormat.format(new Date(t));
    const time = timeFormat.format(new Date(t));
    const text = step >= DAY ? day : day !== lastDay ? `${day} ${time}` : time;
    lastDay = day;
    return text;
  });
}

// Text anchor for a label centred at x that must stay inside [0, width].
function anchorAt(x, text, width) {
  const half = textWidth(text) / 2;
  if (x - half < 0) return "start";
  if (x + half > width) return "end";
  return "middle";
}

// Models (best first) as dots with their 95% intervals.
export function ratingsChart(models, width, name) {
  const row = 24, top = 8, bottom = 40, right = 18;
  const room = Math.min(widest(models.map((m) => m.name)), 180, width * 0.36);
  const left = room + 12;
  const height = top + row * models.length + bottom;
  const root = chart(width, height, name);
  const lo = Math.min(...models.map((m) => m.lower)), hi = Math.max(...models.map((m) => m.upper));
  const pad = (hi - lo) * 0.04 || 10;
  const ticks = niceTicks(lo - pad, hi + pad, Math.max(3, Math.floor((width - left - right) / 55)));
  const d0 = Math.min(lo - pad, ticks[0]), d1 = Math.max(hi + pad, ticks[ticks.length - 1]);
  const x = (v) => left + ((v - d0) / (d1 - d0 || 1)) * (width - left - right);
  const axisY = top + row * models.length;
  for (const tick of ticks) {
    root.append(el("line", { x1: x(tick), x2: x(tick), y1: top, y2: axisY, stroke: GRID }));
    root.append(el("text", { x: x(tick), y: axisY + 14, "text-anchor": "middle", fill: MUTED }, String(tick)));
  }
  root.append(el("text", { x: left + (width - left - right) / 2, y: axisY + 32, "text-anchor": "middle", fill: MUTED }, "Rating"));
  models.forEach((m, i) => {
    const y = top + row * i + row / 2;
    root.append(label({ x: left - 8, y: y + 4, "text-anchor": "end" }, m.name, room));
    const tip = `${m.name}: ${m.rating.toFixed(0)} (95% CI ${m.lower.toFixed(0)} to ${m.upper.toFixed(0)})`;
    const group = el("g");
    group.append(el("title", {}, tip));
    group.append(el("line", { x1: x(m.lower), x2: x(m.upper), y1: y, y2: y, stroke: "#3856d8", "stroke-width": 2 }));
    group.append(el("circle", { cx: x(m.rating), cy: y, r: 4.5, fill: m.provisional ? "#fff" : "#3856d8", stroke: "#3856d8", "stroke-width": 1.5, class: "rating-dot" }));
    root.append(group);
  });
  return root;
}

// Ratings over time: a line per model on a real time axis, with the models' names at their lines' ends
// pushed apart so none overlaps another.
export function historyChart(points, models, width, name) {
  const height = 280, top = 12, bottom = 44, left = 46;
  const room = Math.min(widest(models.map((m) => m.name)), Math.max(56, width * 0.26 - 14), 150);
  const labelWidth = room + 14;
  const plotW = Math.max(60, width - left - labelWidth), plotH = height - top - bottom;
  const root = chart(width, height, name);
  const times = points.map((p) => Date.parse(p.at));
  let t0 = Math.min(...times), t1 = Math.max(...times);
  if (t1 - t0 < MINUTE) { t0 -= 30 * MINUTE; t1 += 30 * MINUTE; } // one snapshot (or a burst): a little room
  const values = points.flatMap((p) => models.map((m) => p.ratings[m.slug]).filter((v) => v !== undefined));
  const span = Math.max(...values) - Math.min(...values);
  const yTicks = niceTicks(Math.min(...values) - span * 0.05 - 1, Math.max(...values) + span * 0.05 + 1, 5);
  const v0 = Math.min(yTicks[0], Math.min(...values)), v1 = Math.max(yTicks[yTicks.length - 1], Math.max(...values));
  const x = (t) => left + ((t - t0) / (t1 - t0)) * plotW;
  const y = (v) => top + (1 - (v - v0) / (v1 - v0 || 1)) * plotH;
  for (const tick of yTicks) {
    root.append(el("line", { x1: left, x2: left + plotW, y1: y(tick), y2: y(tick), stroke: GRID }));
    root.append(el("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end", fill: MUTED }, String(tick)));
  }
  const { ticks, labels } = timeTicks(t0, t1, plotW);
  ticks.forEach((t, i) => {
    const text = labels ? labels[i] : formatWhen(t);
    root.append(el("line", { x1: x(t), x2: x(t), y1: top + plotH, y2: top + plotH + 4, stroke: MUTED }));
    root.append(el("text", { x: x(t), y: top + plotH + 16, "text-anchor": anchorAt(x(t), text, left + plotW + labelWidth), fill: MUTED }, text));
  });
  root.append(el("line", { x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH, stroke: MUTED }));
  root.append(el("text", { x: left + plotW / 2, y: height - 6, "text-anchor": "middle", fill: MUTED }, "Snapshot time"));
  const ends = [];
  models.forEach((m, k) => {
    const colour = PALETTE[k % PALETTE.length];
    const seen = points.map((p, i) => [times[i], p.ratings[m.slug]]).filter(([, v]) => v !== undefined);
    if (!seen.length) return;
    root.append(el("polyline", { points: seen.map(([t, v]) => `${x(t)},${y(v)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2, class: "series" }));
    for (const [t, v] of seen) {
      const dot = el("circle", { cx: x(t), cy: y(v), r: 2.5, fill: colour });
      dot.append(el("title", {}, `${m.name}: ${v.toFixed(0)} on ${formatWhen(t)}`));
      root.append(dot);
    }
    const [tLast, vLast] = seen[seen.length - 1];
    ends.push({ m, colour, x: x(tLast), y: y(vLast), at: y(vLast) });
  });
  placeLabels(ends, top + 4, top + plotH, 13);
  for (const end of ends) {
    root.append(el("polyline", { points: `${end.x},${end.y} ${left + plotW + 4},${end.at} ${left + plotW + 8},${end.at}`, fill: "none", stroke: end.colour, "stroke-width": 1, "stroke-opacity": 0.6, class: "leader" }));
    root.append(label({ x: left + plotW + 10, y: end.at + 4, fill: end.colour, class: "end-label" }, end.m.name, room));
  }
  return root;
}

// Spread labels (sorted by their wanted position `at`) at least `gap` apart within [lo, hi].
export function placeLabels(items, lo, hi, gap) {
  items.sort((a, b) => a.at - b.at);
  items.forEach((item, i) => { item.at = Math.max(item.at, i ? items[i - 1].at + gap : lo); });
  for (let i = items.length - 1; i >= 0; i--) {
    items[i].at = Math.min(items[i].at, i === items.length - 1 ? hi : items[i + 1].at - gap);
  }
  return items;
}

function rgb(c) { return `rgb(${c.map(Math.round).join(" ")})`; }
function mix(a, b, t) { return a.map((v, i) => v + (b[i] - v) * Math.max(0, Math.min(1, t))); }
const RED = [200, 64, 52], NEUTRAL = [244, 244, 245], BLUE = [44, 92, 208];
const PALE = [232, 238, 252], DEEP = [26, 50, 140];
// Win rates diverge from an even 50% (grey) to red (loses) and blue (wins); counts run pale to deep blue.
export const winColour = (v) => (v < 0.5 ? mix(RED, NEUTRAL, v / 0.5) : mix(NEUTRAL, BLUE, (v - 0.5) / 0.5));
export const countColour = (t) => mix(PALE, DEEP, t);
const ink = (c) => ((0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) / 255 > 0.55 ? "#1d2330" : "#fff");

// A square matrix of pairs: rows and columns are the same models; a colour legend under it.
// spec: { key, names, matrix (null: no battles), format(v) -> text, colour(v) -> [r, g, b], tip(i, j, v),
//         legend: { stops: [[position 0..1, value]], ticks: [[position, text]], none: text } }
export function heatmap(spec, width, name) {
  const n = spec.names.length;
  const room = Math.min(widest(spec.names), 110, width * 0.3);
  const labelW = room + 10;
  const cell = Math.max(18, Math.min(44, Math.floor((width - labelW - 12) / n)));
  // Column names slant up-left from their column at 45°: they need their length × sin 45° above the grid.
  const top = Math.ceil(room * 0.72) + 12;
  const grid = n * cell;
  const legendTop = top + grid + 18;
  const w = Math.max(labelW + grid + 12, 240), height = legendTop + 64;
  const root = chart(w, height, name);
  spec.names.forEach((m, i) => {
    root.append(label({ x: labelW - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end" }, m, room));
    const cx = labelW + i * cell + cell / 2;
    root.append(label({ transform: `translate(${cx + 3},${top - 6}) rotate(45)`, "text-anchor": "end" }, m, room));
  });
  spec.names.forEach((_, i) => spec.names.forEach((__, j) => {
    const v = spec.matrix[i][j];
    const fill = v === null ? [238, 238, 238] : spec.colour(v);
    const rect = el("rect", { x: labelW + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1, fill: rgb(fill), class: "cell" });
    rect.append(el("title", {}, spec.tip(i, j, v)));
    root.append(rect);
    if (v !== null && cell >= 26) {
      root.append(el("text", { x: labelW + j * cell + cell / 2, y: top + i * cell + cell / 2 + 4, "text-anchor": "middle", fill: ink(fill), "pointer-events": "none" }, spec.format(v)));
    }
  }));
  legend(root, spec, { x: 10, y: legendTop, width: Math.min(300, w - 20) });
  return root;
}

function legend(root, spec, box) {
  const id = `legend-${spec.key}`;
  const gradient = el("linearGradient", { id, x1: 0, x2: 1, y1: 0, y2: 0 });
  for (const [position, value] of spec.legend.stops) {
    gradient.append(el("stop", { offset: position, "stop-color": rgb(spec.colour(value)) }));
  }
  const defs = el("defs");
  defs.append(gradient);
  root.append(defs);
  root.append(el("rect", { x: box.x, y: box.y, width: box.width, height: 10, fill: `url(#${id})`, stroke: "#d0d5dd", class: "legend-bar" }));
  for (const [position, text] of spec.legend.ticks) {
    const x = box.x + position * box.width;
    root.append(el("line", { x1: x, x2: x, y1: box.y + 10, y2: box.y + 14, stroke: MUTED }));
    root.append(el("text", { x, y: box.y + 25, "text-anchor": position === 0 ? "start" : position === 1 ? "end" : "middle", fill: MUTED }, text));
  }
  root.append(el("rect", { x: box.x, y: box.y + 36, width: 12, height: 12, fill: "rgb(238 238 238)", stroke: "#d0d5dd" }));
  root.append(el("text", { x: box.x + 18, y: box.y + 46, fill: MUTED }, spec.legend.none));
}
