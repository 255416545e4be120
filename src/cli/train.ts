/** `kd train`: flags → resolveTrainArgs → train(), with progress on stderr and the summary on stdout. */
import type { Argv, CommandModule } from 'yargs';
import { REFERENCE_CONFIG } from '../model/config.js';
import { DEFAULT_LOSS, DIVERGENCES, MISSING_MASS } from '../train/kd-kernel.js';
import { type ResolvedTrain, type TrainArgs, resolveTrainArgs, trainData } from '../train/options.js';
import { DEFAULT_TRAIN, defaultWorkers } from '../train/config.js';
import type { TrainSummary } from '../train/trainer.js';
import { formatDuration, startProgress } from '../core/progress.js';

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Train a student on the teacher\'s soft labels (KD loss × T², AdamW, checkpoints, exact resume)',
  builder: (y: Argv) => y
    .option('data', { type: 'string', demandOption: true, describe: 'dataset directory; "synthetic" (a built-in random bigram teacher); or "corpus:sotu" / "corpus:PATH" for plain next-token training on text (with --tokenizer, --alpha 1)' })
    .option('out', { type: 'string', demandOption: true, describe: 'run directory for checkpoint.kdc and train-log.jsonl' })
    .option('config', { type: 'string', describe: 'JSON file {"model": {...}, "train": {...}}; flags override it' })
    .option('resume', { type: 'boolean', describe: 'continue the run in --out exactly where it stopped' })
    .option('force', { type: 'boolean', describe: 'start over even if --out holds a checkpoint' })
    .option('backend', { type: 'string', describe: 'tensorflow-gpu, tensorflow, wasm or cpu (default: best available; or KD_BACKEND)' })
    .option('json', { type: 'boolean', describe: 'print one JSON line per log interval and a JSON summary' })
    .option('steps', { type: 'number', describe: `optimizer steps (default ${DEFAULT_TRAIN.steps})` })
    .option('batch-size', { type: 'number', describe: `sequences per micro-batch (default ${DEFAULT_TRAIN.batchSize})` })
    .option('seq-len', { type: 'number', describe: `tokens per sequence; also the model's context (default ${REFERENCE_CONFIG.seqLen})` })
    .option('accum-steps', { type: 'number', describe: `micro-batches per optimizer step (default ${DEFAULT_TRAIN.accumSteps})` })
    .option('lr', { type: 'number', describe: `peak learning rate, cosine decay to --min-lr (default ${DEFAULT_TRAIN.lr})` })
    .option('min-lr', { type: 'number', describe: `learning rate at the last step (default ${DEFAULT_TRAIN.minLr})` })
    .option('warmup-steps', { type: 'number', describe: `linear warm-up steps (default ${DEFAULT_TRAIN.warmupSteps})` })
    .option('weight-decay', { type: 'number', describe: `AdamW weight decay (default ${DEFAULT_TRAIN.weightDecay})` })
    .option('grad-clip', { type: 'number', describe: `global-norm clip, 0 = off (default ${DEFAULT_TRAIN.gradClip})` })
    .option('divergence', { type: 'string', choices: [...DIVERGENCES], describe: `divergence to the teacher (default ${DEFAULT_LOSS.divergence})` })
    .option('temperature', { type: 'number', describe: `softening temperature T, loss × T² (default ${DEFAULT_LOSS.temperature})` })
    .option('alpha', { type: 'number', describe: `weight of the hard-label cross-entropy; 1 = no distillation (default ${DEFAULT_LOSS.alpha})` })
    .option('beta', { type: 'number', describe: `JSD interpolation β (default ${DEFAULT_LOSS.beta})` })
    .option('missing-mass', { type: 'string', choices: [...MISSING_MASS], describe: `the teacher's probability outside its top-k: one tail class, or renormalise the top-k as if it were everything (default ${DEFAULT_LOSS.missingMass})` })
    .option('tail-target', { type: 'number', describe: `weight of the hard target's cross-entropy within the tail where it is outside the teacher's top-k (default ${DEFAULT_LOSS.tailTarget})` })
    .option('unlabelled-weight', { type: 'number', describe: `weight of the hard target at positions without a soft label, in the (1 − alpha) term; 0 = skip them (default ${DEFAULT_LOSS.unlabelledWeight})` })
    .option('log-every', { type: 'number', describe: `steps between log lines (default ${DEFAULT_TRAIN.logEvery})` })
    .option('eval-every', { type: 'number', describe: `steps between validation passes, 0 = off (default ${DEFAULT_TRAIN.evalEvery})` })
    .option('eval-batches', { type: 'number', describe: `validation batches per pass (default ${DEFAULT_TRAIN.evalBatches})` })
    .option('checkpoint-every', { type: 'number', describe: `steps between checkpoints, 0 = only at the end (default ${DEFAULT_TRAIN.checkpointEvery})` })
    .option('seed', { type: 'number', describe: `seed of the initialisation and the data order (default ${DEFAULT_TRAIN.seed})` })
    .option('vocab-size', { type: 'number', describe: `model: vocabulary size (synthetic data; a dataset's tokenizer sets it) (default ${REFERENCE_CONFIG.vocabSize})` })
    .option('d-model', { type: 'number', describe: `model: width (default ${REFERENCE_CONFIG.dModel})` })
    .option('layers', { type: 'number', describe: `model: transformer blocks (default ${REFERENCE_CONFIG.nLayers})` })
    .option('heads', { type: 'number', describe: `model: attention heads, must divide d-model (default ${REFERENCE_CONFIG.nHeads})` })
    .option('ffn-mult', { type: 'number', describe: `model: MLP width multiplier (default ${REFERENCE_CONFIG.ffnMult})` })
    .option('top-k', { type: 'number', describe: 'synthetic data: teacher top-k (default 20)' })
    .option('tokenizer', { type: 'string', describe: 'tokenizer JSON for --data corpus:… (sets the vocabulary size)' })
    .option('workers', { type: 'number', describe: 'data-parallel worker threads (default: one per core on wasm/cpu, 1 on tfjs-node)' })
    .example('$0 train --data synthetic --out checkpoints/try --steps 200', 'train the reference student on the built-in synthetic teacher')
    .example('$0 train --data corpus:sotu --tokenizer tok.json --alpha 1 --out checkpoints/lm', 'plain next-token training on the State of the Union corpus'),
  handler: async (argv) => {
    const r = resolveTrainArgs(argv);
    await runTrain(r, { backend: argv.backend, json: Boolean(argv.json) });
  },
};

/** The train bar; {etaText}, not {eta}, which is cli-progress's own ETA in bare seconds and would win over ours. */
export const TRAIN_BAR_FORMAT = 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {etaText}';

export async function runTrain(r: ResolvedTrain, io: { backend?: string; json: boolean }): Promise<TrainSummary> {
  const [{ initBackend }, { train }] = await Promise.all([import('../backend/index.js'), import('../train/trainer.js')]);
  const be = await initBackend({ backend: io.backend });
  const workers = r.workers ?? defaultWorkers(be.backend, r.config.batchSize);
  const data = trainData(r);
  const model = data.model;
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
      model, config: r.config, data: data.train, val: data.val, outDir: r.out, resume: r.resume, signal: stop.signal,
      workers, backend: be.backend, tokenizer: data.tokenizer?.toJSON(),
      meta: { backend: be.backend },
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
