// Battle page: start a battle, follow both answers over a websocket, vote, reveal.
// The server is the truth: the page renders the state it is given, and websocket events only advance
// that state. One socket per battle: on (re)open and after a gap in a side's chunk offsets the page asks the
// socket for the whole state once ({"type": "sync"}, arena/consumers.py), never the API per chunk; a side's
// "done" carries its whole text. The socket reconnects with backoff until the battle has settled.
// Text answers are drawn here; image and 3D outputs by ./media.js (the vote opens once both are on screen).
import { renderMarkdown } from "./markdown.js";
import { MediaPanels } from "./media.js";
import { deviceFingerprint, solveChallenge, warmUp } from "./pow.js";

const $ = (id) => document.getElementById(id);
const battleEl = $("battle");
const maxChars = Number(battleEl.dataset.maxChars);
const modality = battleEl.dataset.modality;
const homeUrl = battleEl.dataset.homeUrl || "/";
const startPlaceholder = document.getElementById("prompt").placeholder;
let state = JSON.parse($("battle-state").textContent);
let socket = null;
let retry = 0;
let syncSentAt = 0;  // when the pending {"type": "sync"} went out (0: none pending)
let lastHeard = 0;  // when the socket last brought anything
let voteBlockedUntil = 0;  // a refused vote's Retry-After (Date.now() ms)
const revealed = new Set();  // "turn-side" keys of filtered answers the voter chose to see
const media = new MediaPanels({
  onChange: () => { if (state) renderVoting(); },
  onShow: (turn, key) => { revealed.add(`${turn}-${key}`); render(); },
});

const isMedia = () => Boolean(state) && (state.modality || modality) !== "text";

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : document.querySelector("[name=csrfmiddlewaretoken]").value;
}

async function api(url, body) {
  let options;
  if (body === undefined) {
    options = { headers: { Accept: "application/json" } };
  } else if (body instanceof FormData) {  // multipart: the browser sets the boundary in Content-Type
    options = { method: "POST", headers: { Accept: "application/json", "X-CSRFToken": csrfToken() }, body };
  } else {
    options = { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() }, body: JSON.stringify(body) };
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error("The server could not be reached. Check your connection and try again.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error || `The server answered ${response.status}.`);
    const wait = Number(response.headers.get("Retry-After"));
    error.retryAfter = Number.isFinite(wait) && wait > 0 ? Math.ceil(wait) : 0;
    throw error;
  }
  return data;
}

// Errors show where the action happened: a start or follow-up error (and the counter's) next to the prompt,
// a vote error next to the vote bar.
function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function showVoteError(message) {
  const box = $("vote-error");
  box.textContent = message || "";
  box.hidden = !message;
}

function withWait(err) {
  // The server's own message may already say how long to wait.
  return /again in/i.test(err.message) ? err.message : err.message + waitText(err.retryAfter);
}

function waitText(seconds) {
  if (!seconds) return "";
  if (seconds < 90) return ` You can try again in ${seconds} s.`;
  return ` You can try again in ${Math.ceil(seconds / 60)} min.`;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;  // textContent: model output is never parsed as HTML
  return node;
}

function answerText(side) {
  if (side.status === "failed") return side.output ? `${side.output}\n\n⚠ ${side.error}` : `⚠ ${side.error}`;
  if (side.status === "queued") return side.output || "Waiting for a worker…";
  return side.output;
}

function hiddenAnswer(key, i) {
  // A flagged answer stays hidden until the voter asks for it; the click only reveals text already here.
  const answer = el("div", "answer filtered", "This answer was hidden by the content filter. ");
  const show = el("button", "show-anyway", "Show anyway");
  show.type = "button";
  show.addEventListener("click", () => { revealed.add(`${i}-${key}`); renderPanels(); });
  answer.append(show);
  return answer;
}

function renderInput() {
  const input = isMedia() ? state.input : null;
  $("battle-input").hidden = !input;
  if (!input) return;
  $("input-text").textContent = input.text || (input.image_url ? "(from the image)" : "");
  const img = $("input-image");
  img.hidden = !input.image_url;
  if (input.image_url && img.getAttribute("src") !== input.image_url) img.src = input.image_url;
  else if (!input.image_url) img.removeAttribute("src");
}

