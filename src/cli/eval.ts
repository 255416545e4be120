import type { Argv, CommandModule } from 'yargs';
import { KdError } from '../core/errors.js';
import type { EvalOptions, EvalResult } from '../eval/eval.js';

/**
 * Exit codes: 0 = evaluated (and every gate passed), 1 = bad input (KdError), 2 = usage,
 * 3 = the report was written but a --fail-if / --baseline gate failed (GATE_EXIT_CODE in
 * src/eval/gate.ts; kept as a literal here so --help loads no stage code).
 */
export const EVAL_GATE_EXIT = 3;

export interface EvalArgs {
  data: string;
  student: string[];
  out: string;
  force?: boolean;
  teacherUrl?: string;
  model?: string;
  teacherTimeout?: number;
  apiKeyEnv?: string;
  batches?: number;
  batchSize?: number;
  seqLen?: number;
  seed?: number;
  topK?: number;
  samples?: number;
  promptTokens?: number;
  genTokens?: number;
  temperature?: number;
  prompts?: string;
  latencySteps?: number;
  latencyContext?: number;
  latencyLongContext?: number;
  latencyWarmup?: number;
  maxTokens?: number;
  baselineStudent?: string;
  bins?: number;
  cpuUsdPerHour?: number;
  failIf?: string;
  gateOn?: string;
  baseline?: string;
  maxRegression?: string;
  baselineMetrics?: string;
  text?: string[];
  teacherCheckpoint?: string;
  textBytes?: number;
  backend?: string;
  json?: boolean;
}

/** argv → EvalOptions; pure (the stage checks values that need files or models). */
export function resolveEvalArgs(a: EvalArgs): EvalOptions {
  const students = (Array.isArray(a.student) ? a.student : [a.student]).filter((s): s is string => typeof s === 'string' && s.length > 0);
  if (!students.length) throw new KdError('bad-option', 'give at least one --student checkpoint');
  if (a.gateOn !== undefined && a.gateOn !== 'each' && a.gateOn !== 'best') throw new KdError('bad-option', `--gate-on must be "each" or "best", got "${a.gateOn}"`);
  if (a.maxRegression !== undefined && !a.baseline) throw new KdError('bad-option', '--max-regression needs --baseline OLD/report.json');
  return {
    data: a.data, students, out: a.out, force: a.force,
    teacherUrl: a.teacherUrl, teacherModel: a.model, teacherTimeoutMs: a.teacherTimeout !== undefined ? a.teacherTimeout * 1000 : undefined, apiKeyEnv: a.apiKeyEnv,
    batches: a.batches, batchSize: a.batchSize, seqLen: a.seqLen, seed: a.seed, topK: a.topK,
    samples: a.samples, promptTokens: a.promptTokens, genTokens: a.genTokens, temperature: a.temperature, prompts: a.prompts,
    latencySteps: a.latencySteps, latencyContext: a.latencyContext, latencyLongContext: a.latencyLongContext, latencyWarmup: a.latencyWarmup,
    maxTokens: a.maxTokens, baselineStudent: a.baselineStudent, bins: a.bins, cpuUsdPerHour: a.cpuUsdPerHour,
    failIf: a.failIf, gateOn: a.gateOn as EvalOptions['gateOn'], baseline: a.baseline, maxRegression: a.maxRegression,
    baselineMetrics: a.baselineMetrics ? [a.baselineMetrics] : undefined,
    texts: a.text === undefined ? undefined : (Array.isArray(a.text) ? a.text : [a.text]).map(String),
    teacherCheckpoint: a.teacherCheckpoint, textBytes: a.textBytes,
  };
}

