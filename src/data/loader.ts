/**
 * The streaming reader that feeds `kd train --data DIR`: shard by shard, record batch by record
 * batch, it packs sequences back to back into [B, T] batches of the trainer's {@link Batch} shape.
 *
 * Order (deterministic for a seed): each epoch permutes the shards and, inside each, their record
 * batches; consecutive groups of `shuffleWindow` record batches form a window whose sequences are
 * permuted again — a seeded shuffle buffer that resets at window edges. Only the window's shards
 * (a few, each bounded by --shard-mb) are in memory, never the whole dataset.
 *
 * Cursor: {epoch, window, seq, offset} = the next position to emit (sequence `seq` of the window's
 * permuted order, token `offset` inside it). Everything else is recomputed from the seed, so the
 * cursor is tiny JSON and `open(cursor)` continues at exactly the next batch.
 *
 * Packing: rows are consecutive T-position slices of one stream of sequences; a long sequence
 * spans rows (windows of T), short ones share a row. Attention DOES cross sequence boundaries
 * inside a row (as in nanoGPT/GPT-2 pre-training): the student has no segment mask, padding would
 * waste ~half the compute on short chat answers, and the cost is only some irrelevant context.
 * No loss crosses a boundary: a sequence's last position has no target and no soft label, and a
 * new sequence's first positions are its prompt/context (mask 0). Targets and labels are stored
 * per position, so a sequence cut at a row edge keeps its exact next-token targets.
 */
import { KdError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { ShardInfo, Split } from '../schema/dataset.js';
import type { Batch, BatchSource, BatchSourceFactory } from './batch.js';
import { type OpenDataset, openDataset, verifySplit } from './dataset.js';
import { type ShardBatch, loadShard } from './shards.js';
import { LOGPROB_SENTINEL } from '../core/logprob.js';

export interface LoaderOptions {
  split: Split;
  batchSize: number;
  seqLen: number;
  seed: number;
  /** record batches per shuffle window (default 8) */
  shuffleWindow?: number;
  /** check every shard's sha256 when the factory is created (default true) */
  verify?: boolean;
}

export interface DatasetCursor {
  epoch: number;
  window: number;
  seq: number;
  offset: number;
}

/** Log-prob written into unused top-k slots: the kernels' "not a label" sentinel. */
export const PAD_LOGPROB = LOGPROB_SENTINEL;

interface SeqRef { b: ShardBatch; row: number }

function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]; p[i] = p[j]; p[j] = t;
  }
  return p;
}

function checkCursor(c: unknown): DatasetCursor {
  const o = c as Partial<DatasetCursor> | null;
  const ok = o && typeof o === 'object' && ['epoch', 'window', 'seq', 'offset'].every((k) => Number.isInteger((o as Record<string, unknown>)[k]) && ((o as Record<string, number>)[k] >= 0));
  if (!ok) throw new KdError('bad-cursor', `data cursor ${JSON.stringify(c)} is not a dataset cursor {epoch, window, seq, offset}; was the checkpoint trained on other data?`);
  return o as DatasetCursor;
}

