/**
 * kd-student.js: run a student written by `kd export` with nothing but @tensorflow/tfjs. The same file
 * works in browsers (a module script; an import map names where "@tensorflow/tfjs" is, as index.html
 * does) and in Node (in a project where @tensorflow/tfjs is installed). The model's files are found by
 * URL relative to this file: manifest.json, model.json, its weight shards and tokenizer.json sit beside it.
 *
 *   import { loadStudent } from './kd-student.js';
 *   const student = await loadStudent();
 *   const { text } = await student.generate('The Congress', { maxTokens: 40, temperature: 0.8, topK: 40, seed: 1 });
 *
 * Text is encoded as kd encodes it: UTF-8 bytes split by greedy longest match over the vocabulary's byte
 * strings (ids 0–255 are the single bytes, so any text encodes). The graph has no KV cache: each step
 * runs the context's last seqLen tokens and draws the next token from the last position's logits.
 */
import * as tf from '@tensorflow/tfjs';

export { tf };

const HERE = new URL('./', import.meta.url);
const utf8 = new TextEncoder();

/** JSON or bytes of one file: fetched over http(s), read from disk in Node for file: URLs. */
async function read(url, as) {
  if (url.protocol === 'file:') {
    if (typeof process === 'undefined' || !process.versions?.node) {
      throw new Error(`kd-student: a browser will not load ${url.href}; serve the folder over http, e.g. kd serve --static DIR`);
    }
    const { readFile } = await import(/* webpackIgnore: true */ /* @vite-ignore */ 'node:fs/promises');
    const b = await readFile(url);
    return as === 'json' ? JSON.parse(b.toString('utf8')) : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`kd-student: GET ${url.href}: HTTP ${res.status}`);
  return as === 'json' ? res.json() : res.arrayBuffer();
}

