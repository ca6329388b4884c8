// Two side-by-side 3D viewers for a battle: a camera, orbit controls and a canvas per side, drawn by one shared
// WebGL renderer with the same neutral lighting and environment for both, each object normalised the same way
// (centred, unit bounding sphere) so the framing is fair. Cameras are linked by default: a change on one side is
// copied to the other. The views never trap the page: the wheel scrolls it (Ctrl/⌘ + wheel or a trackpad
// pinch zooms) and one finger scrolls it on a touch screen (two fingers turn and zoom).
// Meshes: GLB / glTF / OBJ / PLY through three.js loaders; Gaussian splats (.ply, .splat, .spz) through Spark,
// which is imported only when a battle has a splat.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { RoomEnvironment } from "three/addons/environments/RoomEnvironment.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OBJLoader } from "three/addons/loaders/OBJLoader.js";
import { PLYLoader } from "three/addons/loaders/PLYLoader.js";

export const VIEW_MODES = ["textured", "wireframe", "normals"];
const BACKGROUND = 0xdfe2e7;
const FOV = 40;
// Where the camera starts, as a direction from the object's centre: in front, a little above and to the right.
const START_DIRECTION = new THREE.Vector3(0.55, 0.4, 1).normalize();
const START_DISTANCE = 1.15 / Math.sin(THREE.MathUtils.degToRad(FOV / 2));
const HINT_MS = 2000;
const APPLE = /Mac|iPhone|iPad|iPod/.test(navigator.platform || navigator.userAgent || "");
const WHEEL_HINT = APPLE ? "⌘ + scroll to zoom, or pinch" : "Ctrl + scroll to zoom";
const TOUCH_HINT = "Use two fingers to turn and zoom";

// An untextured ("clay") surface: mid-grey and matte, so light and shade show the shape. A white material
// without texture or vertex colours (the glTF default, OBJ without a material, PLY without colours) gets it,
// on both sides alike; anything coloured keeps its own material.
const CLAY = {
  smooth: new THREE.MeshStandardMaterial({ color: 0x9a9ea6, roughness: 0.7, metalness: 0 }),
  flat: new THREE.MeshStandardMaterial({ color: 0x9a9ea6, roughness: 0.7, metalness: 0, flatShading: true }),
};

function isClay(material, geometry) {
  if (!material || material.map || material.emissiveMap || (material.vertexColors && geometry.attributes.color)) return false;
  const { r, g, b } = material.color || { r: 0, g: 0, b: 0 };
  return r > 0.99 && g > 0.99 && b > 0.99;
}

function clayOf(node) {
  const materials = Array.isArray(node.material) ? node.material : [node.material];
  if (!materials.every((material) => isClay(material, node.geometry))) return node.material;
  const clay = (material) => (material.flatShading ? CLAY.flat : CLAY.smooth);
  return Array.isArray(node.material) ? materials.map(clay) : clay(node.material);
}