function printResult(r: EvalResult, json: boolean): void {
  const out = (s: string) => process.stdout.write(s + '\n');
  if (json) {
    const { students, summary, gate, teacher, texts, headline, warnings, data } = r.report;
    out(JSON.stringify({
      out: r.outDir, summary: summary.line, best: summary.best, ties: summary.ties, gate, warnings,
      validation: { sequences: data.sequences, tokens: data.tokens, splitTokens: data.splitTokens, whole: data.whole },
      headline: headline.map((h) => ({ text: h.text, baseline: h.baseline, baselineBpb: h.baselineBpb, teacherBpb: h.teacherBpb, students: Object.fromEntries(h.rows.map((x) => [x.name, { bpb: x.bpb, gain: x.gain, gapClosed: x.gapClosed, verdict: x.verdict }])) })),
      texts: texts.map((t) => ({ text: t.text, bytes: t.bytes, teacherBpb: t.teacher?.bpb ?? null, students: Object.fromEntries(t.students.map((x) => [x.name, x.bpb])) })),
      teacher: { model: teacher.model, ppl: teacher.ppl, live: teacher.live ? { status: teacher.live.status, error: teacher.live.error ?? null } : null },
      students: students.map((s) => ({ name: s.name, kind: s.kind, kl: s.metrics.kl, agreement: s.metrics.agreement, recall: s.metrics.recall, ppl: s.metrics.ppl, ece: s.metrics.ece, p50Ms: s.latency.p50Ms, p95Ms: s.latency.p95Ms, tokensPerSec: s.latency.tokensPerSec, tokensPerSecLong: s.latencyLong.tokensPerSec, params: s.size.params, weightBytes: s.size.weightBytes, deployableBytes: s.size.deployableBytes, baseline: s.baseline })),
    }));
  } else {
    const f = (x: number | null, d = 3) => (x === null ? '—' : x.toFixed(d));
    for (const s of r.report.students) {
      out(`${s.name.padEnd(16)} ${s.kind.padEnd(6)} KL ${f(s.metrics.kl, 4)}  agreement ${f(s.metrics.agreement)}  recall ${f(s.metrics.recall)}  ppl ${f(s.metrics.ppl, 2)}  ECE ${f(s.metrics.ece)}  p50 ${f(s.latency.p50Ms, 2)} ms  ${Math.round(s.latency.tokensPerSec)} tok/s @${s.latency.context}  ${Math.round(s.latencyLong.tokensPerSec)} tok/s @${s.latencyLong.context}${s.baseline ? '  (hard-label baseline)' : ''}`);
    }
    for (const t of r.report.texts) {
      const parts = [...(t.teacher ? [`teacher ${f(t.teacher.bpb, 4)}`] : []), ...t.students.map((x) => `${x.name} ${f(x.bpb, 4)}`)];
      out(`bits per byte on ${t.text} (${t.bytes} bytes): ${parts.join('  ')}`);
    }
    for (const w of r.report.warnings) out(`warning: ${w}`);
    out(r.report.summary.line);
    out(`report: ${r.outDir}/index.html (figures in report.json)`);
  }
  for (const line of r.failures) process.stderr.write(`kd eval: ${line}\n`);
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Evaluate students against the teacher: KL, agreement, calibration, speed, size; HTML report and CI gates',
  builder: (y: Argv) => y
    .option('data', { type: 'string', demandOption: true, describe: 'dataset directory (its validation split), or "synthetic"' })
    .option('student', { type: 'string', array: true, demandOption: true, describe: 'checkpoint file or run directory, as [NAME=]PATH; repeat to compare' })
    .option('out', { type: 'string', demandOption: true, describe: 'report directory (index.html, report.json)' })
    .option('force', { type: 'boolean', describe: 'replace an existing report directory (swapped in only once complete)' })
    .option('teacher-url', { type: 'string', describe: 'OpenAI-compatible teacher to measure live (latency, sample text; bits per byte on --text when it scores given text)' })
    .option('model', { type: 'string', describe: 'teacher model name for --teacher-url (and its price)' })
    .option('teacher-timeout', { type: 'number', describe: 'seconds per live teacher request (default 10)' })
    .option('api-key-env', { type: 'string', describe: 'environment variable holding the teacher API key (default OPENAI_API_KEY)' })
    .option('batches', { type: 'number', describe: 'validation batches to score: synthetic data (default 8), or a cap on a dataset\'s split' })
    .option('max-tokens', { type: 'number', describe: 'a dataset\'s whole validation split is scored once, up to this many tokens (default 262144)' })
    .option('baseline-student', { type: 'string', describe: 'the hard-label baseline (trained with alpha 1, same size and tokens): the NAME of a --student, or [NAME=]PATH of one more checkpoint; the headline compares every student with it' })
    .option('batch-size', { type: 'number', describe: 'sequences per batch (default 8)' })
    .option('seq-len', { type: 'number', describe: 'tokens per sequence (default: the smallest student seqLen)' })
    .option('seed', { type: 'number', describe: 'synthetic data: teacher seed (default: the one the first student trained on)' })
    .option('top-k', { type: 'number', describe: 'synthetic data: teacher top-k (default: the one the first student trained on)' })
    .option('samples', { type: 'number', describe: 'sample prompts, each continued greedy and sampled by every model (default 3)' })
    .option('prompt-tokens', { type: 'number', describe: 'prompt length taken from validation sequences (default 16)' })
    .option('gen-tokens', { type: 'number', describe: 'tokens to generate per sample (default 32)' })
    .option('temperature', { type: 'number', describe: 'temperature of the sampled continuations (default 0.8, seeded)' })
    .option('prompts', { type: 'string', describe: 'text file, one prompt per line (instead of validation prompts)' })
    .option('latency-steps', { type: 'number', describe: 'timed next-token steps per model and context (default 64)' })
    .option('latency-warmup', { type: 'number', describe: 'untimed steps first (default 4)' })
    .option('latency-context', { type: 'number', describe: 'the short context of the timed steps, in KV-cached tokens (default 16)' })
    .option('latency-long-context', { type: 'number', describe: 'the long context (default: the smallest model seqLen − 1)' })
    .option('bins', { type: 'number', describe: 'calibration bins (default 10)' })
    .option('cpu-usd-per-hour', { type: 'number', describe: 'price of one CPU core-hour, to put the student in $ per 1M tokens' })
    .option('fail-if', { type: 'string', describe: 'gate: comma-separated metric<value / metric>value (<=, >=), e.g. "agreement<0.6,kl>0.5"' })
    .option('gate-on', { type: 'string', choices: ['each', 'best'], describe: '--fail-if checks each student (default) or the best one per metric' })
    .option('baseline', { type: 'string', describe: 'gate: an older report.json to compare with' })
    .option('max-regression', { type: 'string', describe: 'allowed relative regression against --baseline, e.g. 5% (default 5%)' })
    .option('baseline-metrics', { type: 'string', describe: 'metrics compared with --baseline (default agreement,kl,recall,ppl)' })
    .option('text', { type: 'string', array: true, describe: 'plain text to score as bits per byte, each model with its own tokenizer: a .txt/.jsonl file or directory, corpus:sotu (the held-out SOTU speeches) or corpus:brown; repeat for several' })
    .option('teacher-checkpoint', { type: 'string', describe: 'the teacher as a kd checkpoint: a row of the tables (bits per byte on --text, size, latency on this machine) and its continuations of the sample prompts' })
    .option('text-bytes', { type: 'number', describe: 'score at most this many bytes of each --text (default 1000000)' })
    .option('backend', { type: 'string', describe: 'tensorflow-gpu, tensorflow, wasm or cpu (default: best available; or KD_BACKEND)' })
    .option('json', { type: 'boolean', describe: 'print one JSON summary' })
    .example('$0 eval --data datasets/web --student checkpoints/run --student int8=checkpoints/run-int8 --out reports/run', 'compare a student with its int8 version')
    .example('$0 eval --data datasets/demo/data --student kd=checkpoints/kd --baseline-student hard=checkpoints/hard --teacher-checkpoint checkpoints/teacher --text corpus:sotu --out reports/bpb', 'did distillation pay? bits per byte on held-out text beside a hard-label baseline and the teacher')
    .example('$0 eval --data datasets/web --student checkpoints/run --out reports/nightly --force --fail-if "agreement<0.6,kl>0.5" --baseline reports/last/report.json', 'a nightly CI gate (exit 3 on failure)')
    .epilogue('Exit codes: 0 ok, 1 bad input, 2 usage, 3 a gate failed (the report is still written). Gate metrics: agreement, kl, recall, ppl, accuracy, ece, p50-ms, p95-ms, tokens-per-sec, params, bytes, disk-bytes, sparsity, bits.'),
  handler: async (argv) => {
    const o = resolveEvalArgs(argv);
    const { initBackend } = await import('../backend/index.js');
    await initBackend({ backend: argv.backend });
    const { evalStudents } = await import('../eval/eval.js');
    const r = await evalStudents({ ...o, log: argv.json ? undefined : (l) => process.stderr.write(`kd eval: ${l}\n`) });
    printResult(r, Boolean(argv.json));
    if (r.failures.length) process.exitCode = EVAL_GATE_EXIT;
  },
};
