// Image and 3D outputs on the battle page: images side by side in equal boxes with a zoom lightbox, and two
// linked 3D viewers (./viewer3d.js, imported only for 3D battles: three.js is large). battle.js owns the
// battle state; this module draws its media and says when both outputs are on screen, so the vote can open.

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function statusLine(side) {
  if (side.status === "queued") return { text: "Waiting for a worker…" };
  if (side.status === "running") {
    const fraction = typeof side.progress === "number" ? side.progress : null;
    return { text: fraction === null ? "Generating…" : `Generating… ${Math.round(fraction * 100)}%`, fraction };
  }
  if (side.status === "failed") return { text: `⚠ ${side.error || "This model failed."}`, failed: true };
  if (side.status === "done" && !side.media) return { text: "⚠ This model answered without a file.", failed: true };
  return null;
}

export class MediaPanels {
  /** onChange(): something that decides the vote changed (an output finished loading or failed).
   *  onShow(turn, key): the voter asked to see an output the content filter hid. */
  constructor({ onChange, onShow }) {
    this.onChange = onChange;
    this.onShow = onShow;
    this.images = {}; // key -> "loading" | "loaded" | "failed"
    this.viewer = null;
    this.viewerLoading = null;
    this.viewerError = "";
    this.lightbox = $("lightbox");
    this.lightbox.addEventListener("click", () => this.lightbox.close()); // a click anywhere closes the zoom
    this.lightbox.addEventListener("close", () => { $("lightbox-img").removeAttribute("src"); });
    this.toolsWired = false;
    this.epoch = 0; // bumped by reset(): a viewer still being imported for the previous battle is dropped
  }

  // --- the page's pieces ---------------------------------------------------------------------------------

  stage(key) {
    const stage = $(`stage-${key}`);
    if (!stage.firstChild) {
      const status = el("div", "media-status");
      status.id = `media-status-${key}`;
      status.setAttribute("aria-live", "polite");
      const filtered = el("div", "media-box");
      filtered.id = `media-filtered-${key}`;
      const notice = el("div", "filtered", "This output was hidden by the content filter.");
      const show = el("button", "show-anyway", "Show anyway");
      show.type = "button";
      show.addEventListener("click", () => this.onShow(Number(stage.dataset.turn), key));
      notice.append(show);
      filtered.append(notice);
      const box = el("div", "media-box");
      box.id = `media-box-${key}`;
      const img = el("img");
      img.id = `image-${key}`;
      img.alt = `Model ${key.toUpperCase()}'s image (click to zoom)`;
      img.addEventListener("load", () => { this.images[key] = "loaded"; this.onChange(); });
      img.addEventListener("error", () => {
        if (!img.getAttribute("src")) return;
        this.images[key] = "failed";
        this.onChange();
      });
      img.addEventListener("click", () => this.zoom(img.src, `Model ${key.toUpperCase()}`));
      box.append(img);
      const viewer = el("div", "viewer-host");
      viewer.id = `viewer-${key}`;
      const meta = el("div", "media-meta");
      meta.id = `media-meta-${key}`;
      stage.replaceChildren(status, filtered, box, viewer, meta);
    }
    return stage;
  }

  zoom(src, caption) {
    $("lightbox-img").src = src;
    $("lightbox-caption").textContent = caption;
    this.lightbox.showModal();
  }

  wireTools() {
    if (this.toolsWired) return;
    this.toolsWired = true;
    $("link-cameras").addEventListener("change", (event) => this.viewer && this.viewer.setLinked(event.target.checked));
    for (const button of document.querySelectorAll("#viewer-tools [data-view]")) {
      button.addEventListener("click", () => this.viewer && this.viewer.setView(button.dataset.view));
    }
    $("reset-view").addEventListener("click", () => this.viewer && this.viewer.resetCameras());
  }

  syncTools() {
    const viewer = this.viewer;
    $("viewer-tools").hidden = !viewer;
    if (!viewer) return;
    $("link-cameras").checked = viewer.linked;
    for (const button of document.querySelectorAll("#viewer-tools [data-view]")) {
      button.setAttribute("aria-pressed", String(button.dataset.view === viewer.view));
    }
  }

  // --- 3D ------------------------------------------------------------------------------------------------

  ensureViewer() {
    if (this.viewer || this.viewerError) return Promise.resolve(this.viewer);
    const epoch = this.epoch;
    this.viewerLoading ||= import("./viewer3d.js")
      .then(({ DualViewer }) => {
        if (epoch !== this.epoch) return null;
        this.viewer = new DualViewer({ a: $("viewer-a"), b: $("viewer-b") }, {
          onChange: () => { this.syncTools(); this.onChange(); },
        });
        window.arenaViewers = this.viewer; // read by the browser tests: cameras, controls, load states
        this.wireTools();
        this.syncTools();
        return this.viewer;
      })
      .catch((err) => {
        if (epoch !== this.epoch) return null;
        this.viewerError = err.message || String(err);
        this.onChange();
        return null;
      });
    return this.viewerLoading;
  }

