/** `kd train` behind the CLI: choose the data source, show progress, print the summary. */
import os from 'node:os';
import { initBackend } from '../backend/index.js';
import type { ResolvedTrain } from '../cli/train.js';
import { KdError } from '../errors.js';
import { formatDuration, startProgress } from '../progress.js';
import { datasetSource } from '../dataset/loader.js';
import { isDatasetDir, openDataset } from '../dataset/open.js';
import type { ModelConfig } from '../model/config.js';
import type { BatchSourceFactory } from './batch.js';
import { syntheticTeacher } from './synthetic.js';
import { type TrainSummary, train } from './trainer.js';

export interface TrainData {
  train: BatchSourceFactory;
  val?: BatchSourceFactory;
  /** the model config with the dataset's vocabulary size */
  model: ModelConfig;
  /** the dataset's tokenizer (JSON), embedded into checkpoints */
  tokenizer?: unknown;
}

/**
 * `--data synthetic`, or a dataset directory: its train split for training, its val split (when not
 * empty) for validation, batches of the train config's size, the model's vocabulary from the
 * dataset's tokenizer.
 */
export function openData(r: ResolvedTrain): TrainData {
  if (r.data === 'synthetic') {
    const o = { vocabSize: r.model.vocabSize, seqLen: r.config.seqLen, batchSize: r.config.batchSize, topK: r.topK, seed: r.config.seed };
    return { train: syntheticTeacher(o), val: syntheticTeacher({ ...o, split: 'val' }), model: r.model };
  }
  if (!isDatasetDir(r.data)) throw new KdError('bad-data', `--data ${r.data}: not a kd dataset directory (no manifest.json; use "synthetic", or build one with kd dataset build)`);
  const ds = openDataset(r.data);
  const V = ds.tokenizer.vocabSize;
  if (r.vocabSizeGiven !== undefined && r.vocabSizeGiven !== V) {
    throw new KdError('bad-config', `--vocab-size ${r.vocabSizeGiven} does not match ${r.data}'s tokenizer (${V} ids); drop --vocab-size, or rebuild the dataset with --vocab-size ${r.vocabSizeGiven}`);
  }
  const o = { batchSize: r.config.batchSize, seqLen: r.config.seqLen, seed: r.config.seed };
  const hasVal = ds.manifest.splits.val.tokens > 0;
  return {
    train: datasetSource(ds, { ...o, split: 'train' }),
    val: hasVal ? datasetSource(ds, { ...o, split: 'val' }) : undefined,
    model: { ...r.model, vocabSize: V },
    tokenizer: ds.tokenizer.toJSON(),
  };
}

/**
 * Workers by default: one per core (at most 8, at most one per sequence of a batch) on wasm and cpu,
 * whose kernels use one thread each; tfjs-node's kernels are multi-threaded already.
 */
export function defaultWorkers(backend: string, batchSize: number): number {
  if (backend !== 'wasm' && backend !== 'cpu') return 1;
  return Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8, batchSize));
}

export async function runTrain(r: ResolvedTrain, io: { backend?: string; json: boolean }): Promise<TrainSummary> {
  const be = await initBackend({ backend: io.backend });
  const workers = r.workers ?? defaultWorkers(be.backend, r.config.batchSize);
  const data = openData(r);
  const model = data.model;
  const out = (s: string) => process.stdout.write(s + '\n');
  if (!io.json) out(`kd train: ${model.nLayers}×${model.dModel} student, vocab ${model.vocabSize}, ${r.config.steps} steps on ${be.backend} × ${workers} worker${workers > 1 ? 's' : ''} → ${r.out}`);
  const bar = startProgress(r.config.steps, 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta}', !io.json && Boolean(process.stderr.isTTY));
  const stop = new AbortController();
  const onSig = () => stop.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    const s = await train({
      model, config: r.config, data: data.train, val: data.val, outDir: r.out, resume: r.resume, signal: stop.signal, tokenizer: data.tokenizer,
      workers, backend: be.backend,
      meta: { backend: be.backend },
      onStep: (p) => bar.update(p.step, { loss: p.loss.toFixed(4), tps: Math.round(p.tokensPerSec), eta: formatDuration(p.etaSec) }),
      onLog: (l) => {
        if (io.json) out(JSON.stringify({ event: 'log', ...l }));
        else if (l.valLoss !== undefined) process.stderr.write(`\nstep ${l.step}: val loss ${l.valLoss.toFixed(4)}\n`);
      },
    });
    bar.stop();
    if (io.json) out(JSON.stringify({ event: 'summary', ...s, backend: be.backend, interrupted: stop.signal.aborted }));
    else {
      out(`${stop.signal.aborted ? 'interrupted at' : 'done:'} step ${s.steps}, loss ${s.loss.toFixed(4)}${s.valLoss !== undefined ? `, val loss ${s.valLoss.toFixed(4)}` : ''}`);
      out(`${Math.round(s.tokensPerSec)} tokens/s, ${s.msPerStep.toFixed(0)} ms/step, ${(s.flops / 1e9).toFixed(1)} GFLOP/s, ${s.params.toLocaleString('en-US')} parameters`);
      out(`checkpoint: ${s.checkpoint}${stop.signal.aborted ? ' (continue with --resume)' : ''}`);
    }
    return s;
  } finally {
    bar.stop();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
