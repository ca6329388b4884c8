// Model answers rendered as markdown: safely (markdown-it with raw HTML off, then DOMPurify) and incrementally
// while they stream in.
//
//   renderMarkdown(element, text)                  a streamed update: drawn at once the first time, then at most
//                                                  once per animation frame and every 50 ms or more (more when
//                                                  a draw costs more), always with the newest text
//   renderMarkdown(element, text, {final: true})   drawn now, from the full text (cancels a pending update)
//
// Incremental: the answer is cut into its top-level blocks (paragraphs, lists, tables, code, math...). Blocks
// already on screen whose source is unchanged keep their DOM nodes (no flicker, no lost selection, no
// re-highlighting); a streamed update re-parses only from the last block on, since appending text can only
// change the last block. While streaming, the line being written is held back when it starts a table row, a
// code fence or a math block (no half rows, no "```pyt" language), a table header waits for its delimiter row,
// and an unclosed $$ block shows its source until it closes. The final render parses the whole text afresh.
//
// Safety: markdown-it escapes all raw HTML (html: false) and refuses javascript:/vbscript:/file:/data: links;
// images are not rendered (the CSP would block other sites' images anyway, and a picture could track the
// voter); DOMPurify then removes anything executable that could still slip through, keeps only http(s) and
// mailto links, and every link opens in a new tab with rel="noopener nofollow ugc". KaTeX runs with
// trust: false (no \href, \url or \htmlClass), and its output goes through DOMPurify like the rest.

import MarkdownIt from "../vendor/markdown-it/markdown-it.js";
import createDOMPurify from "../vendor/dompurify/purify.js";
import hljs from "../vendor/highlight/highlight.js";
import katex from "../vendor/katex/katex.js";

const MIN_INTERVAL_MS = 50;
const MAX_INTERVAL_MS = 400;
const MAX_HIGHLIGHT_CHARS = 100_000;  // longer code is shown plain (highlighting it would stall the page)

// --- math: $…$, \(…\) inline; $$…$$, \[…\] as blocks (and inline, inside a paragraph) ------------------------

const texCache = new Map();

function tex(source, display) {
  const key = `${display ? "D" : "I"}${source}`;
  let html = texCache.get(key);
  if (html === undefined) {
    html = katex.renderToString(source, {
      displayMode: display, throwOnError: false, trust: false, strict: "ignore", maxSize: 20, maxExpand: 500,
      output: "htmlAndMathml",
    });
    if (texCache.size > 500) texCache.clear();
    texCache.set(key, html);
  }
  return html;
}

const INLINE_DELIMITERS = [["$$", "$$", true], ["$", "$", false], ["\\(", "\\)", false], ["\\[", "\\]", true]];

function mathInline(state, silent) {
  const src = state.src;
  const pos = state.pos;
  const found = INLINE_DELIMITERS.find(([open]) => src.startsWith(open, pos));
  if (!found) return false;
  const [open, close, display] = found;
  const start = pos + open.length;
  const dollar = open === "$";
  // Pandoc's rule for $: no space after the opening one, none before the closing one, no digit after it
  // ("costs $5 and $10" stays text).
  if (dollar && (start >= state.posMax || /\s/.test(src[start]))) return false;
  let end = src.indexOf(close, start);
  while (end !== -1 && src[end - 1] === "\\") end = src.indexOf(close, end + 1);
  if (end === -1 || end === start || end + close.length > state.posMax) return false;
  if (dollar && (/\s/.test(src[end - 1]) || /\d/.test(src[end + 1] || ""))) return false;
  if (!silent) {
    const token = state.push("math_inline", "math", 0);
    token.content = src.slice(start, end);
    token.markup = open;
    token.meta = { display };
  }
  state.pos = end + close.length;
  return true;
}

function mathBlock(state, startLine, endLine, silent) {
  if (state.sCount[startLine] - state.blkIndent >= 4) return false;
  const first = state.src.slice(state.bMarks[startLine] + state.tShift[startLine], state.eMarks[startLine]);
  const open = first.startsWith("$$") ? "$$" : first.startsWith("\\[") ? "\\[" : null;
  if (!open) return false;
  const close = open === "$$" ? "$$" : "\\]";
  if (silent) return true;
  const lines = [first.slice(open.length)];
  let line = startLine;
  let closed = false;
  for (;;) {
    const text = lines[lines.length - 1].trimEnd();
    if (text.endsWith(close) && (line > startLine || text.length >= close.length)) {
      lines[lines.length - 1] = text.slice(0, -close.length);
      closed = true;
      break;
    }
    line += 1;
    if (line >= endLine) break;
    lines.push(state.src.slice(state.bMarks[line] + state.tShift[line], state.eMarks[line]));
  }
  const token = state.push("math_block", "math", 0);
  token.block = true;
  token.content = lines.join("\n").trim();
  token.markup = open;
  token.meta = { closed };
  token.map = [startLine, Math.min(line + 1, endLine)];
  state.line = Math.min(line + 1, endLine);
  return true;
}