/** A byte string as a JS string with one char per byte (a Map key). */
function byteString(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

/** kd's tokenizer, from tokenizer.json: {"format": "kd-tokenizer", "version": 1, "tokens": [hex bytes, ...]}. */
export class Tokenizer {
  constructor(json) {
    if (json?.format !== 'kd-tokenizer' || json.version !== 1 || !Array.isArray(json.tokens)) {
      throw new Error('kd-student: tokenizer.json is not a kd tokenizer (format "kd-tokenizer", version 1)');
    }
    this.tokens = json.tokens.map((hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16)));
    this.ids = new Map(this.tokens.map((t, id) => [byteString(t), id]));
    this.maxLength = Math.max(...this.tokens.map((t) => t.length));
    for (let b = 0; b < 256; b++) if (this.ids.get(String.fromCharCode(b)) !== b) throw new Error(`kd-student: token ${b} must be the byte ${b}`);
  }

  get vocabSize() {
    return this.tokens.length;
  }

  /** Token ids of a text: at each position the longest token its bytes start with (one byte at worst). */
  encode(text) {
    const s = byteString(utf8.encode(text));
    const out = [];
    for (let i = 0; i < s.length;) {
      let n = Math.min(this.maxLength, s.length - i);
      while (n > 1 && !this.ids.has(s.slice(i, i + n))) n--;
      out.push(this.ids.get(s.slice(i, i + n)));
      i += n;
    }
    return out;
  }

  decodeBytes(ids) {
    const parts = Array.from(ids, (id) => {
      const t = this.tokens[id];
      if (!t) throw new Error(`kd-student: token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
      return t;
    });
    const out = new Uint8Array(parts.reduce((n, t) => n + t.length, 0));
    parts.reduce((at, t) => (out.set(t, at), at + t.length), 0);
    return out;
  }

  /** Text of the ids; bytes that are not valid UTF-8 (a character cut in two) show as U+FFFD. */
  decode(ids) {
    return new TextDecoder().decode(this.decodeBytes(ids));
  }
}

/** Seeded uniform numbers in [0, 1) (mulberry32): the same seed gives the same tokens on every backend. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The next id: the most likely at temperature 0, else drawn from softmax(logits / temperature) over the topK most likely (all when topK is 0). */
export function sample(logits, { temperature = 1, topK = 0 } = {}, random = Math.random) {
  let ids = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  if (temperature === 0) return ids[0];
  if (topK > 0) ids = ids.slice(0, topK);
  const w = ids.map((i) => Math.exp((logits[i] - logits[ids[0]]) / temperature));
  let u = random() * w.reduce((s, x) => s + x, 0);
  for (let j = 0; j < ids.length; j++) if ((u -= w[j]) < 0) return ids[j];
  return ids[ids.length - 1];
}

/** Lets the page paint between tokens (on the cpu backend a step never leaves the microtask queue). */
const nextTurn = () => (globalThis.scheduler?.yield ? globalThis.scheduler.yield() : new Promise((r) => setTimeout(r, 0)));

function check(ok, message) {
  if (!ok) throw new Error(`kd-student: ${message}`);
}

export class Student {
  constructor(model, tokenizer, manifest, constants) {
    this.model = model;
    this.constants = constants;
    this.tokenizer = tokenizer;
    this.manifest = manifest;
    this.seqLen = manifest.input.maxSeqLen;
    this.vocabSize = manifest.model.vocabSize;
  }

  encode(text) {
    check(this.tokenizer, 'this model has no tokenizer (it was trained on synthetic token ids): pass token ids');
    return this.tokenizer.encode(text);
  }

  /** Logits of the token after `ids` (its last seqLen), a Float32Array [vocabSize]. */
  async logits(ids) {
    check(ids.length > 0, 'the context is empty');
    const ctx = ids.slice(-this.seqLen);
    const last = tf.tidy(() => {
      const logits = this.model.execute({ ids: tf.tensor2d(ctx, [1, ctx.length], 'int32'), ...this.constants }, 'logits');
      return logits.slice([0, ctx.length - 1, 0], [1, 1, -1]).reshape([-1]);
    });
    try {
      return await last.data();
    } finally {
      last.dispose();
    }
  }

  /**
   * Continue `prompt` (text, or token ids) by up to maxTokens tokens. onToken({id, text, index}) is
   * called for each, where text is what it completes (a character split across tokens comes whole).
   * Resolves to {text, ids, tokensPerSecond}.
   */
  async generate(prompt, { maxTokens = 64, temperature = 1, topK = 0, seed, onToken, signal } = {}) {
    check(Number.isInteger(maxTokens) && maxTokens >= 0, `maxTokens must be a whole number ≥ 0, got ${maxTokens}`);
    check(Number.isFinite(temperature) && temperature >= 0, `temperature must be a number ≥ 0, got ${temperature}`);
    check(Number.isInteger(topK) && topK >= 0, `topK must be a whole number ≥ 0 (0: all tokens), got ${topK}`);
    const ids = typeof prompt === 'string' ? this.encode(prompt) : Array.from(prompt);
    check(ids.length > 0, 'the prompt is empty');
    const random = mulberry32(seed ?? Math.floor(Math.random() * 2 ** 32));
    const decoder = new TextDecoder();
    const out = [];
    let text = '';
    const start = performance.now();
    while (out.length < maxTokens && !signal?.aborted) {
      const id = sample(await this.logits(ids), { temperature, topK }, random);
      ids.push(id);
      out.push(id);
      const piece = this.tokenizer ? decoder.decode(this.tokenizer.tokens[id], { stream: true }) : '';
      text += piece;
      onToken?.({ id, text: piece, index: out.length - 1 });
      await nextTurn();
    }
    text += decoder.decode(); // bytes of a character the last token left unfinished: U+FFFD
    return { text, ids: out, tokensPerSecond: out.length / ((performance.now() - start) / 1000) };
  }

  dispose() {
    tf.dispose(Object.values(this.constants));
    this.model.dispose();
  }
}

/**
 * Pick a tfjs backend: `name`, or the best one here: tfjs's choice (webgl where the browser has it), but
 * cpu instead of WebGL drawn in software (SwiftShader, llvmpipe: no GPU), which is ten times slower. Returns its name.
 */
export async function startBackend(name) {
  if (name) check(await tf.setBackend(name), `backend ${name} did not start here`);
  await tf.ready();
  if (!name && tf.getBackend() === 'webgl' && /swiftshader|llvmpipe|software/i.test(webglRenderer())) await tf.setBackend('cpu');
  return tf.getBackend();
}

function webglRenderer() {
  const gl = tf.backend().gpgpu?.gl;
  const info = gl?.getExtension('WEBGL_debug_renderer_info');
  return info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : '';
}

/** Load the export in folder `base` (a URL; default: the folder of this file). */
export async function loadStudent(base = HERE) {
  const dir = new URL(base, HERE);
  if (!dir.pathname.endsWith('/')) dir.pathname += '/';
  const manifest = await read(new URL('manifest.json', dir), 'json');
  check(manifest.format === 'kd-export', `${new URL('manifest.json', dir).href} is not a kd export`);
  const [json, tokenizer] = await Promise.all([
    read(new URL('model.json', dir), 'json'),
    manifest.tokenizer ? read(new URL(manifest.tokenizer, dir), 'json').then((j) => new Tokenizer(j)) : null,
  ]);
  const { paths, weights } = json.weightsManifest[0];
  const weightData = await Promise.all(paths.map((p) => read(new URL(p, dir), 'bytes')));
  const model = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: json.modelTopology, format: json.format, weightSpecs: weights, weightData }));
  return new Student(model, tokenizer, manifest, foldConstants(model, json.modelTopology.node));
}

/**
 * Nodes computed from constants alone (int8 weights × their scales), evaluated once: fed back to the
 * graph with every call, so each step does not dequantize all the weights again (5× faster on cpu).
 */
function foldConstants(model, nodes) {
  const consts = new Set(nodes.filter((n) => n.op === 'Const').map((n) => n.name));
  const names = nodes.filter((n) => n.op !== 'Const' && n.input.length > 0 && n.input.every((i) => consts.has(i))).map((n) => n.name);
  if (names.length === 0) return {};
  const ids = tf.zeros([1, 1], 'int32');
  const values = tf.tidy(() => [model.execute({ ids }, names)].flat());
  ids.dispose();
  return Object.fromEntries(names.map((n, i) => [n, values[i]]));
}
