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
 * strings (ids 0–255 are the single bytes, so any text encodes).
 *
 * generate() decodes with a KV cache (student.decoder(), the same as kd's src/model/kv.ts): the prompt
 * runs once, then each step runs only the new token against the keys and values kept for the tokens
 * before it, so a token costs about the same at context 32 as at 500. It uses the graph's own weights
 * (int8 ones dequantized once at load) in plain tfjs ops. Past seqLen tokens the positions shift, so each
 * step runs the last seqLen tokens again, as the graph would. logits(ids) runs the graph itself (no cache).
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

/** Additive mask [t, L + t] for t new queries after L cached tokens: query i sees keys j ≤ L + i. */
function offsetCausalMask(t, L) {
  const m = new Float32Array(t * (L + t));
  for (let i = 0; i < t; i++) for (let j = L + i + 1; j < L + t; j++) m[i * (L + t) + j] = -1e9;
  return tf.tensor2d(m, [t, L + t]);
}

/**
 * Token-by-token decoding of one sequence with a KV cache. `await next(ids)` appends ids (the prompt,
 * then one token at a time) and resolves to the logits of the token after them, a Float32Array
 * [vocabSize]: the same values logits(all ids so far) gives, at the cost of the new tokens only.
 * Call dispose() when done (it frees the cache's tensors).
 */
export class Decoder {
  constructor(student) {
    this.student = student;
    this.cache = null; // {length, keys: [H, L, hd] per block, values: the same}
    this.context = []; // the last seqLen ids, to run again once the context is longer than seqLen
  }

  /** tokens held in the cache */
  get length() {
    return this.cache?.length ?? 0;
  }

  async next(ids) {
    check(ids.length > 0, 'the context is empty');
    const L = this.student.seqLen;
    this.context = this.context.concat(Array.from(ids)).slice(-L);
    let fresh = Array.from(ids);
    if (this.length + fresh.length > L) {
      this.freeCache();
      fresh = this.context;
    }
    const { logits, cache } = this.student.extend(this.cache, fresh);
    this.freeCache();
    this.cache = cache;
    try {
      return await logits.data();
    } finally {
      logits.dispose();
    }
  }

  freeCache() {
    if (this.cache) tf.dispose([...this.cache.keys, ...this.cache.values]);
    this.cache = null;
  }

  dispose() {
    this.freeCache();
    this.context = [];
  }
}

export class Student {
  constructor(model, tokenizer, manifest, constants) {
    this.model = model;
    this.constants = constants;
    this.tokenizer = tokenizer;
    this.manifest = manifest;
    this.config = manifest.model;
    this.seqLen = manifest.input.maxSeqLen;
    this.vocabSize = manifest.model.vocabSize;
  }

  /** A graph weight by node name: an int8 one as dequantized once at load (constants), else the Const itself. */
  weight(name) {
    const t = this.constants[name] ?? this.model.weights[name]?.[0];
    check(t, `the graph has no weight "${name}" (was it written by kd export?)`);
    return t;
  }

  /** A new KV-cached decoder (see Decoder). */
  decoder() {
    return new Decoder(this);
  }

  /**
   * The graph's forward pass on `ids` (positions cache.length …) against the cached keys and values of
   * the tokens before them. Returns the logits after the last id (a tensor [vocabSize]) and the new cache;
   * the old cache is left as it was.
   */
  extend(cache, ids) {
    const c = this.config, d = c.dModel, t = ids.length, L = cache?.length ?? 0;
    check(L + t <= this.seqLen, `a cache of ${L} tokens plus ${t} new ones exceeds the model's context of ${this.seqLen}`);
    const w = (n) => this.weight(n);
    const layerNorm = (x, p) => { // as the graph: (x − μ)·rsqrt(σ² + ε)·g + b
      const mu = tf.mean(x, -1, true);
      const v = tf.mean(tf.squaredDifference(x, mu), -1, true);
      return tf.add(tf.mul(tf.mul(tf.sub(x, mu), tf.rsqrt(tf.add(v, c.lnEps))), w(`${p}.g`)), w(`${p}.b`));
    };
    const out = tf.tidy(() => {
      let x = tf.add(tf.gather(w('wte'), tf.tensor1d(ids, 'int32')), tf.slice(w('wpe'), [L, 0], [t, d])); // [t, d]
      const mask = t > 1 ? offsetCausalMask(t, L) : null; // one new token sees everything
      const keys = [], values = [];
      for (let i = 0; i < c.nLayers; i++) {
        const H = c.layers?.[i]?.nHeads ?? c.nHeads, hd = c.headDim ?? d / c.nHeads;
        const h = layerNorm(x, `h${i}.ln1`);
        const heads = (nm) => tf.transpose(tf.reshape(tf.matMul(h, w(`h${i}.attn.${nm}`)), [t, H, hd]), [1, 0, 2]); // [H, t, hd]
        const q = heads('q');
        const k = cache ? tf.concat([cache.keys[i], heads('k')], 1) : heads('k'); // [H, L + t, hd]
        const v = cache ? tf.concat([cache.values[i], heads('v')], 1) : heads('v');
        keys.push(k);
        values.push(v);
        let scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)); // [H, t, L + t]
        if (mask) scores = tf.add(scores, mask);
        const y = tf.matMul(tf.softmax(scores), v); // [H, t, hd]
        x = tf.add(x, tf.matMul(tf.reshape(tf.transpose(y, [1, 0, 2]), [t, H * hd]), w(`h${i}.attn.proj`)));
        const u = tf.matMul(layerNorm(x, `h${i}.ln2`), w(`h${i}.mlp.fc`));
        x = tf.add(x, tf.matMul(tf.mul(tf.mul(u, 0.5), tf.add(tf.erf(tf.mul(u, Math.SQRT1_2)), 1)), w(`h${i}.mlp.out`)));
      }
      const last = layerNorm(tf.slice(x, [t - 1, 0], [1, d]), 'lnf');
      return { logits: tf.reshape(tf.matMul(last, w('wte'), false, true), [-1]), keys, values };
    });
    return { logits: out.logits, cache: { length: L + t, keys: out.keys, values: out.values } };
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
    const kv = this.decoder();
    try {
      let fresh = ids;
      while (out.length < maxTokens && !signal?.aborted) {
        const id = sample(await kv.next(fresh), { temperature, topK }, random);
        fresh = [id];
        out.push(id);
        const piece = this.tokenizer ? decoder.decode(this.tokenizer.tokens[id], { stream: true }) : '';
        text += piece;
        onToken?.({ id, text: piece, index: out.length - 1 });
        await nextTurn();
      }
    } finally {
      kv.dispose();
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