/** A BatchSourceFactory over one split of a built dataset. */
export function datasetSource(dirOrDs: string | OpenDataset, o: LoaderOptions): BatchSourceFactory {
  const ds = typeof dirOrDs === 'string' ? openDataset(dirOrDs) : dirOrDs;
  const stats = ds.manifest.splits[o.split];
  const shards: ShardInfo[] = stats.shards;
  if (stats.tokens === 0 || shards.length === 0) throw new KdError('dataset-empty', `${ds.dir}: the ${o.split} split is empty`);
  if (o.verify ?? true) verifySplit(ds, o.split);
  const W = o.shuffleWindow ?? 8;
  const { batchSize: B, seqLen: T } = o;
  const K = Math.max(1, ds.manifest.topK);
  const root = new Rng(o.seed);
  const hash = ds.manifest.tokenizer.hash;

  // the shards of the current window stay loaded; older ones are dropped (sha256 was checked above)
  const loaded = new Map<number, ShardBatch[]>();
  const shard = (i: number): ShardBatch[] => {
    let s = loaded.get(i);
    if (!s) {
      s = loadShard(ds.dir, shards[i], hash, false, ds.manifest.tokenizer.vocabSize);
      loaded.set(i, s);
      while (loaded.size > 4) loaded.delete(loaded.keys().next().value!);
    }
    return s;
  };

  let orderEpoch = -1;
  let order: [number, number][] = [];
  const epochOrder = (epoch: number): [number, number][] => {
    if (epoch !== orderEpoch) {
      const r = root.fork(2 * epoch);
      order = [];
      for (const si of permutation(shards.length, r)) for (const bi of permutation(shards[si].batches, r)) order.push([si, bi]);
      orderEpoch = epoch;
    }
    return order;
  };
  const windowSeqs = (epoch: number, w: number): SeqRef[] => {
    const items = epochOrder(epoch).slice(w * W, (w + 1) * W);
    const seqs: SeqRef[] = [];
    for (const [si, bi] of items) {
      const b = shard(si)[bi];
      for (let row = 0; row < b.rows; row++) seqs.push({ b, row });
    }
    const p = permutation(seqs.length, root.fork(2 * epoch + 1).fork(w));
    return Array.from(p, (i) => seqs[i]);
  };
  const windowsPerEpoch = Math.ceil(shards.reduce((s, x) => s + x.batches, 0) / W);

  return {
    describe: () => ({ kind: 'dataset', dir: ds.dir, split: o.split, tokenizer: hash, batchSize: B, seqLen: T, topK: K, seed: o.seed, shuffleWindow: W }),
    open(cursor?: unknown): BatchSource {
      const c: DatasetCursor = cursor === undefined ? { epoch: 0, window: 0, seq: 0, offset: 0 } : { ...checkCursor(cursor) };
      const nWin = windowsPerEpoch;
      if (c.window >= nWin) throw new KdError('bad-cursor', `data cursor window ${c.window} is past this dataset's ${nWin} windows; was the checkpoint trained on other data?`);
      let seqs = windowSeqs(c.epoch, c.window);
      if (c.seq >= seqs.length) throw new KdError('bad-cursor', `data cursor sequence ${c.seq} is past window ${c.window}'s ${seqs.length}; was the checkpoint trained on other data?`);
      // label index of the current sequence at `offset`: count the masked positions before it
      const labelAt = (ref: SeqRef, offset: number): number => {
        let j = ref.b.labOff[ref.row];
        const start = ref.b.idOff[ref.row];
        for (let p = 0; p < offset; p++) j += ref.b.mask[start + p];
        return j;
      };
      let label = labelAt(seqs[c.seq], c.offset);

      const advance = () => {
        c.seq++;
        c.offset = 0;
        if (c.seq === seqs.length) {
          c.seq = 0;
          c.window++;
          if (c.window === nWin) { c.window = 0; c.epoch++; }
          seqs = windowSeqs(c.epoch, c.window);
        }
        label = seqs[c.seq].b.labOff[seqs[c.seq].row];
      };

      const next = (): Batch => {
        const N = B * T;
        const batch: Batch = {
          B, T, K, inputIds: new Int32Array(N), topIds: new Int32Array(N * K), topLogprobs: new Float32Array(N * K).fill(PAD_LOGPROB),
          mask: new Float32Array(N), targets: new Int32Array(N),
        };
        let n = 0;
        while (n < N) {
          const { b, row } = seqs[c.seq];
          const start = b.idOff[row], L = b.idOff[row + 1] - start, tf = b.targetFrom[row];
          const take = Math.min(L - c.offset, N - n);
          for (let p = c.offset; p < c.offset + take; p++, n++) {
            const at = start + p;
            batch.inputIds[n] = b.ids[at];
            batch.targets[n] = p >= tf && p < L - 1 ? b.ids[at + 1] : -1;
            if (b.mask[at]) {
              batch.mask[n] = 1;
              const lo = b.topOff[label], cnt = Math.min(b.topOff[label + 1] - lo, K);
              for (let k = 0; k < cnt; k++) {
                batch.topIds[n * K + k] = b.topIds[lo + k];
                batch.topLogprobs[n * K + k] = b.topLogprobs[lo + k];
              }
              label++;
            }
          }
          c.offset += take;
          if (c.offset === L) advance();
        }
        return batch;
      };
      return { next, cursor: () => ({ ...c }) };
    },
  };
}