// A studio that follows the camera (so an unlinked view is lit the same way relative to what it sees): a key
// light from the upper left, a soft fill from the right, a rim light from behind for the silhouette, and a
// dim sky/ground light; the room environment adds soft reflections for shiny and textured materials.
function lightRig() {
  const rig = new THREE.Group();
  const lights = [
    [2.2, [-1.0, 1.2, 0.9]], // key
    [0.6, [1.2, -0.1, 0.8]], // fill
    [1.3, [0.4, 0.9, -1.4]], // rim
  ];
  for (const [intensity, [x, y, z]] of lights) {
    const light = new THREE.DirectionalLight(0xffffff, intensity);
    light.position.set(x, y, z);
    light.target.position.set(0, 0, 0); // both in camera space: the light's direction turns with the view
    rig.add(light, light.target);
  }
  rig.add(new THREE.HemisphereLight(0xffffff, 0x4d5159, 0.7));
  return rig;
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- loading ---------------------------------------------------------------------------------------------

function loadWith(loader, url, onProgress) {
  return new Promise((resolve, reject) => {
    loader.load(url, resolve, onProgress, (err) => reject(err instanceof Error ? err : new Error(String(err))));
  });
}

function plyObject(geometry) {
  // A PLY with faces is a mesh; one without is a point cloud. Vertex colours are used when present.
  const colours = Boolean(geometry.attributes.color);
  if (geometry.index) {
    // Without normals in the file the faces are shown flat, as GLTFLoader does for a glTF without normals.
    const flatShading = !geometry.attributes.normal;
    if (flatShading) geometry.computeVertexNormals();
    const material = colours
      ? new THREE.MeshStandardMaterial({ color: 0xffffff, vertexColors: true, roughness: 0.8, flatShading })
      : new THREE.MeshStandardMaterial({ color: 0xffffff, flatShading }); // white: shown as clay (show())
    return new THREE.Mesh(geometry, material);
  }
  const material = new THREE.PointsMaterial({ size: 0.01, color: colours ? 0xffffff : 0x555b66, vertexColors: colours });
  return new THREE.Points(geometry, material);
}

async function meshLoad(media, onProgress) {
  switch (media.format) {
    case "glb":
    case "gltf": {
      const gltf = await loadWith(new GLTFLoader(), media.url, onProgress);
      return gltf.scene || gltf.scenes[0];
    }
    case "obj":
      return loadWith(new OBJLoader(), media.url, onProgress);
    case "ply":
      return plyObject(await loadWith(new PLYLoader(), media.url, onProgress));
    default:
      throw new Error(`The ${String(media.format).toUpperCase()} format cannot be shown as a mesh.`);
  }
}

let sparkModule = null;
function spark() {
  sparkModule ||= import("@sparkjsdev/spark");
  return sparkModule;
}

// Vertex and face counts of what is on screen. A loader that unrolls faces (OBJLoader does) repeats a vertex
// once per face: distinct positions are counted then, so the same mesh counts the same in every format.
function geometryCounts(object) {
  let vertices = 0;
  let faces = 0;
  object.traverse((node) => {
    const position = node.geometry && node.geometry.attributes.position;
    if (!position || !(node.isMesh || node.isPoints)) return;
    if (node.geometry.index || node.isPoints) {
      vertices += position.count;
    } else {
      const seen = new Set();
      for (let i = 0; i < position.count; i += 1) seen.add(`${position.getX(i)},${position.getY(i)},${position.getZ(i)}`);
      vertices += seen.size;
    }
    if (node.isMesh) faces += Math.floor((node.geometry.index ? node.geometry.index.count : position.count) / 3);
  });
  return { vertices, faces };
}

const whole = (value) => Number.isInteger(value) && value >= 0;

// --- one side --------------------------------------------------------------------------------------------

class Side {
  constructor(key, container, viewer) {
    this.key = key;
    this.viewer = viewer;
    this.container = container;
    this.state = "empty"; // empty, loading, loaded, failed
    this.media = null;
    this.object = null;
    this.counts = null;
    this.error = "";
    this.dirty = true;
    this.materials = {
      wireframe: new THREE.MeshBasicMaterial({ color: 0x1d2330, wireframe: true }),
      normals: new THREE.MeshNormalMaterial(),
    };

    container.classList.add("viewer3d");
    this.canvasBox = el("div", "viewer-canvas");
    this.info = el("div", "viewer-info");
    this.info.id = `viewer-info-${key}`;
    this.progress = el("div", "viewer-progress");
    this.progress.id = `viewer-progress-${key}`;
    this.bar = el("progress");
    this.bar.max = 1;
    this.progressText = el("span");
    this.progress.append(this.bar, this.progressText);
    this.progress.hidden = true;
    this.errorBox = el("div", "viewer-error");
    this.errorBox.id = `viewer-error-${key}`;
    this.errorBox.setAttribute("role", "alert");
    this.errorBox.hidden = true;
    container.replaceChildren(this.canvasBox, this.progress, this.errorBox, this.info);

    // What the visitor sees is a 2D canvas: the viewer's one WebGL renderer draws each side in turn and the
    // picture is copied here (see DualViewer).
    this.canvas = el("canvas");
    this.canvas.id = `viewer-canvas-${key}`;
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute(
      "aria-label",
      `3D view of model ${key.toUpperCase()}'s output: drag (two fingers on a touch screen) to rotate, ` +
        `${APPLE ? "⌘" : "Ctrl"} + scroll or pinch to zoom, arrow keys to pan`,
    );
    this.canvas.tabIndex = 0;
    this.context2d = this.canvas.getContext("2d");
    this.hint = el("div", "viewer-hint");
    this.hint.id = `viewer-hint-${key}`;
    this.hint.hidden = true;
    this.canvasBox.append(this.canvas, this.hint);

    // The same neutral studio for both sides (lightRig) and the shared room environment, dimmed so that it
    // does not wash out the shading.
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(BACKGROUND);
    this.scene.environment = viewer.environment;
    this.scene.environmentIntensity = 0.35;
    this.camera = new THREE.PerspectiveCamera(FOV, 1, 0.01, 100);
    this.camera.add(lightRig());
    this.scene.add(this.camera);

    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.enableDamping = false; // every pointer move is one "change": the other side follows exactly
    this.controls.minDistance = 0.2;
    this.controls.maxDistance = 20;
    this.controls.addEventListener("change", () => { this.dirty = true; viewer.cameraChanged(this); });
    this.controls.listenToKeyEvents(this.canvas); // arrow keys pan once the view has the focus
    this.pageFriendly();
    this.resetCamera();

    this.resize();
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.canvasBox);
  }

  get loaded() { return this.state === "loaded"; }

  // The page keeps the wheel and one finger. A wheel without Ctrl/⌘ is stopped before it reaches the controls
  // (so they neither zoom nor prevent the scroll); with one (a trackpad pinch arrives as Ctrl + wheel) the
  // controls zoom. On a touch screen the browser pans the page for one finger (touch-action: pan-y) and the
  // controls turn nothing with one (touches.ONE); two fingers turn and pinch (DOLLY_ROTATE), and their moves
  // are kept from the page.
  pageFriendly() {
    this.controls.touches = { ONE: null, TWO: THREE.TOUCH.DOLLY_ROTATE };
    this.canvas.style.touchAction = "pan-y"; // OrbitControls sets "none" on its element
    this.canvasBox.addEventListener("wheel", (event) => {
      if (event.ctrlKey || event.metaKey) return;
      event.stopPropagation();
      this.showHint(WHEEL_HINT);
    }, { capture: true, passive: true });
    this.canvas.addEventListener("touchmove", (event) => {
      if (event.touches.length > 1) event.preventDefault();
      else this.showHint(TOUCH_HINT);
    }, { passive: false });
  }

  showHint(text) {
    this.hint.textContent = text;
    this.hint.hidden = false;
    clearTimeout(this.hintTimer);
    this.hintTimer = setTimeout(() => { this.hint.hidden = true; }, HINT_MS);
  }

  resetCamera() {
    this.controls.target.set(0, 0, 0);
    this.camera.position.copy(START_DIRECTION).multiplyScalar(START_DISTANCE);
    this.camera.lookAt(0, 0, 0);
    this.controls.update();
    this.dirty = true;
  }

  resize() {
    const width = Math.max(1, this.canvasBox.clientWidth);
    const height = Math.max(1, this.canvasBox.clientHeight);
    const ratio = Math.min(window.devicePixelRatio || 1, 2);
    const [w, h] = [Math.round(width * ratio), Math.round(height * ratio)];
    if (w === this.canvas.width && h === this.canvas.height) return; // a new size clears the picture
    this.canvas.width = w;
    this.canvas.height = h;
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    // Drawn again at once (the ResizeObserver runs before the page is painted), so the view never blinks
    // empty when the layout changes (a scroll bar appears, the vote bar opens, the phone turns).
    this.render(this.viewer.renderer);
  }

  setProgress(loaded, total) {
    this.progress.hidden = false;
    const known = total > 0;
    if (known) this.bar.value = Math.min(1, loaded / total);
    else this.bar.removeAttribute("value"); // an indeterminate bar
    this.progressText.textContent = known
      ? `Loading ${Math.floor((100 * loaded) / total)}% · ${formatBytes(loaded)} of ${formatBytes(total)}`
      : `Loading… ${formatBytes(loaded)}`;
  }

  async load(media) {
    this.media = media;
    this.state = "loading";
    this.error = "";
    this.errorBox.hidden = true;
    this.info.textContent = "";
    const expected = (media.meta && media.meta.bytes) || 0;
    this.setProgress(0, expected);
    const onProgress = (event) => this.setProgress(event.loaded, event.total || expected);
    try {
      const object = media.kind === "splat" ? await this.splatLoad(media, onProgress) : await meshLoad(media, onProgress);
      if (this.media !== media) return; // replaced while loading
      this.show(object, media);
      this.state = "loaded";
    } catch (err) {
      if (this.media !== media) return;
      this.state = "failed";
      this.error = `This model could not be displayed: ${err.message || err}`;
      this.errorBox.textContent = this.error;
      this.errorBox.hidden = false;
    } finally {
      if (this.media === media) this.progress.hidden = true;
    }
    this.viewer.sideSettled(this);
  }

  async splatLoad(media, onProgress) {
    const { SparkRenderer, SplatMesh } = await spark();
    if (!this.spark) {
      this.spark = new SparkRenderer({ renderer: this.viewer.renderer, onDirty: () => { this.dirty = true; this.viewer.requestFrame(); } });
      this.scene.add(this.spark);
    }
    const mesh = new SplatMesh({ url: media.url, fileType: media.format, onProgress });
    await mesh.initialized;
    // Splats from 3DGS training use the OpenCV convention (y down, z forward): turn them upright.
    mesh.quaternion.set(1, 0, 0, 0);
    mesh.userData.isSplat = true;
    mesh.userData.splats = mesh.packedSplats ? mesh.packedSplats.numSplats : mesh.splats ? mesh.splats.getNumSplats() : 0;
    return mesh;
  }

  show(object, media) {
    if (this.object) this.scene.remove(this.object);
    // Normalise: centre on the bounding sphere and scale it to radius 1, the same for every model.
    const pivot = new THREE.Group();
    object.updateMatrixWorld(true);
    let box;
    if (media.kind === "splat") {
      object.updateMatrix();
      box = object.getBoundingBox(true).applyMatrix4(object.matrix);
    } else {
      box = new THREE.Box3().setFromObject(object, true);
    }
    const sphere = box.isEmpty() ? new THREE.Sphere(new THREE.Vector3(), 1) : box.getBoundingSphere(new THREE.Sphere());
    const radius = sphere.radius > 0 && Number.isFinite(sphere.radius) ? sphere.radius : 1;
    object.position.sub(sphere.center);
    pivot.add(object);
    pivot.scale.setScalar(1 / radius);
    this.scene.add(pivot);
    this.object = pivot;

    // The server's counts (one parser for every format) are preferred; the loaded object's are the fallback.
    const meta = media.meta || {};
    if (media.kind === "splat") {
      this.counts = { splats: whole(meta.splats) ? meta.splats : object.userData.splats };
      this.info.textContent = `${this.counts.splats.toLocaleString()} splats`;
    } else {
      object.traverse((node) => {
        if (node.isMesh) {
          if (!node.geometry.attributes.normal) node.geometry.computeVertexNormals();
          node.userData.originalMaterial = clayOf(node);
        }
      });
      this.counts = whole(meta.vertices) && whole(meta.faces) ? { vertices: meta.vertices, faces: meta.faces } : geometryCounts(object);
      this.info.textContent = `${this.counts.vertices.toLocaleString()} vertices · ${this.counts.faces.toLocaleString()} faces`;
    }
    this.applyView(this.viewer.view);
    this.dirty = true;
    this.viewer.requestFrame();
  }

  applyView(mode) {
    if (!this.object) return;
    this.object.traverse((node) => {
      if (!node.isMesh || !node.userData.originalMaterial) return;
      node.material = mode === "textured" ? node.userData.originalMaterial : this.materials[mode];
    });
    this.dirty = true;
  }

  render(renderer) {
    const { width, height } = this.canvas;
    const size = renderer.getSize(new THREE.Vector2());
    if (size.x !== width || size.y !== height) renderer.setSize(width, height, false);
    renderer.render(this.scene, this.camera);
    // Copied in the same task as the draw, so the WebGL canvas needs no preserveDrawingBuffer.
    this.context2d.drawImage(renderer.domElement, 0, 0);
    this.dirty = false;
  }

  dispose() {
    clearTimeout(this.hintTimer);
    this.resizeObserver.disconnect();
    this.controls.dispose();
    for (const material of Object.values(this.materials)) material.dispose();
    if (this.object) {
      this.object.traverse((node) => {
        if (node.geometry) node.geometry.dispose();
        if (node.userData.isSplat) node.dispose();
      });
    }
    if (this.spark) this.spark.dispose();
    this.container.replaceChildren();
  }
}

