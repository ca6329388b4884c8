// Web Worker: searches one residue class of counters for the current challenge, off the main thread.
// It works in slices and yields between them, so a newer job (or a stop) is seen within a few milliseconds.
import { searcher } from "./pow-solver.js";

const SLICE = 8192;
let current = 0;
const channel = new MessageChannel();
const yieldNow = () => new Promise((resolve) => { channel.port1.onmessage = resolve; channel.port2.postMessage(0); });

self.onmessage = async (event) => {
  const { job, token, difficulty, start, step } = event.data;
  current = job;
  if (!token) return;  // a stop: only bumps `current`
  const search = searcher(token, difficulty);
  for (let from = start; current === job; from += step * SLICE) {
    const counter = search(from, step, SLICE);
    if (counter !== null) {
      self.postMessage({ job, counter });
      return;
    }
    await yieldNow();
  }
};
