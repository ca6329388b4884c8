// Proof-of-work solver: find a counter such that SHA-256(token + ":" + counter) starts with `difficulty`
// zero bits. Pure JavaScript on purpose: one crypto.subtle call per attempt costs a promise and a copy, far
// slower than hashing synchronously. The token's full 64-byte blocks are hashed once (the "midstate"); each
// attempt only hashes the last one or two blocks.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const INITIAL = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

// One SHA-256 compression of the 16 words at W[0..15] onto state `from`, written to `to`.
function compress(from, W, to) {
  for (let t = 16; t < 64; t++) {
    const w15 = W[t - 15];
    const w2 = W[t - 2];
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
  }
  let a = from[0], b = from[1], c = from[2], d = from[3], e = from[4], f = from[5], g = from[6], h = from[7];
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[t] + W[t]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  to[0] = (from[0] + a) | 0; to[1] = (from[1] + b) | 0; to[2] = (from[2] + c) | 0; to[3] = (from[3] + d) | 0;
  to[4] = (from[4] + e) | 0; to[5] = (from[5] + f) | 0; to[6] = (from[6] + g) | 0; to[7] = (from[7] + h) | 0;
}

function loadWords(bytes, offset, W) {
  for (let i = 0; i < 16; i++) {
    const j = offset + 4 * i;
    W[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
}

function ascii(text) {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 127) throw new Error("the challenge token must be ASCII");
    bytes[i] = code;
  }
  return bytes;
}

// Hash state after every full block of `prefix`, and the bytes left over.
function midstate(prefix) {
  const state = Int32Array.from(INITIAL);
  const W = new Int32Array(64);
  const full = prefix.length - (prefix.length % 64);
  for (let offset = 0; offset < full; offset += 64) {
    loadWords(prefix, offset, W);
    compress(state, W, state);
  }
  return { state, tail: prefix.subarray(full), length: prefix.length };
}

// SHA-256 of (prefix + suffix) given the prefix's midstate; the digest's words land in `out`.
function finish(mid, suffix, block, W, tmp, out) {
  const tailLength = mid.tail.length;
  const total = tailLength + suffix.length;
  const blocks = total + 9 <= 64 ? 1 : 2;
  block.fill(0);
  block.set(mid.tail, 0);
  block.set(suffix, tailLength);
  block[total] = 0x80;
  const bits = (mid.length + suffix.length) * 8;
  const end = blocks * 64;
  block[end - 4] = bits >>> 24; block[end - 3] = bits >>> 16; block[end - 2] = bits >>> 8; block[end - 1] = bits;
  block[end - 5] = Math.floor(bits / 2 ** 32);
  loadWords(block, 0, W);
  compress(mid.state, W, blocks === 1 ? out : tmp);
  if (blocks === 2) {
    loadWords(block, 64, W);
    compress(tmp, W, out);
  }
}

function leadingZeroBits(words) {
  let bits = 0;
  for (const word of words) {
    const zeros = Math.clz32(word);
    bits += zeros;
    if (zeros < 32) break;
  }
  return bits;
}

function writeDigits(counter, digits) {
  let length = 0;
  let rest = counter;
  do {
    digits[length++] = 48 + (rest % 10);
    rest = Math.floor(rest / 10);
  } while (rest > 0);
  digits.subarray(0, length).reverse();
  return digits.subarray(0, length);
}

// A searcher for one challenge: search(from, step, tries) checks counters from, from + step, ... and
// returns the first that solves it, or null. The token's midstate and all buffers are made once.
export function searcher(token, difficulty) {
  const mid = midstate(ascii(`${token}:`));
  const block = new Uint8Array(128);
  const W = new Int32Array(64);
  const tmp = new Int32Array(8);
  const out = new Int32Array(8);
  const digits = new Uint8Array(20);
  return (from, step, tries) => {
    for (let counter = from, n = 0; n < tries; counter += step, n++) {
      finish(mid, writeDigits(counter, digits), block, W, tmp, out);
      if (leadingZeroBits(out) >= difficulty) return counter;
    }
    return null;
  };
}

// Search counters start, start + step, ... (workers split the space by residue) until one solves it.
export function solve(token, difficulty, start = 0, step = 1) {
  const search = searcher(token, difficulty);
  for (let from = start; ; from += step * 65536) {
    const found = search(from, step, 65536);
    if (found !== null) return found;
  }
}

export function sha256Hex(text) {
  const bytes = new TextEncoder().encode(text);
  const full = bytes.length - (bytes.length % 64);
  const mid = midstate(bytes.subarray(0, full));
  const out = new Int32Array(8);
  finish(mid, bytes.subarray(full), new Uint8Array(128), new Int32Array(64), new Int32Array(8), out);
  return Array.from(out, (w) => (w >>> 0).toString(16).padStart(8, "0")).join("");
}