function renderReveal() {
  for (const key of ["a", "b"]) {
    const reveal = state.vote ? state.vote.reveal[key] : null;
    $(`reveal-${key}`).textContent = reveal ? `${reveal.name}${reveal.organization ? " · " + reveal.organization : ""}` : "";
  }
}

function renderPanels() {
  const mediaBattle = isMedia();
  for (const key of ["a", "b"]) {
    $(`turns-${key}`).hidden = mediaBattle;
    $(`stage-${key}`).hidden = !mediaBattle;
  }
  renderInput();
  if (mediaBattle) {
    media.render(state, revealed);
    renderReveal();
    return;
  }
  for (const key of ["a", "b"]) {
    const box = $(`turns-${key}`);
    box.replaceChildren(...state.turns.map((turn, i) => {
      const side = turn[key];
      const wrap = el("div", "turn");
      wrap.append(el("div", "user-msg", turn.prompt));
      const hidden = side.flagged && !revealed.has(`${i}-${key}`);
      const answer = hidden ? hiddenAnswer(key, i) : el("div", `answer ${side.status}`);
      if (!hidden) renderMarkdown(answer, answerText(side), { final: side.status !== "running" });
      answer.id = `answer-${key}-${i}`;
      wrap.append(answer);
      return wrap;
    }));
  }
  renderReveal();
}

// --- per-criterion votes (image and 3D arenas may ask for them; each is optional) ---

const CRITERION_CHOICES = [["a", "A"], ["b", "B"], ["tie", "Tie"], ["both_bad", "Both bad"], ["", "No opinion"]];

function renderCriteria() {
  const table = $("criteria");
  const criteria = (state && state.criteria) || [];
  const voted = Boolean(state && state.vote);
  const chosen = voted ? (state.vote.criteria || {}) : null;
  table.hidden = !criteria.length || state.status === "failed" || (voted && !Object.keys(chosen).length);
  if (table.hidden) return;
  const signature = `${state.code}:${criteria.map((c) => c.key).join(",")}:${voted}`;
  if (table.dataset.signature !== signature) {
    table.dataset.signature = signature;
    const caption = el("caption", "", voted ? "Your ratings per criterion" : "Optional: which is better on each criterion?");
    const head = el("tr");
    head.append(el("th", "", ""), ...CRITERION_CHOICES.map(([, label]) => {
      const th = el("th", "", label);
      th.scope = "col";
      return th;
    }));
    const rows = criteria.map(({ key, label }) => {
      const row = el("tr");
      const th = el("th", "", label);
      th.scope = "row";
      row.append(th);
      for (const [value, choiceLabel] of CRITERION_CHOICES) {
        const cell = el("td");
        const radio = el("input");
        radio.type = "radio";
        radio.name = `criterion-${key}`;
        radio.value = value;
        radio.setAttribute("aria-label", `${label}: ${choiceLabel}`);
        radio.checked = voted ? (chosen[key] || "") === value : value === "";
        radio.disabled = voted;
        cell.append(radio);
        row.append(cell);
      }
      return row;
    });
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    tbody.append(...rows);
    table.replaceChildren(caption, thead, tbody);
  }
}

function criteriaChosen() {
  const chosen = {};
  for (const { key } of (state.criteria || [])) {
    const radio = document.querySelector(`#criteria input[name="criterion-${key}"]:checked`);
    if (radio && radio.value) chosen[key] = radio.value;
  }
  return chosen;
}

