import type { Argv, CommandModule } from 'yargs';
import type { OnPolicyInput, OnPolicySummary } from '../onpolicy/onpolicy.js';

interface OnPolicyArgs {
  teacherUrl?: string; model: string; apiKeyEnv?: string; prompts: string; column?: string; student: string; offpolicy?: string; out: string;
  rounds?: number; lambda?: number; maxNewTokens?: number; temperature?: number; stepsPerRound?: number; lr?: number; minLr?: number;
  warmupSteps?: number; seed?: number; topK?: number; maxCost?: number; priceIn?: number; priceOut?: number; concurrency?: number; workers?: number;
  timeout?: number; backend?: string; json?: boolean;
}

export function onPolicyOptionsFromArgs(a: OnPolicyArgs): OnPolicyInput {
  return {
    teacherUrl: a.teacherUrl, model: a.model, apiKeyEnv: a.apiKeyEnv, prompts: a.prompts, column: a.column, student: a.student, offpolicy: a.offpolicy, out: a.out,
    rounds: a.rounds, lambda: a.lambda, maxNewTokens: a.maxNewTokens, temperature: a.temperature, stepsPerRound: a.stepsPerRound, lr: a.lr, minLr: a.minLr,
    warmupSteps: a.warmupSteps, seed: a.seed, topK: a.topK, maxCost: a.maxCost, priceIn: a.priceIn, priceOut: a.priceOut, concurrency: a.concurrency,
    workers: a.workers, timeoutMs: a.timeout === undefined ? undefined : a.timeout * 1000,
  };
}

export function formatOnPolicy(s: OnPolicySummary): string {
  return [
    `${s.stopReason === 'complete' ? 'done' : `stopped (${s.stopReason})`}: ${s.rounds.length} round(s), ${s.teacherTokens} on-policy teacher tokens, $${s.totalCostUsd.toFixed(4)} in total`,
    ...s.rounds.map((r) => `round ${r.round + 1}: ${r.onRows} on-policy + ${r.offRows} off-policy sequences, ${r.teacherTokens} teacher tokens, ${r.steps} steps, loss ${Number.isFinite(r.loss) ? r.loss.toFixed(4) : '—'}`),
    `student  ${s.student}`,
  ].join('\n');
}

export const onPolicyCommand: CommandModule<object, OnPolicyArgs> = {
  command: 'onpolicy',
  describe: 'On-policy distillation (GKD): the student samples continuations, the teacher scores them, the student trains on them mixed with off-policy data',
  builder: (y: Argv<object>) => y
    .option('teacher-url', { type: 'string', describe: 'OpenAI-compatible teacher that scores given text (kd serve, vLLM; probed first) (else OPENAI_BASE_URL)' })
    .option('model', { type: 'string', demandOption: true, describe: 'teacher model name' })
    .option('api-key-env', { type: 'string', describe: 'environment variable holding the API key (default OPENAI_API_KEY)' })
    .option('prompts', { type: 'string', demandOption: true, describe: 'CSV or JSONL of prompts the student continues' })
    .option('column', { type: 'string', describe: 'column/field with the prompt (default "prompt")' })
    .option('student', { type: 'string', demandOption: true, describe: 'student checkpoint to start from (trained on a kd dataset: its tokenizer is kept)' })
    .option('offpolicy', { type: 'string', describe: 'off-policy raw collection (kd collect --out) mixed in; needed unless --lambda 1' })
    .option('out', { type: 'string', demandOption: true, describe: 'output directory: raw-onpolicy/ (the ledger), round-N/{samples.jsonl,data,run}' })
    .option('rounds', { type: 'number', describe: 'sample → score → train rounds (default 2)' })
    .option('lambda', { type: 'number', describe: 'share of on-policy sequences among each round\'s training rows, (0, 1] (default 0.5)' })
    .option('max-new-tokens', { type: 'number', describe: 'student tokens sampled after each prompt (default 64)' })
    .option('temperature', { type: 'number', describe: 'student sampling temperature (default 1)' })
    .option('steps-per-round', { type: 'number', describe: 'training steps per round (default 200)' })
    .option('lr', { type: 'number', describe: 'peak learning rate of each round, cosine to --min-lr (default 0.001)' })
    .option('min-lr', { type: 'number', describe: 'learning rate at each round\'s last step (default 0.0001)' })
    .option('warmup-steps', { type: 'number', describe: 'warm-up steps per round (default 10)' })
    .option('seed', { type: 'number', describe: 'seed of sampling, mixing and training (default 0)' })
    .option('top-k', { type: 'number', describe: 'teacher alternatives per position (default 20)' })
    .option('max-cost', { type: 'number', describe: 'USD budget for all on-policy scoring in --out; stops before it would be passed' })
    .option('price-in', { type: 'number', describe: 'USD per 1M input tokens (overrides the table)' })
    .option('price-out', { type: 'number', describe: 'USD per 1M output tokens (overrides the table)' })
    .option('concurrency', { type: 'number', describe: 'teacher requests in flight (default 4)' })
    .option('workers', { type: 'number', describe: 'training worker threads (default: one per core on wasm/cpu)' })
    .option('timeout', { type: 'number', describe: 'seconds per teacher request (default 120)' })
    .option('backend', { type: 'string', describe: 'tfjs backend for sampling and training (default: best available)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON summary' })
    .example('$0 onpolicy --teacher-url http://127.0.0.1:8080/v1 --model kd-teacher --prompts prompts.jsonl --student checkpoints/mine --offpolicy datasets/mine/raw --out datasets/mine/onpolicy --max-cost 5', 'two GKD rounds at λ 0.5, at most $5 of teacher scoring') as Argv<OnPolicyArgs>,
  handler: async (argv) => {
    const [{ onPolicy }, { progressBar }, { startProgress, formatDuration }] = await Promise.all([import('../onpolicy/onpolicy.js'), import('../collect/progress.js'), import('../core/progress.js')]);
    const controller = new AbortController();
    const onSig = () => controller.abort();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const tty = !argv.json && Boolean(process.stderr.isTTY);
    let cbar: import('../collect/progress.js').ProgressBar | null = null;
    let tbar: ReturnType<typeof startProgress> | null = null;
    try {
      const s = await onPolicy(onPolicyOptionsFromArgs(argv), {
        signal: controller.signal, backend: argv.backend,
        log: (l) => { cbar?.stop(); cbar = null; tbar?.stop(); tbar = null; process.stderr.write(`kd: ${l}\n`); },
        onCollectProgress: tty ? (p) => { cbar ??= progressBar(process.stderr, p.done); cbar.update(p); } : undefined,
        onTrainStep: tty ? (p) => { tbar ??= startProgress(p.steps, 'train |{bar}| {value}/{total} steps | loss {loss} | ETA {etaText}', true); tbar.update(p.step, { loss: p.loss.toFixed(4), etaText: formatDuration(p.etaSec) }); } : undefined,
      });
      (cbar as { stop(): void } | null)?.stop();
      (tbar as { stop(): void } | null)?.stop();
      process.stdout.write((argv.json ? JSON.stringify(s) : formatOnPolicy(s)) + '\n');
      if (s.stopReason === 'interrupted') process.exitCode = 130;
    } finally {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    }
  },
};