// --- the renderer --------------------------------------------------------------------------------------------

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function codeBlock(code, lang) {
  const language = lang && /^[\w+#.-]{1,40}$/.test(lang) && hljs.getLanguage(lang) ? lang : "";
  let body = null;
  if (language && code.length <= MAX_HIGHLIGHT_CHARS) {
    try {
      body = hljs.highlight(code, { language, ignoreIllegals: true }).value;
    } catch {
      body = null;
    }
  }
  const cls = language ? `hljs language-${language.toLowerCase()}` : "hljs";
  return `<pre class="md-code"><code class="${cls}">${body ?? escapeHtml(code)}</code></pre>\n`;
}

const md = new MarkdownIt({ html: false, linkify: true, typographer: false, highlight: codeBlock });
md.disable("image");
md.inline.ruler.before("escape", "math_inline", mathInline);
md.block.ruler.before("fence", "math_block", mathBlock, { alt: ["paragraph", "reference", "blockquote", "list"] });
md.renderer.rules.math_inline = (tokens, i) => tex(tokens[i].content, tokens[i].meta.display);
md.renderer.rules.math_block = (tokens, i, options, env) => {
  const { content, meta } = tokens[i];
  if (!meta.closed && !env.final) return `<pre class="md-math-pending">${escapeHtml(content)}</pre>\n`;
  return `<div class="md-math">${tex(content, true)}</div>\n`;
};
md.renderer.rules.code_block = (tokens, i) => codeBlock(tokens[i].content, "");
// Wide tables scroll inside their own box (made focusable by the sanitiser's hook below), never the page.
md.renderer.rules.table_open = () => '<div class="md-table"><table>\n';
md.renderer.rules.table_close = () => "</table></div>\n";

const purify = createDOMPurify(window);
purify.addHook("afterSanitizeAttributes", (node) => {
  // A code block or table wider than its panel scrolls, and a keyboard must be able to scroll it.
  if ((node.nodeName === "PRE" && node.classList.contains("md-code")) || node.classList?.contains("md-table")) {
    node.setAttribute("tabindex", "0");
  }
  if (node.nodeName === "A") {
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener nofollow ugc");
    } else {
      node.removeAttribute("target");
    }
  }
});
const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "img", "iframe", "object", "embed"],
  FORBID_ATTR: ["id", "name", "srcset", "formaction", "action"],
  ADD_ATTR: ["target"],
  ADD_TAGS: ["semantics", "annotation"],
};

// --- incremental drawing -------------------------------------------------------------------------------------

// Sanitised blocks by source, shared by every element: a block already drawn (the same answer drawn again into
// a new element, as the battle page does when a side finishes, or one block of it) is cloned, not re-rendered.
const blockCache = new Map();
const CACHE_CHARS = 4_000_000;
let cachedChars = 0;

function remember(key, fragment) {
  if (key.length > CACHE_CHARS / 4) return;
  blockCache.set(key, fragment);
  cachedChars += key.length;
  for (const oldest of blockCache.keys()) {
    if (cachedChars <= CACHE_CHARS) break;
    blockCache.delete(oldest);
    cachedChars -= oldest.length;
  }
}

const states = new WeakMap();

function normalise(text) {
  return String(text ?? "").replace(/\r\n?/g, "\n").replace(/\0/g, "\uFFFD");
}