function statusText() {
  if (state.vote) {
    return state.vote.counted ? "Thanks for voting! Your vote counts towards the leaderboard." :
      `Thanks for voting. This vote will not count: ${state.vote.reason}.`;
  }
  if (state.status === "skipped") return "You skipped this battle: it is recorded but not counted. Start a new battle.";
  if (state.status === "generating") return isMedia() ? "Both models are generating…" : "Both models are answering…";
  if (state.status === "failed") {
    const busy = lastTurnSides().some((side) => !ended(side));
    return busy ? "One side failed to answer, so this battle cannot be voted on. The other side is finishing…" :
      "One side failed to answer, so this battle cannot be voted on. Your prompt is back in the box: start a new battle.";
  }
  if (state.status === "ready" && $("vote-error") && !$("vote-error").hidden) {
    return Date.now() < voteBlockedUntil ? "Your vote was not recorded. Wait, then vote again." :
      "Your vote was not recorded. You can vote again.";
  }
  if (state.status === "ready" && isMedia()) {
    const { ready, problem } = media.settled(state, revealed);
    if (problem) return `${problem} This battle cannot be voted on. Start a new battle.`;
    if (!ready) return state.modality === "3d" ? "Loading both models…" : "Loading both images…";
    return state.modality === "3d" ? "Vote now. Drag to rotate (both views follow); Ctrl/⌘ + scroll or pinch to zoom." : "Vote now. Click an image to zoom.";
  }
  if (state.status === "ready") return state.can_continue ? "Vote now, or keep chatting with both models." : "Vote now: this battle reached its turn limit.";
  return "";
}

// The vote opens when the server allows it and, for images and 3D, once both outputs are on screen.
function renderVoting() {
  const settled = isMedia() ? media.settled(state, revealed) : { ready: true, problem: "" };
  const voting = state.can_vote && settled.ready && Date.now() >= voteBlockedUntil;
  const wasVoting = $("votebar").dataset.open === "1";
  $("votebar").dataset.open = voting && !state.vote ? "1" : "";
  $("votebar").hidden = Boolean(state.vote) || state.status === "failed" || Boolean(settled.problem);
  for (const button of $("votebar").querySelectorAll("button")) button.disabled = !voting;
  for (const radio of $("criteria").querySelectorAll("input")) radio.disabled = Boolean(state.vote) || !voting;
  $("status").textContent = statusText();
  $("new-battle").hidden = !(Boolean(state.vote) || ["failed", "skipped"].includes(state.status) || Boolean(settled.problem));
  if (state.status === "skipped") $("votebar").hidden = true;
  // Skip: pass on this pair (recorded, not counted). Regenerate: both sides answer the last turn again.
  $("skip-battle").hidden = Boolean(state.vote) || !["generating", "ready"].includes(state.status);
  $("regenerate").hidden = Boolean(state.vote) || isMedia() || !["ready", "failed"].includes(state.status);
  $("battle-actions").hidden = $("skip-battle").hidden && $("regenerate").hidden;
  $("vote-keys").hidden = $("votebar").hidden;
  if (state.vote || state.status === "failed") showVoteError("");
  // Voting just opened: focus goes to the vote bar, unless the voter is typing or working elsewhere.
  if (voting && !state.vote && !wasVoting && focusIsFree()) $("votebar").querySelector("button").focus();
}

function focusIsFree() {
  const active = document.activeElement;
  return !active || active === document.body || battleEl.contains(active) || $("vote-dock").contains(active);
}

function render() {
  const active = Boolean(state);
  battleEl.hidden = !active;
  $("demo-banner").hidden = !(active && state.demo);
  if (!active) return;
  renderPanels();
  renderCriteria();
  renderVoting();
  const finished = Boolean(state.vote) || state.status === "failed" || state.status === "skipped";
  $("prompt").disabled = finished || state.status === "generating" || !state.can_continue;
  $("send").disabled = $("prompt").disabled;
  $("random-prompt").hidden = state.turns.length > 0;
  for (const id of ["gallery-battle", "media-extra"]) if ($(id)) $(id).hidden = state.turns.length > 0;
  $("prompt").placeholder = finished || (isMedia() && !state.can_continue) ? "Start a new battle to ask again." : "Ask a follow-up…";
  // A failed battle keeps its prompt in the box, ready for a new battle.
  const lastTurn = state.turns[state.turns.length - 1];
  if (state.status === "failed" && lastTurn && !$("prompt").value) { $("prompt").value = lastTurn.prompt; updateCounter(); }
}

// An HTTP refetch, only where the socket cannot help (a refused vote, a socket that keeps failing): one at a
// time, merged into what the page already shows.
let refreshing = null;
let refreshAgain = false;

function refresh() {
  if (!state) return Promise.resolve();
  if (refreshing) { refreshAgain = true; return refreshing; }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      try {
        mergeState(await api(`/api/battles/${state.code}`));
        render();
      } catch (err) {
        showError(err.message);
      }
    } while (refreshAgain && state);
  })().finally(() => { refreshing = null; });
  return refreshing;
}

