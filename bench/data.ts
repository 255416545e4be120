/**
 * Data pipeline throughput: builds a dataset from synthetic raw teacher records of realistic size
 * (default 2M labelled tokens, top-k 20, a Zipf-distributed 50k-token teacher vocabulary, 500-token
 * chat answers) four ways in one run — the previous record-by-record build (format version 1, the
 * reference), the columnar build in one thread and with worker threads (version 1: must be the same
 * bytes as the reference), and the default columnar build (version 2) — then measures the streaming
 * loader producing [16, 128] training batches from version 1 and version 2. Prints one JSON line:
 * labelled tokens/s of each build and the speed-up over the reference (target ≥ 300k/s), bytes per
 * top-k entry (target ≤ 3) and what 8-bit log-probs change, loader tokens/s and its ratio to training
 * throughput (≈ 14,000 tokens/s measured with `npm run bench:train` on the reference machine; target ≥ 50×).
 *
 *   npm run bench:data [-- --tokens 2000000 --k 20 --batches 400 --train-tps 14000 --workers N --no-old --keep]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { buildDataset, buildDatasetParallel } from '../src/dataset/build.js';
import { datasetSource } from '../src/data/loader.js';
import { Rng } from '../src/core/rng.js';
import { IPC_EOS, RawStreamEncoder, type RawRecord, rawSchema, rawShardName } from '../src/schema/raw.js';
import { type ShardBatch, loadShard } from '../src/data/shards.js';
import { readDatasetManifest } from '../src/schema/dataset.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const totalTokens = Number(arg('tokens', '2000000'));
const K = Number(arg('k', '20'));
const nBatches = Number(arg('batches', '400'));
const trainTps = Number(arg('train-tps', '14000'));
const withOld = !args.includes('--no-old');
const workers = args.includes('--workers') ? Number(arg('workers', '2')) : undefined;
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

function sha256s(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.arrow') || f === 'tokenizer.json').sort().map((f) => createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex'));
}

/** Loader tokens/s over nBatches [B, T] batches (after a warm-up). */
function loader(dir: string): { tps: number; openSec: number } {
  const B = 16, T = 128;
  let t = performance.now();
  const factory = datasetSource(dir, { split: 'train', batchSize: B, seqLen: T, seed: 0 });
  const openSec = (performance.now() - t) / 1000;
  const src = factory.open();
  for (let i = 0; i < 20; i++) src.next(); // warm-up (JIT, first window)
  t = performance.now();
  for (let i = 0; i < nBatches; i++) src.next();
  const sec = (performance.now() - t) / 1000;
  return { tps: (nBatches * B * T) / sec, openSec };
}

/** The train split's record batches in order, over all its shards (the same rows in both versions: shards close at other sizes). */
function recordBatches(dir: string): ShardBatch[] {
  const m = readDatasetManifest(dir);
  return m.splits.train.shards.flatMap((sh) => loadShard(dir, sh, m.tokenizer.hash, false, m.tokenizer.vocabSize));
}

/**
 * What 8-bit log-probs change against float16 ones, entry by entry over the same rows (the loader's
 * batches cannot be compared: its shuffle windows follow the shards, which close at other sizes):
 * worst |Δ log-prob|, and the top-k mass (hence the loss's tail 1 − Σp).
 */