const HELD_LINE = /^ {0,3}(\||```|~~~|\$\$|\\\[)/;
const TABLE_ROW = /^ {0,3}\|/;

function settledText(text) {
  // The line being written, when it starts a table row, a fence or a math block, waits for its newline.
  const lastBreak = text.lastIndexOf("\n");
  if (HELD_LINE.test(text.slice(lastBreak + 1))) text = text.slice(0, lastBreak + 1);
  // A table's header row waits for the delimiter row that makes it a table (else it flashes as "| a | b |").
  if (text.endsWith("\n")) {
    const lineStart = text.lastIndexOf("\n", text.length - 2) + 1;
    const prevStart = lineStart > 0 ? text.lastIndexOf("\n", lineStart - 2) + 1 : -1;
    const prev = prevStart >= 0 ? text.slice(prevStart, lineStart - 1) : "";
    if (TABLE_ROW.test(text.slice(lineStart)) && !TABLE_ROW.test(prev)) text = text.slice(0, lineStart);
  }
  return text;
}

function lineStarts(text) {
  const starts = [0];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  starts.push(text.length);
  return starts;
}

// Top-level blocks of a token stream, each with the source it came from (its cache key).
function blocksOf(tokens, text, offset, final, env) {
  // A block's HTML depends on its source and on the link reference definitions ([x]: url) around it.
  const references = env.references ? JSON.stringify(env.references) : "";
  const starts = lineStarts(text);
  const at = (line) => starts[Math.min(line, starts.length - 1)];
  const blocks = [];
  let current = null;
  for (const token of tokens) {
    if (!current) current = { tokens: [], map: token.map || [0, 0], pending: false };
    current.tokens.push(token);
    if (token.type === "math_block" && !token.meta.closed) current.pending = true;
    if (token.level === 0 && token.nesting <= 0) {
      blocks.push(current);
      current = null;
    }
  }
  if (current) blocks.push(current);
  return blocks.map((block) => {
    const source = text.slice(at(block.map[0]), at(block.map[1]));
    return {
      tokens: block.tokens,
      start: offset + at(block.map[0]),
      key: `${block.pending ? (final ? "F" : "S") : "-"}${references}\n${source}`,
      nodes: null,
    };
  });
}

function draw(element, state, raw, final) {
  const began = performance.now();
  const full = normalise(raw);
  const text = final ? full : settledText(full);
  const old = state.blocks;
  const intact = state.drawn && element.firstChild === state.first;
  let kept = [];
  let offset = 0;
  // Appending can change only the last block: re-parse from its start, keep the ones before it.
  if (!final && intact && old.length > 1 && text.startsWith(state.text)) {
    kept = old.slice(0, -1);
    offset = old[old.length - 1].start;
  } else {
    state.env = {};
  }
  const env = Object.assign(state.env, { final });
  const tail = text.slice(offset);
  const blocks = kept.concat(blocksOf(md.parse(tail, env), tail, offset, final, env));
  let firstChanged = intact ? kept.length : 0;
  let rendered = 0;
  for (let i = kept.length; i < blocks.length; i += 1) {
    const block = blocks[i];
    const before = intact ? old[i] : undefined;
    if (before && before.key === block.key && firstChanged === i) {
      block.nodes = before.nodes;
      firstChanged = i + 1;
      continue;
    }
    let fragment = blockCache.get(block.key);
    if (fragment) {
      blockCache.delete(block.key);  // most recently used last
      blockCache.set(block.key, fragment);
      fragment = fragment.cloneNode(true);
    } else {
      rendered += 1;
      fragment = purify.sanitize(md.renderer.render(block.tokens, md.options, env), PURIFY);
      // The last block of a streamed draw is still being written: only settled blocks are worth keeping.
      if (final || i < blocks.length - 1) remember(block.key, fragment.cloneNode(true));
    }
    block.nodes = Array.from(fragment.childNodes);
  }
  for (const block of blocks) block.tokens = null;  // only the nodes and keys are needed from now on
  if (!intact) {
    element.replaceChildren(...blocks.flatMap((block) => block.nodes));
  } else {
    for (const block of old.slice(firstChanged)) for (const node of block.nodes) node.remove();
    element.append(...blocks.slice(firstChanged).flatMap((block) => block.nodes));
  }
  state.blocks = blocks;
  state.first = element.firstChild;
  state.drawn = true;
  state.text = text;
  state.drawnAt = performance.now();
  state.cost = state.drawnAt - began;
  state.parsed = tail.length;
  state.rendered = rendered;
  state.interval = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, state.cost * 4));
}

function cancel(state) {
  if (state.timer !== null) clearTimeout(state.timer);
  if (state.frame !== null) cancelAnimationFrame(state.frame);
  state.timer = null;
  state.frame = null;
}

export function renderMarkdown(element, text, { final = false } = {}) {
  element.classList.add("markdown");
  let state = states.get(element);
  if (!state) {
    state = { blocks: [], first: null, drawn: false, text: "", env: {}, wanted: "", timer: null, frame: null,
      drawnAt: 0, cost: 0, interval: MIN_INTERVAL_MS };
    states.set(element, state);
  }
  state.wanted = text;
  // The first draw and the final one happen now: an element never shows blank or stale text in between.
  if (final || !state.drawn || element.firstChild !== state.first) {
    cancel(state);
    draw(element, state, text, final);
    return;
  }
  if (state.timer !== null || state.frame !== null) return;  // the pending draw will take the newest text
  const wait = Math.max(0, state.drawnAt + state.interval - performance.now());
  state.timer = setTimeout(() => {
    state.timer = null;
    state.frame = requestAnimationFrame(() => {
      state.frame = null;
      draw(element, state, state.wanted, false);
    });
  }, wait);
}

// The element's last draw: how long it took (ms), how many characters it parsed and how many blocks it
// rendered (the rest kept their nodes); and whether a draw is still pending. For tests and profiling.
export function markdownStats(element) {
  const state = states.get(element);
  if (!state) return null;
  const pending = state.timer !== null || state.frame !== null;
  return { cost: state.cost, parsed: state.parsed, rendered: state.rendered, blocks: state.blocks.length, pending };
}
