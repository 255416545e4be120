/**
 * `kd eval`'s options, once: the defaults evalStudents applies and the spec its flags, types and
 * pipeline `with:` keys come from. Light on purpose: --help loads it.
 */
import { BACKEND_OPTION, type OptionsOf, type OptionsSpec, TEACHER_OPTIONS, flag } from '../core/options.js';

export const EVAL_DEFAULTS = {
  teacherTimeoutMs: 10_000, batches: 8, maxTokens: 262_144, batchSize: 8, samples: 3, promptTokens: 16, genTokens: 32, temperature: 0.8,
  latencySteps: 64, latencyWarmup: 4, latencyContext: 16, bins: 10, maxRegression: '5%', textBytes: 1_000_000,
} as const;

/** what --baseline compares when --baseline-metrics is left out */
export const DEFAULT_BASELINE_METRICS = ['agreement', 'kl', 'recall', 'ppl'];

export const EVAL_OPTIONS = {
  data: { type: 'string', required: true, describe: 'dataset directory (its validation split), or "synthetic"' },
  student: { type: 'string', array: true, required: true, describe: 'checkpoint file or run directory, as [NAME=]PATH; repeat to compare' },
  out: { type: 'string', required: true, describe: 'report directory (index.html, report.json)' },
  force: flag('replace an existing report directory (swapped in only once complete)'),
  teacherUrl: { type: 'string', describe: 'OpenAI-compatible teacher to measure live (latency, sample text; bits per byte on --text when it scores given text)' },
  model: { ...TEACHER_OPTIONS.model, describe: 'teacher model name for --teacher-url (and its price)' },
  teacherTimeout: { type: 'number', describe: 'seconds per live teacher request', default: EVAL_DEFAULTS.teacherTimeoutMs / 1000 },
  apiKeyEnv: TEACHER_OPTIONS.apiKeyEnv,
  batches: { type: 'number', describe: 'validation batches to score: synthetic data, or a cap on a dataset\'s split', defaultText: `${EVAL_DEFAULTS.batches} on synthetic data, a dataset's whole split` },
  maxTokens: { type: 'number', describe: 'a dataset\'s whole validation split is scored once, up to this many tokens', default: EVAL_DEFAULTS.maxTokens },
  baselineStudent: { type: 'string', describe: 'the hard-label baseline (trained with alpha 1, same size and tokens): the NAME of a --student, or [NAME=]PATH of one more checkpoint; the headline compares every student with it' },
  batchSize: { type: 'number', describe: 'sequences per batch', default: EVAL_DEFAULTS.batchSize },
  seqLen: { type: 'number', describe: 'tokens per sequence', defaultText: 'the smallest student seqLen' },
  seed: { type: 'number', describe: 'synthetic data: teacher seed', defaultText: 'the one the first student trained on' },
  topK: { type: 'number', describe: 'synthetic data: teacher top-k', defaultText: 'the one the first student trained on' },
  samples: { type: 'number', describe: 'sample prompts, each continued greedy and sampled by every model', default: EVAL_DEFAULTS.samples },
  promptTokens: { type: 'number', describe: 'prompt length taken from validation sequences', default: EVAL_DEFAULTS.promptTokens },
  genTokens: { type: 'number', describe: 'tokens to generate per sample', default: EVAL_DEFAULTS.genTokens },
  temperature: { type: 'number', describe: 'temperature of the sampled continuations (seeded)', default: EVAL_DEFAULTS.temperature },
  prompts: { type: 'string', describe: 'text file, one prompt per line (instead of validation prompts)' },
  latencySteps: { type: 'number', describe: 'timed next-token steps per model and context', default: EVAL_DEFAULTS.latencySteps },
  latencyWarmup: { type: 'number', describe: 'untimed steps first', default: EVAL_DEFAULTS.latencyWarmup },
  latencyContext: { type: 'number', describe: 'the short context of the timed steps, in KV-cached tokens', default: EVAL_DEFAULTS.latencyContext },
  latencyLongContext: { type: 'number', describe: 'the long context', defaultText: 'the smallest model seqLen − 1' },
  bins: { type: 'number', describe: 'calibration bins', default: EVAL_DEFAULTS.bins },
  cpuUsdPerHour: { type: 'number', describe: 'price of one CPU core-hour, to put the student in $ per 1M tokens' },
  failIf: { type: 'string', describe: 'gate: comma-separated metric<value / metric>value (<=, >=), e.g. "agreement<0.6,kl>0.5"' },
  gateOn: { type: 'string', choices: ['each', 'best'], describe: '--fail-if checks each student or the best one per metric', default: 'each' },
  baseline: { type: 'string', describe: 'gate: an older report.json to compare with' },
  maxRegression: { type: 'string', describe: 'allowed relative regression against --baseline, e.g. 5%', default: EVAL_DEFAULTS.maxRegression },
  baselineMetrics: { type: 'string', describe: 'metrics compared with --baseline', defaultText: DEFAULT_BASELINE_METRICS.join(',') },
  text: { type: 'string', array: true, describe: 'plain text to score as bits per byte, each model with its own tokenizer: a .txt/.jsonl file or directory, corpus:sotu (the held-out SOTU speeches) or corpus:brown; repeat for several' },
  teacherCheckpoint: { type: 'string', describe: 'the teacher as a kd checkpoint: a row of the tables (bits per byte on --text, size, latency on this machine) and its continuations of the sample prompts' },
  textBytes: { type: 'number', describe: 'score at most this many bytes of each --text', default: EVAL_DEFAULTS.textBytes },
  backend: BACKEND_OPTION,
  json: flag('print one JSON summary'),
} as const satisfies OptionsSpec;

export type EvalArgs = OptionsOf<typeof EVAL_OPTIONS>;
