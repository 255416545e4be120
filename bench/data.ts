/**
 * Data pipeline throughput: builds a dataset from synthetic raw teacher records of realistic size
 * (default 2M labelled tokens, top-k 20, a Zipf-distributed 50k-token teacher vocabulary, 500-token
 * chat answers), then measures the streaming loader producing [16, 128] training batches. Prints one
 * JSON line: build time, bytes per labelled token (target ≤ 6·k + 16), loader tokens/s and its ratio
 * to training throughput (≈ 14,000 tokens/s measured with `npm run bench:train` on the reference machine; target ≥ 50×).
 *
 *   npm run bench:data [-- --tokens 2000000 --k 20 --batches 400 --train-tps 14000 --keep]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDataset } from '../src/dataset/build.js';
import { datasetSource } from '../src/data/loader.js';
import { Rng } from '../src/core/rng.js';
import { IPC_EOS, RawStreamEncoder, type RawRecord, rawSchema, rawShardName } from '../src/schema/raw.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const totalTokens = Number(arg('tokens', '2000000'));
const K = Number(arg('k', '20'));
const nBatches = Number(arg('batches', '400'));
const trainTps = Number(arg('train-tps', '14000'));
const answer = 500;
const perShard = 200;

/** A synthetic teacher vocabulary: pronounceable pieces, some with a leading space, Zipf-ranked. */
function teacherVocab(n: number, rng: Rng): Uint8Array[] {
  const c = 'bcdfghjklmnprstvwz', v = 'aeiou';
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  while (out.length < n) {
    let s = rng.next() < 0.7 ? ' ' : '';
    const syl = 1 + rng.int(3);
    for (let i = 0; i < syl; i++) s += c[rng.int(c.length)] + v[rng.int(v.length)];
    if (!seen.has(s)) { seen.add(s); out.push(Buffer.from(s)); }
  }
  return out;
}

function zipfSampler(n: number, rng: Rng): () => number {
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) cdf[i] = acc += 1 / (i + 2);
  return () => {
    const u = rng.next() * acc;
    let lo = 0, hi = n - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] < u) lo = mid + 1; else hi = mid; }
    return lo;
  };
}

function writeRaw(dir: string): number {
  const rng = new Rng(42);
  const vocab = teacherVocab(50_000, rng);
  const strs = vocab.map((b) => Buffer.from(b).toString('utf8'));
  const draw = zipfSampler(vocab.length, rng);
  const records = Math.ceil(totalTokens / answer / perShard) * perShard;
  fs.mkdirSync(dir, { recursive: true });
  // Arrow's row builder makes raw shards slowly (~4 min for 2M tokens × 20 alternatives), so one
  // shard is generated and copied: input ids repeat, which changes nothing for throughput.
  const shards = Math.ceil(records / perShard);
  const batch: RawRecord[] = [];
  for (let r = 0; r < Math.min(records, perShard); r++) {
    const rec: RawRecord = {
      input_id: `in-${r}`, request_hash: `h${r}`, mode: 'chat', choice_index: 0, chunk_index: 0, chunk_count: 1, chunk_start: null, score_from: null,
      tokens: [], token_bytes: [], token_logprobs: [], top_ids: null, top_tokens: [], top_bytes: [], top_logprobs: [], text_offsets: null,
      finish_reason: 'stop', prompt_tokens: 30, completion_tokens: answer, cached_tokens: null, model: 'synthetic-teacher', system_fingerprint: null,
      latency_ms: 1, attempts: 1, completed_at: 0, prompt: `system: You are helpful.\nuser: Tell me about topic ${r}.\n`,
    };
    for (let p = 0; p < answer; p++) {
      const alts = new Set<number>();
      while (alts.size < K) alts.add(draw());
      const ids = [...alts];
      const logits = ids.map(() => rng.normal() * 2);
      const m = Math.max(...logits);
      const lse = m + Math.log(logits.reduce((a, x) => a + Math.exp(x - m), 0)) + 0.05;
      const order = ids.map((id, j) => ({ id, lp: logits[j] - lse })).sort((a, b) => b.lp - a.lp);
      rec.tokens.push(strs[order[0].id]);
      rec.token_bytes.push(vocab[order[0].id]);
      rec.token_logprobs.push(order[0].lp);
      rec.top_tokens.push(order.map((o) => strs[o.id]));
      rec.top_bytes.push(order.map((o) => vocab[o.id]));
      rec.top_logprobs.push(order.map((o) => o.lp));
    }
    batch.push(rec);
  }
  const e = new RawStreamEncoder(rawSchema());
  const bytes = Buffer.concat([e.start(), e.batch(batch), IPC_EOS]);
  for (let s = 0; s < shards; s++) fs.writeFileSync(path.join(dir, rawShardName(s + 1)), bytes);
  return records;
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-bench-data-'));
try {
  let t = performance.now();
  const records = writeRaw(path.join(root, 'raw'));
  const rawSec = (performance.now() - t) / 1000;
  t = performance.now();
  const build = buildDataset({ from: path.join(root, 'raw'), out: path.join(root, 'ds'), vocabSize: 8192, valFraction: 0.05, seed: 0 });
  const buildSec = (performance.now() - t) / 1000;

  const B = 16, T = 128;
  t = performance.now();
  const factory = datasetSource(path.join(root, 'ds'), { split: 'train', batchSize: B, seqLen: T, seed: 0 });
  const openSec = (performance.now() - t) / 1000;
  const src = factory.open();
  for (let i = 0; i < 20; i++) src.next(); // warm-up (JIT, first window)
  t = performance.now();
  for (let i = 0; i < nBatches; i++) src.next();
  const sec = (performance.now() - t) / 1000;
  const tps = (nBatches * B * T) / sec;
  console.log(JSON.stringify({
    bench: 'data', records, labelledTokens: build.splits.train.labelled + build.splits.val.labelled, topK: build.topK,
    rawWriteSec: +rawSec.toFixed(2), buildSec: +buildSec.toFixed(2),
    bytesPerLabelledToken: +build.bytesPerLabelled.toFixed(2), targetBytesPerLabelledToken: build.targetBytesPerLabelled,
    datasetMB: +((build.splits.train.bytes + build.splits.val.bytes) / 1e6).toFixed(1), massKept: +build.massKept.toFixed(4),
    verifyOpenSec: +openSec.toFixed(2), batch: [B, T], loaderBatches: nBatches, loaderTokensPerSec: Math.round(tps),
    trainTokensPerSec: trainTps, loaderOverTrain: +(tps / trainTps).toFixed(1), target: 50 * trainTps, meetsTarget: tps >= 50 * trainTps,
  }));
} finally {
  if (!args.includes('--keep')) fs.rmSync(root, { recursive: true, force: true });
  else console.error(`kept ${root}`);
}
