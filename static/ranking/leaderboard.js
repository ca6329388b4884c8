// Leaderboard page: a sortable table and four SVG plots drawn from the board's JSON. A websocket says
// when a new snapshot lands; the page then refetches its board and redraws.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const modality = $("board").dataset.modality;
let payload = JSON.parse($("board-data").textContent);
let sort = { key: "rank_ub", dir: 1 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function visibleModels() {
  const models = payload.snapshot ? payload.snapshot.models : [];
  return $("provisional").checked ? models : models.filter((m) => !m.provisional);
}

function renderTable(models) {
  const value = (m, key) => (key === "ci" ? m.upper - m.lower : m[key]);
  const rows = [...models].sort((x, y) => {
    const a = value(x, sort.key), b = value(y, sort.key);
    return (typeof a === "string" ? a.localeCompare(b) : a - b) * sort.dir;
  });
  $("board").querySelector("tbody").replaceChildren(...rows.map((m) => {
    const tr = document.createElement("tr");
    tr.dataset.slug = m.slug;
    if (m.provisional) tr.className = "provisional";
    const cells = [m.rank_ub, m.name + (m.provisional ? " (provisional)" : ""), m.rating.toFixed(0),
      `+${(m.upper - m.rating).toFixed(0)} / -${(m.rating - m.lower).toFixed(0)}`, m.battles,
      `${(m.win_rate * 100).toFixed(1)}%`, m.organization, m.license];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
    const thumb = (payload.thumbnails || {})[m.slug];
    if (thumb) {
      // Image and 3D boards: a sample output the model made (never one a battle can show again).
      const img = document.createElement("img");
      img.src = thumb; img.alt = ""; img.className = "board-thumb"; img.loading = "lazy";
      tr.children[1].prepend(img);
    }
    return tr;
  }));
  for (const th of $("board").querySelectorAll("th")) {
    th.setAttribute("aria-sort", th.dataset.key === sort.key ? (sort.dir > 0 ? "ascending" : "descending") : "none");
  }
}

function plotRatings(models) {
  const width = 520, row = 22, left = 150, height = 30 + row * models.length;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "ratings with confidence intervals" });
  if (!models.length) return root;
  const lo = Math.min(...models.map((m) => m.lower)) - 10, hi = Math.max(...models.map((m) => m.upper)) + 10;
  const x = (v) => left + ((v - lo) / (hi - lo || 1)) * (width - left - 20);
  models.forEach((m, i) => {
    const y = 20 + i * row;
    root.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, m.name));
    root.append(svg("line", { x1: x(m.lower), x2: x(m.upper), y1: y, y2: y, stroke: "#3856d8", "stroke-width": 2 }));
    root.append(svg("circle", { cx: x(m.rating), cy: y, r: 4, fill: m.provisional ? "#fff" : "#3856d8", stroke: "#3856d8", class: "rating-dot" }));
  });
  for (const tick of [lo + 10, (lo + hi) / 2, hi - 10]) {
    root.append(svg("text", { x: x(tick), y: height - 4, "text-anchor": "middle", fill: "#667085" }, tick.toFixed(0)));
  }
  return root;
}