function quantization(dir1: string, dir2: string) {
  const v1 = recordBatches(dir1), v2 = recordBatches(dir2);
  let worstLp = 0, worstMass = 0, sumMass = 0, sumRelTail = 0, n = 0;
  for (let b = 0; b < v1.length; b++) {
    const x = v1[b], y = v2[b];
    if (!y || x.rows !== y.rows || x.topOff[x.labOff[x.rows]] !== y.topOff[y.labOff[y.rows]]) throw new Error(`record batch ${b}: the two versions hold other rows`);
    for (let l = 0; l < x.labOff[x.rows]; l++) {
      let m1 = 0, m2 = 0;
      for (let e = x.topOff[l]; e < x.topOff[l + 1]; e++) {
        const a = x.topLogprobs[e], c = y.topLogprobs[e];
        worstLp = Math.max(worstLp, Math.abs(a - c));
        m1 += Math.exp(a); m2 += Math.exp(c);
      }
      worstMass = Math.max(worstMass, Math.abs(m1 - m2));
      sumMass += Math.abs(m1 - m2);
      if (1 - m1 > 1e-6) sumRelTail += Math.abs(m1 - m2) / (1 - m1);
      n++;
    }
  }
  return { positions: n, maxAbsLogprobErr: +worstLp.toFixed(4), maxAbsTailErr: +worstMass.toExponential(2), meanAbsTailErr: +(sumMass / n).toExponential(2), meanRelTailErr: +(sumRelTail / n).toExponential(2) };
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-bench-data-'));
try {
  let t = performance.now();
  const records = writeRaw(path.join(root, 'raw'));
  const rawSec = (performance.now() - t) / 1000;
  const raw = path.join(root, 'raw');
  const common = { from: raw, vocabSize: 8192, valFraction: 0.05, seed: 0 };
  const timed = async <T>(f: () => T | Promise<T>) => { const t0 = performance.now(); const r = await f(); return { r, sec: (performance.now() - t0) / 1000 }; };
  // the previous record-by-record build (format version 1): the reference of the ratio, and of the bytes
  const old = withOld ? await timed(() => buildDataset({ ...common, out: path.join(root, 'old'), formatVersion: 1, engine: 'records' })) : null;
  const one = await timed(() => buildDataset({ ...common, out: path.join(root, 'v1-1t'), formatVersion: 1 }));
  const v1 = await timed(() => buildDatasetParallel({ ...common, out: path.join(root, 'v1'), formatVersion: 1, workers }));
  const v2 = await timed(() => buildDatasetParallel({ ...common, out: path.join(root, 'v2'), workers }));
  const labelled = v2.r.counts.labelled;
  const tps = (sec: number) => Math.round(labelled / sec);
  const sameBytes = sha256s(path.join(root, 'v1')).join() === sha256s(path.join(root, 'v1-1t')).join()
    && (!old || sha256s(path.join(root, 'old')).join() === sha256s(path.join(root, 'v1')).join());

  const l1 = loader(path.join(root, 'v1')), l2 = loader(path.join(root, 'v2'));
  console.log(JSON.stringify({
    bench: 'data', records, labelledTokens: labelled, topK: v2.r.topK, vocabSize: v2.r.vocabSize, rawWriteSec: +rawSec.toFixed(2), workers: workers ?? 'default',
    build: {
      oldRecordsV1: old ? { sec: +old.sec.toFixed(2), labelledPerSec: tps(old.sec) } : null,
      columnsV1OneThread: { sec: +one.sec.toFixed(2), labelledPerSec: tps(one.sec) },
      columnsV1: { sec: +v1.sec.toFixed(2), labelledPerSec: tps(v1.sec) },
      columnsV2: { sec: +v2.sec.toFixed(2), labelledPerSec: tps(v2.sec) },
      speedupOverOld: old ? +(old.sec / v2.sec).toFixed(1) : null,
      v1SameBytesAsOld: sameBytes, target: 300_000, meetsTarget: tps(v2.sec) >= 300_000,
    },
    storage: {
      v1: { bytesPerLabelled: +v1.r.bytesPerLabelled.toFixed(2), bytesPerEntry: +v1.r.bytesPerEntry.toFixed(3), MB: +((v1.r.splits.train.bytes + v1.r.splits.val.bytes) / 1e6).toFixed(1) },
      v2: { bytesPerLabelled: +v2.r.bytesPerLabelled.toFixed(2), bytesPerEntry: +v2.r.bytesPerEntry.toFixed(3), MB: +((v2.r.splits.train.bytes + v2.r.splits.val.bytes) / 1e6).toFixed(1) },
      targetBytesPerEntry: 3, meetsTarget: v2.r.bytesPerEntry <= 3,
      quantization: quantization(path.join(root, 'v1'), path.join(root, 'v2')),
    },
    massKept: +v2.r.massKept.toFixed(4),
    loader: {
      batch: [16, 128], batches: nBatches, v1TokensPerSec: Math.round(l1.tps), v2TokensPerSec: Math.round(l2.tps), v2OverV1: +(l2.tps / l1.tps).toFixed(2),
      verifyOpenSec: { v1: +l1.openSec.toFixed(2), v2: +l2.openSec.toFixed(2) },
      trainTokensPerSec: trainTps, loaderOverTrain: +(l2.tps / trainTps).toFixed(1), target: 50 * trainTps, meetsTarget: l2.tps >= 50 * trainTps,
    },
  }));
} finally {
  if (!args.includes('--keep')) fs.rmSync(root, { recursive: true, force: true });
  else console.error(`kept ${root}`);
}