// --- both sides ------------------------------------------------------------------------------------------

export class DualViewer {
  /**
   * containers: {a: Element, b: Element}; onChange(viewer) is called whenever a side finishes loading (or
   * fails) and when the view or link setting changes.
   */
  constructor(containers, { onChange = () => {} } = {}) {
    // One WebGL renderer (one context) draws both sides: one environment map and one compiled shader set for
    // the two, so the lighting is identical by construction and software WebGL does half the work.
    try {
      this.renderer = new THREE.WebGLRenderer({ antialias: true });
    } catch {
      throw new Error("3D models need WebGL 2, which this browser does not offer or has turned off.");
    }
    this.renderer.setPixelRatio(1); // the sides' canvases are already sized in device pixels
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.renderer.toneMapping = THREE.NeutralToneMapping;
    const pmrem = new THREE.PMREMGenerator(this.renderer);
    this.environment = pmrem.fromScene(new RoomEnvironment(), 0.04).texture;
    pmrem.dispose();
    this.linked = true;
    this.view = "textured";
    this.onChange = onChange;
    this.syncing = false;
    this.frame = 0;
    this.sides = {};
    for (const key of ["a", "b"]) this.sides[key] = new Side(key, containers[key], this);
    this.requestFrame();
  }

  get a() { return this.sides.a; }
  get b() { return this.sides.b; }