const ended = (side) => side.status === "done" || side.status === "failed";
const lastTurnSides = () => {
  const turn = state && state.turns[state.turns.length - 1];
  return turn ? [turn.a, turn.b] : [];
};
const STATUS_RANK = { generating: 0, ready: 1, failed: 1, voted: 2, skipped: 2 };

// A state from the server (the socket's sync, or the API) never takes the page back: the database is written
// every ARENA_STREAM_FLUSH_SECONDS, so a side may already show more than it holds, or may already be done.
function mergeState(fresh) {
  const old = state;
  state = fresh;
  if (!old || old.code !== fresh.code || old.turns.length !== fresh.turns.length) return;
  if ((STATUS_RANK[old.status] || 0) > (STATUS_RANK[fresh.status] || 0)) {
    Object.assign(state, { status: old.status, can_vote: old.can_vote, can_continue: old.can_continue, vote: old.vote });
  }
  fresh.turns.forEach((turn, i) => {
    for (const key of ["a", "b"]) {
      const mine = old.turns[i][key];
      const theirs = turn[key];
      if (mine.attempt !== theirs.attempt) continue;
      if (ended(mine) && !ended(theirs)) turn[key] = mine;
      else if (!ended(theirs) && mine.output.length > theirs.output.length && mine.output.startsWith(theirs.output)) {
        turn[key] = { ...theirs, status: mine.status, output: mine.output, chars: mine.chars };
      }
    }
  });
}

// The socket is needed while anything can still change on screen: the battle generates, or it failed on
// one side while the other is still finishing its answer.
function watching() {
  if (!state) return false;
  if (state.status === "generating") return true;
  return state.status === "failed" && !isMedia() && lastTurnSides().some((side) => !ended(side));
}

function requestSync() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;  // a socket that opens asks by itself
  if (syncSentAt && Date.now() - syncSentAt < 5000) return;  // one at a time (a lost answer is asked again)
  syncSentAt = Date.now();
  socket.send(JSON.stringify({ type: "sync" }));
}

// Chunk offsets count characters as the server does (code points), not JavaScript's UTF-16 units.
function codePoints(text) {
  let count = 0;
  for (const _char of text) count += 1;
  return count;
}

function settleSocket() {
  if (!watching()) { closeSocket(); return; }
  // Both sides ended but no battle status came (a lost event): ask for the state once, shortly.
  if (state.status === "generating" && lastTurnSides().every(ended)) setTimeout(() => { if (state && state.status === "generating") requestSync(); }, 1500);
}

function applyEvent(event) {
  lastHeard = Date.now();
  if (event.type === "state") {
    syncSentAt = 0;
    if (!state || event.state.code !== state.code) return;
    mergeState(event.state);
    render();
    settleSocket();
    return;
  }
  if (event.type === "status") {
    if (state.status === "voted") return;
    // Image and 3D battles are one turn (state.max_turns): no follow-up, whatever the event says.
    const canContinue = event.can_continue && state.turns.length < (state.max_turns || Infinity);
    Object.assign(state, { status: event.status, can_vote: event.can_vote, can_continue: canContinue });
    render();
    settleSocket();
    return;
  }
  if (event.type === "pong" || event.type === "error") return;
  const turn = state.turns[event.turn];
  if (!turn) { requestSync(); return; }
  const side = turn[event.side];
  if (event.attempt < side.attempt) return;  // an old attempt's last words
  if (event.attempt === side.attempt && ended(side) && event.type !== "done" && event.type !== "failed") return;
  if (event.attempt > side.attempt) Object.assign(side, { attempt: event.attempt, output: "", chars: 0, error: "", media: null, progress: null });
  if (event.type === "started") side.status = "running";
  if (event.type === "progress") {
    // One shared fraction for both sides (workers/pacing.py); two workers may publish steps out of order.
    if (typeof side.progress === "number" && event.fraction < side.progress) return;
    Object.assign(side, { status: "running", progress: event.fraction });
    if (!media.progress(state, event.turn, event.side)) render();  // only the progress line changes
    return;
  }
  if (event.type === "chunk") {
    side.status = "running";
    if (typeof side.chars !== "number") side.chars = codePoints(side.output);
    const have = side.chars;
    if (event.offset > have) { requestSync(); return; }  // missed chunks: the socket's state has them
    const fresh = Array.from(event.text).slice(have - event.offset);
    side.output += fresh.join("");
    side.chars = have + fresh.length;
  }
  if (event.type === "done") {
    Object.assign(side, { status: "done", output: event.output, chars: undefined, flagged: Boolean(event.flagged), media: event.media || null, progress: 1 });
  }
  if (event.type === "failed") Object.assign(side, { status: "failed", error: event.error });
  if (event.type === "done" || event.type === "failed") settleSocket();
  const answer = $(`answer-${event.side}-${event.turn}`);
  if (answer && event.type === "chunk" && !side.flagged) {
    answer.className = "answer running";
    renderMarkdown(answer, side.output);  // markdown.js: sanitised, redrawn at most once a frame
  } else {
    render();
  }
}