function plotHeatmap(models, matrix, format, color) {
  const n = models.length, cell = Math.max(18, Math.min(40, 360 / Math.max(n, 1))), left = 120, top = 90;
  const size = { width: left + n * cell + 10, height: top + n * cell + 10 };
  const root = svg("svg", { viewBox: `0 0 ${size.width} ${size.height}`, ...size, role: "img" });
  models.forEach((m, i) => {
    root.append(svg("text", { x: left - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end" }, m));
    root.append(svg("text", { transform: `translate(${left + i * cell + cell / 2},${top - 6}) rotate(-55)` }, m));
    models.forEach((_, j) => {
      const v = matrix[i][j];
      const rect = svg("rect", { x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1, fill: v === null ? "#eee" : color(v) });
      rect.append(svg("title", {}, v === null ? "no battles" : format(v)));
      root.append(rect);
      if (v !== null && cell >= 26) root.append(svg("text", { x: left + j * cell + cell / 2, y: top + i * cell + cell / 2 + 4, "text-anchor": "middle" }, format(v)));
    });
  });
  return root;
}

function plotHistory(models) {
  const width = 520, height = 240, left = 50, pad = 20;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "rating history" });
  const points = payload.history;
  if (points.length < 1 || !models.length) return root;
  const values = points.flatMap((p) => models.map((m) => p.ratings[m.slug]).filter((v) => v !== undefined));
  const lo = Math.min(...values) - 5, hi = Math.max(...values) + 5;
  const x = (i) => left + (points.length === 1 ? 0.5 : i / (points.length - 1)) * (width - left - pad);
  const y = (v) => pad + (1 - (v - lo) / (hi - lo || 1)) * (height - 2 * pad);
  models.forEach((m, k) => {
    const hue = (k * 67) % 360;
    const coords = points.map((p, i) => (p.ratings[m.slug] === undefined ? null : `${x(i)},${y(p.ratings[m.slug])}`)).filter(Boolean);
    root.append(svg("polyline", { points: coords.join(" "), fill: "none", stroke: `hsl(${hue} 60% 45%)`, "stroke-width": 2 }));
    const last = coords[coords.length - 1];
    if (last) root.append(svg("text", { x: Number(last.split(",")[0]) - 4, y: Number(last.split(",")[1]) - 4, "text-anchor": "end", fill: `hsl(${hue} 60% 35%)` }, m.name));
  });
  root.append(svg("text", { x: 4, y: y(hi - 5), fill: "#667085" }, (hi - 5).toFixed(0)));
  root.append(svg("text", { x: 4, y: y(lo + 5), fill: "#667085" }, (lo + 5).toFixed(0)));
  return root;
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
  const byRating = [...models].sort((a, b) => b.rating - a.rating);
  $("plot-ratings").replaceChildren(plotRatings(byRating));
  $("plot-history").replaceChildren(plotHistory(byRating.slice(0, 12)));
  const pairs = snapshot && snapshot.pairs;
  const keep = pairs ? pairs.models.map((slug, i) => [slug, i]).filter(([slug]) => models.some((m) => m.slug === slug)) : [];
  const names = keep.map(([slug]) => models.find((m) => m.slug === slug).name);
  const pick = (matrix) => keep.map(([, i]) => keep.map(([, j]) => matrix[i][j]));
  $("plot-winrate").replaceChildren(pairs ? plotHeatmap(names, pick(pairs.win_rate), (v) => (v * 100).toFixed(0), (v) => `hsl(${v * 220} 65% 60%)`) : svg("svg"));
  const maxBattles = pairs ? Math.max(1, ...pairs.battles.flat()) : 1;
  $("plot-battles").replaceChildren(pairs ? plotHeatmap(names, pick(pairs.battles).map((r) => r.map((v) => (v === 0 ? null : v))), String, (v) => `hsl(220 70% ${95 - 55 * (v / maxBattles)}%)`) : svg("svg"));
}

function query() {
  const params = new URLSearchParams();
  if ($("category").value) params.set("category", $("category").value);
  if ($("style").checked) params.set("style", "1");
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
    if (event.type === "snapshot" && event.category === ($("category").value || "") && event.style_control === $("style").checked) refresh();
  };
  socket.onopen = () => { delay = 500; };
  socket.onclose = () => setTimeout(() => { refresh(); listen(Math.min(delay * 2, 10000)); }, delay);
}

for (const th of $("board").querySelectorAll("th")) {
  th.addEventListener("click", () => {
    sort = { key: th.dataset.key, dir: sort.key === th.dataset.key ? -sort.dir : 1 };
    render();
  });
}
$("modality").addEventListener("change", () => { location.href = `/leaderboard/${$("modality").value}/`; });
for (const id of ["category", "style"]) $(id).addEventListener("change", () => { history.replaceState({}, "", `?${query()}`); refresh(); });
$("provisional").addEventListener("change", render);
render();
listen();