  /** Both sides have their object on screen. */
  get loaded() { return this.a.state === "loaded" && this.b.state === "loaded"; }

  load(key, media) {
    const side = this.sides[key];
    if (side.media && side.media.url === media.url) return side.loading;
    side.loading = side.load(media);
    return side.loading;
  }

  cameraChanged(from) {
    this.requestFrame();
    const to = from === this.sides.a ? this.sides.b : this.sides.a;
    if (!this.linked || this.syncing || !to) return; // !to: the second side is still being built
    this.copyCamera(from, to);
  }

  copyCamera(from, to) {
    this.syncing = true; // to.controls.update() fires "change" on `to`: this guard stops the echo
    try {
      to.camera.position.copy(from.camera.position);
      to.camera.quaternion.copy(from.camera.quaternion);
      to.camera.zoom = from.camera.zoom;
      to.camera.updateProjectionMatrix();
      to.controls.target.copy(from.controls.target);
      to.controls.update();
      to.dirty = true;
    } finally {
      this.syncing = false;
    }
  }

  setLinked(linked) {
    this.linked = Boolean(linked);
    if (this.linked) this.copyCamera(this.a, this.b); // re-linking snaps B to A's view
    this.requestFrame();
    this.onChange(this);
  }

  setView(mode) {
    if (!VIEW_MODES.includes(mode)) throw new Error(`Unknown view mode ${mode}`);
    this.view = mode;
    for (const side of Object.values(this.sides)) side.applyView(mode);
    this.requestFrame();
    this.onChange(this);
  }

  resetCameras() {
    for (const side of Object.values(this.sides)) side.resetCamera();
    this.requestFrame();
  }

  sideSettled() {
    this.requestFrame();
    this.onChange(this);
  }

  requestFrame() {
    if (this.frame || this.disposed) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      // Only what changed is drawn again (software WebGL is slow); Spark, which sorts splats in a worker,
      // says through onDirty when a splat view needs another frame.
      for (const side of Object.values(this.sides)) if (side.dirty) side.render(this.renderer);
    });
  }

  dispose() {
    this.disposed = true;
    if (this.frame) cancelAnimationFrame(this.frame);
    for (const side of Object.values(this.sides)) side.dispose();
    this.environment.dispose();
    this.renderer.dispose();
  }
}
