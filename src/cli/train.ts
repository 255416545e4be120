/** `kd train`: flags → resolveTrainArgs → train(), with progress on stderr and the summary on stdout. */
import fs from 'node:fs';
import path from 'node:path';
import { type ResolvedTrain, TRAIN_OPTIONS, checkInitFrom, resolveTrainArgs } from '../train/options.js';
import { specCommand } from './command.js';
import { defaultWorkers } from '../train/config.js';
import type { TrainSummary } from '../train/trainer.js';
import { formatDuration, startProgress } from '../core/progress.js';

export const trainCommand = specCommand({
  command: 'train',
  describe: 'Train a student on the teacher\'s soft labels (KD loss × T², AdamW, checkpoints, exact resume)',
  options: TRAIN_OPTIONS,
  examples: [
    ['$0 train --data synthetic --out checkpoints/try --steps 200', 'train the reference student on the built-in synthetic teacher'],
    ['$0 train --data corpus:sotu --tokenizer tok.json --alpha 1 --out checkpoints/lm', 'plain next-token training on the State of the Union corpus'],
    ['$0 train --data datasets/round2 --init-from checkpoints/round1 --out checkpoints/round2', 'go on from a student on data built with kd dataset build --tokenizer checkpoints/round1'],
  ],
  handler: async (argv) => {
    const r = resolveTrainArgs(argv);
    await runTrain(r, { backend: argv.backend, json: Boolean(argv.json) });
  },
});

/** The train bar; {etaText}, not {eta}, which is cli-progress's own ETA in bare seconds and would win over ours. */
export const TRAIN_BAR_FORMAT = 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {etaText}';

export async function runTrain(r: ResolvedTrain, io: { backend?: string; json: boolean }): Promise<TrainSummary> {
  const [{ initBackend }, { train }, { trainData }] = await Promise.all([import('../backend/index.js'), import('../train/trainer.js'), import('../train/data.js')]);
  const be = await initBackend({ backend: io.backend });
  const workers = r.workers ?? defaultWorkers(be.backend, r.config.batchSize);
  const data = trainData(r);
  const init = r.initFrom ? (await import('../model/load.js')).loadModel(r.initFrom) : undefined;
  const start = await startingPoint(init, r);
  // a run started with --init-from has the architecture of that checkpoint (not the flags'): so does its --resume
  const model = init ? checkInitFrom(init, data, r) : start?.initFrom ? checkInitFrom({ model: { config: start.config }, file: start.file, tokenizer: undefined }, data, r) : data.model;
  // a magnitude-pruned start (--init-from a kd prune output, or --resume of a run that began from one) keeps its zeros
  const pruned = start && (await import('../compress/masks.js')).keptPruning(start.header.meta, start.weights, start.config);
  if (pruned && !io.json) process.stderr.write(`kd train: ${start!.file} is magnitude-pruned: its ${pruned.zeros.toLocaleString('en-US')} zero weights stay zero\n`);
  const out = (s: string) => process.stdout.write(s + '\n');
  if (data.trainLabelled === 0 && r.config.loss.alpha < 1) {
    // not an error (hard labels still train), but a KD run with nothing to distil is almost always a mistake
    process.stderr.write(`kd train: warning: ${r.data} has no soft labels (0 labelled positions: collected with --top-k 0, or from responses without logprobs): this trains on the hard targets only\n`);
  }
  if (!io.json) out(`kd train: ${model.nLayers}×${model.dModel} student, vocab ${model.vocabSize}, ${r.config.steps} steps on ${be.backend} × ${workers} worker${workers > 1 ? 's' : ''} → ${r.out}`);
  const bar = startProgress(r.config.steps, TRAIN_BAR_FORMAT, !io.json && Boolean(process.stderr.isTTY));
  const stop = new AbortController();
  const onSig = () => stop.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    const s = await train({
      model, config: r.config, data: data.train, val: data.val, outDir: r.out, resume: r.resume, resumeCheckpoint: start?.checkpoint, signal: stop.signal,
      workers, backend: be.backend, tokenizer: data.tokenizer?.toJSON(), initFrom: init?.model, masks: pruned?.masks,
      meta: { backend: be.backend, ...(start?.initFrom ? { initFrom: start.initFrom } : {}), ...(pruned ? { compress: pruned.history } : {}) },
      onStep: (p) => bar.update(p.step, { loss: p.loss.toFixed(4), tps: Math.round(p.tokensPerSec), etaText: formatDuration(p.etaSec) }),
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
    if (stop.signal.aborted) process.exitCode = 130; // interrupted: a checkpoint was written, but the run is not complete
    return s;
  } finally {
    bar.stop();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}

/** What a run starts from: the --init-from checkpoint, or the run's own checkpoint on --resume. */
interface StartingPoint {
  header: import('../schema/checkpoint.js').CheckpointHeader;
  file: string;
  config: import('../model/config.js').ModelConfig;
  /** the checkpoint the run was initialised from (--init-from now, or when the resumed run began) */
  initFrom?: string;
  weights: () => Map<string, Float32Array>;
  /** the run's own checkpoint, read (on --resume), for train() not to read it again */
  checkpoint?: ReturnType<typeof import('../schema/checkpoint.js').loadCheckpoint>;
}

async function startingPoint(init: import('../model/load.js').LoadedModel | undefined, r: ResolvedTrain): Promise<StartingPoint | undefined> {
  if (init) {
    return { header: init.header, file: init.file, config: init.model.config, initFrom: init.file, weights: () => new Map([...init.model.params].map(([n, v]) => [n, v.dataSync() as Float32Array])) };
  }
  const { CHECKPOINT_FILE, loadCheckpoint } = await import('../schema/checkpoint.js');
  const file = path.join(r.out, CHECKPOINT_FILE);
  if (!r.resume || !fs.existsSync(file)) return undefined;
  const ck = loadCheckpoint(file);
  const { modelConfigOf } = await import('../model/load.js');
  const initFrom = typeof ck.header.meta?.initFrom === 'string' ? ck.header.meta.initFrom : undefined;
  return {
    header: ck.header, file: ck.file, config: modelConfigOf(ck.header, ck.file), ...(initFrom ? { initFrom } : {}), checkpoint: ck,
    weights: () => new Map([...ck.arrays.values()].filter((a) => a.data instanceof Float32Array).map((a) => [a.name, a.data as Float32Array])),
  };
}
