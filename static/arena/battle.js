// Battle page: start a battle, follow both answers over a websocket, vote, reveal.
// The server is the truth: the page renders the state it fetches, and websocket events only
// advance that state; a gap in the stream triggers a refetch.
import { deviceFingerprint, solveChallenge, warmUp } from "./pow.js";

const $ = (id) => document.getElementById(id);
const battleEl = $("battle");
const maxChars = Number(battleEl.dataset.maxChars);
const modality = battleEl.dataset.modality;
let state = JSON.parse($("battle-state").textContent);
let socket = null;
let retry = 0;
const revealed = new Set();  // "turn-side" keys of filtered answers the voter chose to see

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : document.querySelector("[name=csrfmiddlewaretoken]").value;
}

async function api(url, body) {
  const options = body === undefined
    ? { headers: { Accept: "application/json" } }
    : { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() }, body: JSON.stringify(body) };
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error("The server could not be reached. Check your connection and try again.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `The server answered ${response.status}.`);
  return data;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
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

function renderPanels() {
  for (const key of ["a", "b"]) {
    const box = $(`turns-${key}`);
    box.replaceChildren(...state.turns.map((turn, i) => {
      const side = turn[key];
      const wrap = el("div", "turn");
      wrap.append(el("div", "user-msg", turn.prompt));
      const hidden = side.flagged && !revealed.has(`${i}-${key}`);
      const answer = hidden ? hiddenAnswer(key, i) : el("div", `answer ${side.status}`, answerText(side));
      answer.id = `answer-${key}-${i}`;
      wrap.append(answer);
      return wrap;
    }));
    const reveal = state.vote ? state.vote.reveal[key] : null;
    $(`reveal-${key}`).textContent = reveal ? `${reveal.name}${reveal.organization ? " · " + reveal.organization : ""}` : "";
  }
}

function statusText() {
  if (state.vote) {
    return state.vote.counted ? "Thanks for voting! Your vote counts towards the leaderboard." :
      `Thanks for voting. This vote will not count: ${state.vote.reason}.`;
  }
  if (state.status === "generating") return "Both models are answering…";
  if (state.status === "failed") return "One side failed to answer, so this battle cannot be voted on. Start a new battle.";
  if (state.status === "ready") return state.can_continue ? "Vote now, or keep chatting with both models." : "Vote now: this battle reached its turn limit.";
  return "";
}

function render() {
  const active = Boolean(state);
  battleEl.hidden = !active;
  $("demo-banner").hidden = !(active && state.demo);
  if (!active) return;
  renderPanels();
  $("votebar").hidden = Boolean(state.vote) || state.status === "failed";
  for (const button of $("votebar").querySelectorAll("button")) button.disabled = !state.can_vote;
  $("status").textContent = statusText();
  const finished = Boolean(state.vote) || state.status === "failed";
  $("new-battle").hidden = !finished;
  $("prompt").disabled = finished || state.status === "generating" || !state.can_continue;
  $("send").disabled = $("prompt").disabled;
  $("random-prompt").hidden = state.turns.length > 0;
  $("prompt").placeholder = finished ? "Start a new battle to ask again." : "Ask a follow-up…";
}

async function refresh() {
  if (!state) return;
  try {
    state = await api(`/api/battles/${state.code}`);
    render();
  } catch (err) {
    showError(err.message);
  }
}

function applyEvent(event) {
  if (event.type === "status") {
    Object.assign(state, { status: event.status, can_vote: event.can_vote, can_continue: event.can_continue });
    render();
    if (event.status !== "generating") closeSocket();
    return;
  }
  if (event.type === "pong" || event.type === "error") return;
  const turn = state.turns[event.turn];
  if (!turn) { refresh(); return; }
  const side = turn[event.side];
  if (event.attempt > side.attempt) Object.assign(side, { attempt: event.attempt, output: "", error: "" });
  if (event.type === "started") side.status = "running";
  if (event.type === "chunk") {
    side.status = "running";
    const have = side.output.length;
    if (event.offset > have) { refresh(); return; }  // missed chunks: the database has them
    side.output += event.text.slice(have - event.offset);
  }
  if (event.type === "done") Object.assign(side, { status: "done", output: event.output, flagged: Boolean(event.flagged) });
  if (event.type === "failed") Object.assign(side, { status: "failed", error: event.error });
  const answer = $(`answer-${event.side}-${event.turn}`);
  if (answer && event.type === "chunk" && !side.flagged) {
    answer.className = "answer running";
    answer.textContent = side.output;
  } else {
    render();
  }
}

function closeSocket() {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
}

function connect() {
  closeSocket();
  if (!state || state.status !== "generating") return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/battle/${state.code}/`);
  socket.onopen = () => { retry = 0; refresh(); };  // catch up on anything sent before we joined
  socket.onmessage = (message) => applyEvent(JSON.parse(message.data));
  socket.onclose = () => {
    socket = null;
    if (state && state.status === "generating") {
      retry = Math.min(retry + 1, 5);
      setTimeout(() => { refresh().then(connect); }, 500 * retry);
    }
  };
}

function updateCounter() {
  const length = $("prompt").value.length;
  $("counter").textContent = `${length.toLocaleString()} / ${maxChars.toLocaleString()}`;
  $("counter").classList.toggle("over", length > maxChars);
  if (length > maxChars) showError(`Your prompt is ${length.toLocaleString()} characters long; the limit is ${maxChars.toLocaleString()}.`);
  else if ($("error").dataset.fromCounter) showError("");
  $("error").dataset.fromCounter = length > maxChars ? "1" : "";
}

async function submitPrompt(event) {
  event.preventDefault();
  const prompt = $("prompt").value;
  if (prompt.length > maxChars) { updateCounter(); return; }
  showError("");
  $("send").disabled = true;
  try {
    if (state && !state.vote && state.status !== "failed") {
      state = (await api(`/api/battles/${state.code}/continue`, { prompt })).state;
    } else {
      const data = await api("/api/battles", { prompt, modality });
      state = data.state;
      history.pushState({}, "", data.url);
    }
    $("prompt").value = "";
    updateCounter();
    render();
    connect();
  } catch (err) {
    showError(err.message);
    $("send").disabled = false;
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
  showError("");
  for (const button of $("votebar").querySelectorAll("button")) button.disabled = true;
  try {
    const proof = await voteProof(state.code);
    state = (await api(`/api/battles/${state.code}/vote`, { choice, ...proof })).state;
  } catch (err) {
    showError(err.message);  // a refused vote stores nothing: the buttons come back for another try
    await refresh();
    return;
  }
  render();
}

function newBattle() {
  closeSocket();
  state = null;
  revealed.clear();
  history.pushState({}, "", modality === "text" ? "/" : `/?modality=${modality}`);
  render();
  for (const key of ["a", "b"]) { $(`turns-${key}`).replaceChildren(); $(`reveal-${key}`).textContent = ""; }
  $("votebar").hidden = true;
  $("status").textContent = "";
  $("new-battle").hidden = true;
  $("random-prompt").hidden = false;
  $("prompt").disabled = false;
  $("send").disabled = false;
  $("prompt").placeholder = "Ask anything…";
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

$("prompt-form").addEventListener("submit", submitPrompt);
$("prompt").addEventListener("input", updateCounter);
$("new-battle").addEventListener("click", newBattle);
$("random-prompt").addEventListener("click", randomPrompt);
for (const button of $("votebar").querySelectorAll("button")) button.addEventListener("click", () => vote(button.dataset.choice));
window.addEventListener("popstate", () => location.reload());
render();
connect();
warmUp();
