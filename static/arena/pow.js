// The vote's proof of work: solve the server's challenge in a pool of Web Workers (one per core, at most four,
// each trying its own residue class of counters), kept warm across votes; on the main thread where workers
// are unavailable.
import { sha256Hex, solve } from "./pow-solver.js";

const WORKER_URL = new URL("./pow-worker.js", import.meta.url);
let pool = null;
let jobs = 0;

function workerPool() {
  if (pool === null) {
    const size = Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4));
    try {
      pool = Array.from({ length: size }, () => new Worker(WORKER_URL, { type: "module" }));
    } catch (err) {
      pool = [];  // module workers unsupported: solve on the main thread, it is still quick
    }
  }
  return pool;
}

// Start the workers before the first vote, so their start-up is not part of the vote's wait.
export function warmUp() {
  if (typeof Worker !== "undefined") workerPool();
}

export function solveChallenge(token, difficulty) {
  if (!token || !difficulty) return Promise.resolve(null);
  const workers = typeof Worker === "undefined" ? [] : workerPool();
  if (workers.length === 0) return Promise.resolve(solve(token, difficulty));
  const job = ++jobs;
  return new Promise((resolve) => {
    let finished = false;
    const done = (counter) => {
      finished = true;
      for (const worker of workers) {
        worker.onmessage = null;
        worker.onerror = null;
        worker.postMessage({ job: job + 0.5 });  // stop the others: a job number nobody searches for
      }
      resolve(counter);
    };
    workers.forEach((worker, start) => {
      worker.onmessage = (event) => { if (event.data.job === job) done(event.data.counter); };
      worker.onerror = () => {
        if (finished) return;
        // A worker that cannot start (blocked, or no module workers): drop the pool, solve on this thread.
        for (const other of workers) other.terminate();
        pool = [];
        done(solve(token, difficulty));
      };
      worker.postMessage({ job, token, difficulty, start, step: workers.length });
    });
  });
}

// A coarse, salted-on-the-server device hint for spotting many accounts on one machine. It only ever
// leaves the browser as a hash.
export function deviceFingerprint() {
  const parts = [
    navigator.userAgent,
    navigator.language,
    `${screen.width}x${screen.height}x${screen.colorDepth}`,
    Intl.DateTimeFormat().resolvedOptions().timeZone,
    navigator.hardwareConcurrency,
    window.devicePixelRatio,
  ];
  return sha256Hex(parts.join("|"));
}
