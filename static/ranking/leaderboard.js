// Leaderboard page: a sortable table and four SVG charts drawn from the board's JSON, each chart with its
// numbers in a table behind it. A websocket says when a new snapshot lands; the page then refetches its board
// and redraws. Charts are drawn at their container's width and redrawn when it changes.

import { countColour, formatWhen, heatmap, historyChart, PALETTE, ratingsChart, winColour } from "./charts.js";

const $ = (id) => document.getElementById(id);
const modality = $("board").dataset.modality;
let payload = JSON.parse($("board-data").textContent);
// The first click on a column sorts the way a reader expects: best rating, most votes first; names A to Z.
const FIRST_DIRECTION = { rating: -1, battles: -1, win_rate: -1 };
let sort = { key: "rank_ub", dir: 1 };
const HISTORY_MODELS = 12;

const styleOn = () => Boolean($("style") && $("style").checked); // offered on text boards only

function visibleModels() {
  const models = payload.snapshot ? payload.snapshot.models : [];
  return $("provisional").checked ? models : models.filter((m) => !m.provisional);
}

function html(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function modelCell(m) {
  const td = html("td", { class: "model" });
  const box = html("div", { class: "model-cell" });
  const thumb = (payload.thumbnails || {})[m.slug];
  if (thumb) {
    // Image and 3D boards: a sample output the model made (never one a battle can show again).
    box.append(html("img", { src: thumb, alt: "", class: "board-thumb", loading: "lazy", width: 48, height: 48 }));
  }
  const name = html("span", { class: "model-name" }, m.name);
  if (m.provisional) name.append(" ", html("span", { class: "tag" }, "(provisional)"));
  box.append(name);
  td.append(box);
  return td;
}

function renderTable(models) {
  const value = (m, key) => (key === "ci" ? m.upper - m.lower : m[key]);
  const rows = [...models].sort((x, y) => {
    const a = value(x, sort.key), b = value(y, sort.key);
    return (typeof a === "string" ? a.localeCompare(b) : a - b) * sort.dir;
  });
  $("board").querySelector("tbody").replaceChildren(...rows.map((m) => {
    const tr = html("tr");
    tr.dataset.slug = m.slug;
    if (m.provisional) tr.className = "provisional";
    tr.append(html("td", { class: "num" }, m.rank_ub), modelCell(m));
    const cells = [[m.rating.toFixed(0), "num"], [`+${(m.upper - m.rating).toFixed(0)} / -${(m.rating - m.lower).toFixed(0)}`, "num"],
      [m.battles, "num"], [`${(m.win_rate * 100).toFixed(1)}%`, "num"], [m.organization, "text"], [m.license, "text"]];
    for (const [text, kind] of cells) tr.append(html("td", { class: kind }, text));
    return tr;
  }));
  for (const button of $("board").querySelectorAll("th button")) {
    const th = button.closest("th");
    if (button.dataset.key === sort.key) th.setAttribute("aria-sort", sort.dir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
}

// --- data tables behind the charts ---------------------------------------------------------------------------

function dataTable(caption, head, rows) {
  const table = html("table", { class: "data" });
  table.append(html("caption", { class: "visually-hidden" }, caption));
  // Numbers and short names stay on one line; a long name wraps anywhere in a column of its own width.
  const cls = (text) => (String(text).length > 24 ? { class: "long" } : {});
  const headRow = html("tr");
  head.forEach((text, i) => headRow.append(html("th", { scope: i ? "col" : "row", ...cls(text) }, text)));
  const thead = html("thead");
  thead.append(headRow);
  const tbody = html("tbody");
  for (const row of rows) {
    const tr = html("tr");
    row.forEach((text, i) => tr.append(html(i ? "td" : "th", i ? cls(text) : { scope: "row", ...cls(text) }, text)));
    tbody.append(tr);
  }
  table.append(thead, tbody);
  // A wide table scrolls inside its box (never the page); the box takes focus so a keyboard can scroll it.
  const box = html("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": caption });
  box.append(table);
  return box;
}

const pct = (v) => (v === null ? "–" : `${(v * 100).toFixed(0)}%`);

function pairMatrices(models) {
  const pairs = payload.snapshot && payload.snapshot.pairs;
  if (!pairs) return null;
  const bySlug = new Map(models.map((m) => [m.slug, m]));
  const keep = pairs.models.map((slug, i) => [slug, i]).filter(([slug]) => bySlug.has(slug));
  const pick = (matrix) => keep.map(([, i]) => keep.map(([, j]) => matrix[i][j]));
  return { names: keep.map(([slug]) => bySlug.get(slug).name), win: pick(pairs.win_rate), battles: pick(pairs.battles) };
}

// --- charts --------------------------------------------------------------------------------------------------

const caption = (key) => $(`caption-${key}`).textContent;

function drawRatings(models, width) {
  const best = models[0], last = models[models.length - 1];
  const name = `${caption("ratings")}: ${models.length} model${models.length === 1 ? "" : "s"}, from ${best.name} at ${best.rating.toFixed(0)}`
    + (models.length > 1 ? ` to ${last.name} at ${last.rating.toFixed(0)}` : "") + ". The numbers are in the table below the chart.";
  $("plot-ratings").replaceChildren(ratingsChart(models, width, name));
  $("table-ratings").replaceChildren(dataTable(caption("ratings"), ["Model", "Rating", "95% CI lower", "95% CI upper", "Votes"],
    models.map((m) => [m.name, m.rating.toFixed(0), m.lower.toFixed(0), m.upper.toFixed(0), String(m.battles)])));
}

function drawHistory(models, width) {
  const points = payload.history || [];
  const shown = models.filter((m) => points.some((p) => p.ratings[m.slug] !== undefined));
  const figure = $("chart-history");
  figure.hidden = !points.length || !shown.length;
  if (figure.hidden) return;
  const first = formatWhen(Date.parse(points[0].at)), last = formatWhen(Date.parse(points[points.length - 1].at));
  const name = `${caption("history")}: ${shown.length} model${shown.length === 1 ? "" : "s"} over ${points.length} snapshot${points.length === 1 ? "" : "s"}`
    + (points.length > 1 ? ` from ${first} to ${last}` : ` on ${first}`) + ". The numbers are in the table below the chart.";
  $("plot-history").replaceChildren(historyChart(points, shown, width, name));
  $("table-history").replaceChildren(dataTable(caption("history"), ["Snapshot", ...shown.map((m) => m.name)],
    points.map((p) => [formatWhen(Date.parse(p.at)), ...shown.map((m) => (p.ratings[m.slug] === undefined ? "–" : p.ratings[m.slug].toFixed(0)))])));
  // The line colours, in the table's header, for those who read the lines by colour.
  $("table-history").querySelectorAll("thead th[scope=col]").forEach((th, k) => {
    const swatch = html("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.background = PALETTE[k % PALETTE.length];
    th.prepend(swatch);
  });
}

function drawPairs(models, width) {
  const pairs = pairMatrices(models);
  for (const key of ["winrate", "battles"]) $(`chart-${key}`).hidden = !pairs || pairs.names.length < 2;
  if (!pairs || pairs.names.length < 2) return;
  const { names, win, battles } = pairs;
  const most = Math.max(1, ...battles.flat());
  const count = (i, j) => `${battles[i][j]} battle${battles[i][j] === 1 ? "" : "s"}`;
  const winName = `${caption("winrate")}: a ${names.length} by ${names.length} grid, red where the row model mostly loses, `
    + "blue where it mostly wins, grey when even or unplayed. The numbers are in the table below the chart.";
  $("plot-winrate").replaceChildren(heatmap({
    key: "winrate", names, matrix: win, format: (v) => (v * 100).toFixed(0), colour: winColour,
    tip: (i, j, v) => (v === null ? `${names[i]} and ${names[j]}: no battles` : `${names[i]} beat ${names[j]} in ${pct(v)} of ${count(i, j)}`),
    legend: { stops: [[0, 0], [0.5, 0.5], [1, 1]], ticks: [[0, "0% (row loses)"], [0.5, "50%"], [1, "100% (row wins)"]], none: "no battles" },
  }, width, winName));
  $("table-winrate").replaceChildren(dataTable(caption("winrate"), ["Row model \\ column model", ...names],
    names.map((n, i) => [n, ...win[i].map(pct)])));
  const nonzero = battles.map((r) => r.map((v) => (v === 0 ? null : v)));
  const battleName = `${caption("battles")}: a ${names.length} by ${names.length} grid, darker for more battles, up to ${most}. `
    + "The numbers are in the table below the chart.";
  $("plot-battles").replaceChildren(heatmap({
    key: "battles", names, matrix: nonzero, format: String, colour: (v) => countColour(v / most),
    tip: (i, j, v) => `${names[i]} and ${names[j]}: ${v === null ? "no battles" : count(i, j)}`,
    legend: { stops: [[0, 0], [1, most]], ticks: [[0, "0"], [0.5, String(Math.round(most / 2))], [1, String(most)]], none: "no battles" },
  }, width, battleName));
  $("table-battles").replaceChildren(dataTable(caption("battles"), ["Model \\ model", ...names],
    names.map((n, i) => [n, ...battles[i].map(String)])));
}

let drawnWidth = 0;

function drawCharts() {
  const models = visibleModels();
  $("plots").hidden = !models.length;
  if (!models.length) return;
  const width = Math.max(240, Math.floor($("plot-ratings").clientWidth || 520));
  drawnWidth = width;
  const byRating = [...models].sort((a, b) => b.rating - a.rating);
  drawRatings(byRating, width);
  drawHistory(byRating.slice(0, HISTORY_MODELS), width);
  drawPairs(models, width);
  // A heatmap wider than its box (many models) scrolls inside it; the box then takes focus for the keyboard.
  for (const plot of document.querySelectorAll(".plot")) {
    if (plot.scrollWidth > plot.clientWidth) plot.setAttribute("tabindex", "0");
    else plot.removeAttribute("tabindex");
  }
}

function render() {
  const models = visibleModels();
  const snapshot = payload.snapshot;
  $("empty").hidden = Boolean(snapshot && snapshot.models.length);
  // A young board has only provisional models, which are hidden by default: say so instead of an empty table.
  const hidden = snapshot ? snapshot.models.length - models.length : 0;
  $("all-provisional").hidden = !(snapshot && snapshot.models.length && !models.length);
  $("all-provisional").textContent = `All ${hidden} model${hidden === 1 ? " is" : "s are"} still provisional (too few battles for a stable rating). Tick "Show provisional" to see them.`;
  $("updated").textContent = snapshot ? `Updated ${new Date(snapshot.created_at).toLocaleString()} · ${snapshot.n_votes} vote${snapshot.n_votes === 1 ? "" : "s"}` : "";
  renderTable(models);
  const coefficients = snapshot ? Object.entries(snapshot.style_coefficients || {}) : [];
  $("style-note").hidden = !coefficients.length;
  $("style-note").textContent = coefficients.length ? "Style coefficients (log-odds per standard deviation): " + coefficients.map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ") : "";
  drawCharts();
}

function query() {
  const params = new URLSearchParams();
  if ($("category").value) params.set("category", $("category").value);
  if (styleOn()) params.set("style", "1");
  return params.toString();
}

async function refresh() {
  const response = await fetch(`/api/leaderboard/${modality}?${query()}`, { headers: { Accept: "application/json" } });
  if (response.ok) { payload = await response.json(); render(); }
}

function listen(delay = 500) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/leaderboard/${modality}/`);
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "snapshot" && event.category === ($("category").value || "") && event.style_control === styleOn()) refresh();
  };
  socket.onopen = () => { delay = 500; };
  socket.onclose = () => setTimeout(() => { refresh(); listen(Math.min(delay * 2, 10000)); }, delay);
}

for (const button of $("board").querySelectorAll("th button")) {
  button.addEventListener("click", () => {
    const key = button.dataset.key;
    sort = { key, dir: sort.key === key ? -sort.dir : FIRST_DIRECTION[key] || 1 };
    render();
    $("sort-status").textContent = `Sorted by ${button.textContent}, ${sort.dir > 0 ? "ascending" : "descending"}.`;
  });
}
$("modality").addEventListener("change", () => { location.href = `/leaderboard/${$("modality").value}/`; });
for (const control of [$("category"), $("style")]) {
  if (control) control.addEventListener("change", () => { history.replaceState({}, "", `?${query()}`); refresh(); });
}
$("provisional").addEventListener("change", render);
new ResizeObserver(() => {
  const width = Math.floor($("plot-ratings").clientWidth);
  if (width && Math.abs(width - drawnWidth) > 2) requestAnimationFrame(drawCharts);
}).observe($("plots"));
render();
listen();