  // --- drawing -------------------------------------------------------------------------------------------

  /** Draw the latest turn's outputs; safe to call on every state change (nothing is reloaded twice). */
  render(state, revealed) {
    const modality = state.modality;
    const i = state.turns.length - 1;
    const turn = state.turns[i];
    if (!turn) return;
    const aspects = [];
    for (const key of ["a", "b"]) {
      const side = turn[key];
      const stage = this.stage(key);
      stage.dataset.turn = String(i);
      const media = side.status === "done" ? side.media : null;
      const hidden = Boolean(media && side.flagged && !revealed.has(`${i}-${key}`));
      const line = statusLine(side);
      const status = $(`media-status-${key}`);
      status.className = `media-status${line && line.failed ? " failed" : ""}`;
      status.replaceChildren();
      if (line) {
        status.append(el("span", "", line.text));
        if (side.status === "running") {
          const bar = el("progress");
          if (typeof line.fraction === "number") bar.value = line.fraction;
          status.append(bar);
        }
      }
      if (this.viewerError && modality === "3d" && media && !hidden) {
        status.className = "media-status failed";
        status.textContent = `⚠ ${this.viewerError}`;
      }
      $(`media-filtered-${key}`).hidden = !hidden;
      const box = $(`media-box-${key}`);
      const img = $(`image-${key}`);
      const meta = $(`media-meta-${key}`);
      const showImage = modality === "image" && media && !hidden;
      box.hidden = !showImage;
      meta.textContent = "";
      if (showImage) {
        if (img.dataset.url !== media.url) {
          img.dataset.url = media.url;
          this.images[key] = "loading";
          img.src = media.url;
        }
        const { width, height } = media.meta || {};
        if (width && height) {
          aspects.push(width / height);
          meta.textContent = `${width} × ${height}`;
        }
      }
      const host = $(`viewer-${key}`);
      host.hidden = modality !== "3d" || hidden || Boolean(this.viewerError);
      if (modality === "3d" && media && !hidden) {
        this.ensureViewer().then((viewer) => viewer && viewer.load(key, media));
      }
    }
    // Equal boxes for both images: the wider of the two shapes, each image contained in it.
    const aspect = aspects.length ? Math.min(2, Math.max(0.5, ...aspects)) : 1;
    $("battle").style.setProperty("--media-aspect", String(aspect));
    this.syncTools();
  }

  /** Update one side's progress line without redrawing anything else. */
  progress(state, turnIndex, key) {
    const side = state.turns[turnIndex] && state.turns[turnIndex][key];
    const status = $(`media-status-${key}`);
    if (!side || !status) return;
    const line = statusLine(side);
    const bar = status.querySelector("progress");
    const text = status.querySelector("span");
    if (!line || !bar || !text) return false;
    text.textContent = line.text;
    if (typeof line.fraction === "number") bar.value = line.fraction;
    return true;
  }

  /** {ready, problem}: ready when both outputs are on screen (or hidden by the voter's choice); problem is
   *  a sentence when one cannot be shown, so the battle cannot be judged. */
  settled(state, revealed) {
    const i = state.turns.length - 1;
    const turn = state.turns[i];
    if (!turn) return { ready: false, problem: "" };
    let ready = true;
    for (const key of ["a", "b"]) {
      const side = turn[key];
      if (side.status !== "done") { ready = false; continue; }
      if (!side.media) return { ready: false, problem: `Model ${key.toUpperCase()} answered without a file.` };
      if (side.flagged && !revealed.has(`${i}-${key}`)) continue;
      if (state.modality === "3d" && this.viewerError) return { ready: false, problem: this.viewerError };
      const loaded = state.modality === "3d"
        ? (this.viewer ? this.viewer.sides[key].state : "loading")
        : this.images[key];
      if (loaded === "failed") return { ready: false, problem: `Model ${key.toUpperCase()}'s output could not be displayed.` };
      if (loaded !== "loaded") ready = false;
    }
    return { ready, problem: "" };
  }

  reset() {
    this.epoch += 1;
    if (this.lightbox.open) this.lightbox.close();
    if (this.viewer) this.viewer.dispose();
    this.viewer = null;
    this.viewerLoading = null;
    this.viewerError = "";
    this.images = {};
    window.arenaViewers = null;
    for (const key of ["a", "b"]) $(`stage-${key}`).replaceChildren();
    this.syncTools();
  }
}