let reconnectTimer = null;

function closeSocket() {
  clearTimeout(reconnectTimer);
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  syncSentAt = 0;
}

function connect() {
  closeSocket();
  if (!watching()) return;
  const code = state.code;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/battle/${code}/`);
  socket = ws;
  ws.onopen = () => { lastHeard = Date.now(); requestSync(); };  // catch up on anything sent before we joined
  ws.onmessage = (message) => {
    retry = 0;
    if (socket === ws) applyEvent(JSON.parse(message.data));
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    syncSentAt = 0;
    if (!state || state.code !== code || !watching()) return;
    // Backoff 0.25, 0.5, 1, 2, 4, 8 s; a socket that keeps failing falls back to one API read per try.
    retry += 1;
    const delay = Math.min(8000, 250 * 2 ** (retry - 1));
    reconnectTimer = setTimeout(() => {
      if (!state || state.code !== code) return;
      (retry > 3 ? refresh() : Promise.resolve()).then(() => { if (state && state.code === code) connect(); });
    }, delay);
  };
}

// A socket that stays open but goes quiet (a lost event, a channel layer hiccup) is asked for the state.
setInterval(() => {
  if (socket && socket.readyState === WebSocket.OPEN && watching() && Date.now() - lastHeard > 8000) {
    lastHeard = Date.now();
    requestSync();
  }
}, 2000);

function updateCounter() {
  const length = $("prompt").value.length;
  $("counter").textContent = `${length.toLocaleString()} / ${maxChars.toLocaleString()}`;
  $("counter").classList.toggle("over", length > maxChars);
  if (length > maxChars) showError(`Your prompt is ${length.toLocaleString()} characters long; the limit is ${maxChars.toLocaleString()}.`);
  else if ($("error").dataset.fromCounter) showError("");
  $("error").dataset.fromCounter = length > maxChars ? "1" : "";
}

function battleStarted(data) {
  media.reset();
  revealed.clear();
  state = data.state;
  history.pushState({}, "", data.url);
}

async function submitPrompt(event) {
  event.preventDefault();
  const prompt = $("prompt").value;
  if (prompt.length > maxChars) { updateCounter(); return; }
  const image = $("image-input") && $("image-input").files[0];
  if (!prompt.trim() && !image) {
    showError(modality === "3d" ? "Describe an object, or choose an image to turn into 3D." : "Write a prompt first.");
    return;
  }
  showError("");
  $("send").disabled = true;
  try {
    if (state && !state.vote && state.status !== "failed") {
      state = (await api(`/api/battles/${state.code}/continue`, { prompt })).state;
    } else if (image) {
      const form = new FormData();
      form.append("modality", modality);
      form.append("prompt", prompt);
      form.append("image", image);
      battleStarted(await api("/api/battles", form));
    } else {
      battleStarted(await api("/api/battles", { prompt, modality }));
    }
    $("prompt").value = "";
    if ($("image-input")) $("image-input").value = "";
    updateCounter();
    render();
    connect();
    answersRegion().focus({ preventScroll: true });  // focus follows the answers; the vote bar comes next
  } catch (err) {
    showError(withWait(err));  // the prompt stays in the box
    $("send").disabled = false;
    $("prompt").focus();
  }
}

function answersRegion() {
  if (!battleEl.hasAttribute("tabindex")) {
    battleEl.tabIndex = -1;
    battleEl.setAttribute("role", "region");
    battleEl.setAttribute("aria-label", "The two answers");
  }
  return battleEl;
}

async function galleryBattle() {
  showError("");
  $("gallery-battle").disabled = true;
  try {
    battleStarted(await api("/api/battles", { modality, gallery: true }));
    render();
    connect();
  } catch (err) {
    showError(err.message);
  } finally {
    $("gallery-battle").disabled = false;
  }
}

// --- vote: a fresh proof-of-work challenge (and the CAPTCHA, if the site uses one) goes with every vote ---

const CAPTCHA_SCRIPTS = {
  turnstile: ["https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit", "turnstile"],
  hcaptcha: ["https://js.hcaptcha.com/1/api.js?render=explicit", "hcaptcha"],
};
let captchaWidget = null;
let captchaResolve = null;

function loadScript(src, global) {
  if (window[global]) return Promise.resolve(window[global]);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.onload = () => resolve(window[global]);
    script.onerror = () => reject(new Error("The CAPTCHA could not be loaded. Check your connection and try again."));
    document.head.append(script);
  });
}

// Resolves with the provider's one-use token once the visitor has solved the widget.
async function captchaToken({ provider, site_key: sitekey }) {
  const [src, global] = CAPTCHA_SCRIPTS[provider];
  const widgets = await loadScript(src, global);
  let box = $("captcha");
  if (!box) {
    box = el("div", "captcha");
    box.id = "captcha";
    $("votebar").after(box);
  }
  $("status").textContent = "Please complete the check below to vote.";
  const token = new Promise((resolve) => { captchaResolve = resolve; });
  if (captchaWidget === null) {
    captchaWidget = widgets.render(box, { sitekey, callback: (value) => captchaResolve && captchaResolve(value) });
  } else {
    widgets.reset(captchaWidget);  // tokens are single use: every vote needs a fresh solve
  }
  return token;
}

async function voteProof(code) {
  const challenge = await api(`/api/battles/${code}/challenge`);
  const proof = { fingerprint: deviceFingerprint() };
  if (challenge.token) {
    $("status").textContent = "Sending your vote…";
    proof.challenge = { token: challenge.token, counter: await solveChallenge(challenge.token, challenge.difficulty) };
  }
  if (challenge.captcha) proof.captcha = await captchaToken(challenge.captcha);
  return proof;
}

async function vote(choice) {
  if (!state || !state.can_vote || state.vote || Date.now() < voteBlockedUntil) return;
  showVoteError("");
  for (const button of $("votebar").querySelectorAll("button")) button.disabled = true;
  try {
    const criteria = criteriaChosen();
    const proof = await voteProof(state.code);
    const body = { choice, ...proof };
    if (Object.keys(criteria).length) body.criteria = criteria;
    state = (await api(`/api/battles/${state.code}/vote`, body)).state;
  } catch (err) {
    // A refused vote stores nothing: its message shows by the vote bar, with the time to wait; the buttons
    // come back once that time has passed.
    showVoteError(withWait(err));
    voteBlockedUntil = Date.now() + (err.retryAfter || 0) * 1000;
    if (err.retryAfter) setTimeout(() => { if (state) render(); }, err.retryAfter * 1000 + 50);
    await refresh();
    render();
    $("votebar").querySelector(`button[data-choice="${choice}"]`).focus();
    return;
  }
  render();
  if (state.vote) $("new-battle").focus();
}

async function battleAction(action) {
  if (!state) return;
  showVoteError("");
  for (const id of ["skip-battle", "regenerate"]) $(id).disabled = true;
  try {
    const fresh = (await api(`/api/battles/${state.code}/${action}`, {})).state;
    if (action === "regenerate") {
      revealed.clear();
      state = fresh;  // new attempts of the last turn: what was shown of the old ones goes
      render();
      connect();
      answersRegion().focus({ preventScroll: true });
    } else {
      closeSocket();
      state = fresh;
      render();
      $("new-battle").focus();
    }
  } catch (err) {
    showVoteError(withWait(err));
  } finally {
    for (const id of ["skip-battle", "regenerate"]) $(id).disabled = false;
  }
}

function newBattle() {
  closeSocket();
  // A failed battle's prompt stays in the box for the new battle.
  const lastTurn = state && state.status === "failed" ? state.turns[state.turns.length - 1] : null;
  const keep = lastTurn ? lastTurn.prompt : "";
  state = null;
  voteBlockedUntil = 0;
  showVoteError("");
  revealed.clear();
  media.reset();
  history.pushState({}, "", homeUrl);
  render();
  for (const key of ["a", "b"]) { $(`turns-${key}`).replaceChildren(); $(`reveal-${key}`).textContent = ""; }
  $("battle-input").hidden = true;
  $("criteria").hidden = true;
  for (const id of ["gallery-battle", "media-extra"]) if ($(id)) $(id).hidden = false;
  $("votebar").hidden = true;
  $("status").textContent = "";
  $("new-battle").hidden = true;
  $("random-prompt").hidden = false;
  $("prompt").disabled = false;
  $("send").disabled = false;
  $("prompt").placeholder = startPlaceholder;
  if (keep) $("prompt").value = keep;
  updateCounter();
  $("prompt").focus();
}

async function randomPrompt() {
  try {
    $("prompt").value = (await api(`/api/prompts/random?modality=${modality}`)).prompt;
    updateCounter();
  } catch (err) {
    showError(err.message);
  }
}

// --- keyboard: Enter sends (Shift+Enter: a newline; never while an IME is composing); vote keys ---

const VOTE_KEYS = { a: "a", b: "b", t: "tie", n: "both_bad" };

function setUpKeyboard() {
  // The error line sits next to the prompt, where starting a battle happens.
  $("prompt-form").prepend($("error"));
  const voteError = el("p", "error vote-error");
  voteError.id = "vote-error";
  voteError.setAttribute("role", "alert");
  voteError.hidden = true;
  const keys = el("p", "note vote-keys", "Keyboard: A (A is better), B (B is better), T (tie), N (both are bad).");
  keys.id = "vote-keys";
  keys.hidden = true;
  const actions = el("div", "battle-actions");
  actions.id = "battle-actions";
  actions.hidden = true;
  for (const [id, label, title, action] of [
    ["skip-battle", "Skip", "Pass on this pair: recorded, not counted", "skip"],
    ["regenerate", "Regenerate", "Both models answer your last message again; only the final pair is voted", "regenerate"],
  ]) {
    const button = el("button", "secondary", label);
    button.type = "button";
    button.id = id;
    button.title = title;
    button.hidden = true;
    button.addEventListener("click", () => battleAction(action));
    actions.append(button);
  }
  $("votebar").after(voteError, keys, actions);
  for (const button of $("votebar").querySelectorAll("button")) {
    const key = Object.keys(VOTE_KEYS).find((k) => VOTE_KEYS[k] === button.dataset.choice);
    if (key) button.setAttribute("aria-keyshortcuts", key.toUpperCase());
  }
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    if (!$("send").disabled) $("prompt-form").requestSubmit();
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing || event.defaultPrevented) return;
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const choice = VOTE_KEYS[event.key.toLowerCase()];
    if (!choice || $("votebar").hidden) return;
    const button = $("votebar").querySelector(`button[data-choice="${choice}"]`);
    if (!button || button.disabled) return;
    event.preventDefault();
    vote(choice);
  });
}

setUpKeyboard();
$("prompt-form").addEventListener("submit", submitPrompt);
$("prompt").addEventListener("input", updateCounter);
updateCounter();  // the server's "0 / 30000" in the page's own number format
$("new-battle").addEventListener("click", newBattle);
$("random-prompt").addEventListener("click", randomPrompt);
if ($("gallery-battle")) $("gallery-battle").addEventListener("click", galleryBattle);
$("input-image").addEventListener("click", () => media.zoom($("input-image").src, "Input image"));
for (const button of $("votebar").querySelectorAll("button")) button.addEventListener("click", () => vote(button.dataset.choice));
window.addEventListener("popstate", () => location.reload());
render();
connect();
warmUp();
