/** A `kd dataset build` worker thread (./build-pool.ts): runs ./columnar.ts passes on whole raw shards. */
import { parentPort } from 'node:worker_threads';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { type BuildWorkerRequest, WORKER_READY_ID } from './build-pool.js';
import { type Pass2Result, SplitCache, pass1, pass2, readRawShard } from './columnar.js';

let state: { tokenizer: Tokenizer; cache: SplitCache; seed: number; valFraction: number; version: 1 | 2 } | null = null;

const buffers = (xs: ArrayBufferView[]): ArrayBuffer[] => [...new Set(xs.map((x) => x.buffer as ArrayBuffer))];

parentPort!.on('message', ({ id, req }: { id: number; req: BuildWorkerRequest }) => {
  try {
    if (req.type === 'init') {
      const tokenizer = Tokenizer.fromJSON(req.tokenizer);
      state = { tokenizer, cache: new SplitCache(tokenizer), seed: req.seed, valFraction: req.valFraction, version: req.version };
      parentPort!.postMessage({ id, ok: true, result: null });
    } else if (req.type === 'pass1') {
      const r = pass1(readRawShard(req.file), req.file);
      parentPort!.postMessage({ id, ok: true, result: r }, buffers([r.pool, r.off, r.order, r.cnt, r.qOff, r.qs, r.p]));
    } else {
      if (!state) throw new Error('build worker: pass 2 before init');
      const r: Pass2Result = pass2(readRawShard(req.file), req.file, state.tokenizer, state, state.cache);
      const views: ArrayBufferView[] = [];
      for (const s of Object.values(r.splits)) {
        const b = s.block;
        views.push(s.entropies, s.p, s.one, b.targetFrom, b.idOff, b.ids, b.mask, b.labOff, b.counts, b.topIds, ...[b.lp16, b.best16, b.lp8, b.packed, b.packOff].filter((x): x is NonNullable<typeof x> => !!x));
      }
      parentPort!.postMessage({ id, ok: true, result: r }, buffers(views));
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    parentPort!.postMessage({ id, ok: false, error: { message: err.message, code: err.code } });
  }
});
parentPort!.postMessage({ id: WORKER_READY_ID, ok: true, result: null });
