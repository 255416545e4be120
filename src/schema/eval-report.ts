/**
 * reports/RUN/report.json, version 1: every figure of a `kd eval` run, for machines (CI gates,
 * --baseline comparisons, dashboards). index.html is rendered from exactly this object.
 * Missing figures are null, with the reason next to them where there is one.
 */

export const EVAL_REPORT_FORMAT = 'kd-eval-report';
export const EVAL_REPORT_VERSION = 2;

export interface TeacherLatency {
  /** requests measured */
  n: number;
  p50Ms: number | null;
  p95Ms: number | null;
  /** Σ latency / Σ completion tokens over requests that report usage; null when none do */
  msPerToken: number | null;
}

export interface CollectionFigures {
  manifest: string;
  model: string | null;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  price: { input: number; output: number; source: string };
  /** null when the raw shards are not there to read */
  latency: TeacherLatency | null;
  /** the teacher's system_fingerprint values seen while collecting (provenance) */
  systemFingerprints: string[];
}

export interface LiveTeacher {
  url: string;
  model: string;
  status: 'ok' | 'unreachable' | 'error';
  error?: string;
  latency: TeacherLatency | null;
  /** per prompt: its greedy and sampled continuation (null where none came back) */
  texts: ({ greedy: string | null; sampled: string | null } | null)[];
}

export interface ReliabilityBin {
  lo: number;
  hi: number;
  count: number;
  /** mean confidence in the bin (null when empty) */
  confidence: number | null;
  /** fraction correct in the bin (null when empty) */
  accuracy: number | null;
}

export interface EvalMetrics {
  labelled: number;
  targeted: number;
  kl: number | null;
  agreement: number | null;
  recall: number | null;
  ppl: number | null;
  accuracy: number | null;
  ece: number | null;
  teacherPpl: number | null;
  teacherCoverage: number | null;
  reliability: ReliabilityBin[];
}

export type StudentKind = 'fp32' | 'pruned' | 'int8';

export interface StudentSize {
  /** weights of the model (optimizer state excluded) */
  params: number;
  /** the checkpoint file's size; a training checkpoint also holds AdamW moments */
  bytesOnDisk: number;
  /** bytes of the model's weights as the checkpoint stores them (int8 values + fp32 scales, or fp32; zeros stored dense) */
  weightBytes: number;
  /**
   * what deploying the weights takes: per tensor the smaller of dense storage and a sparse one
   * (a bitmap of 1 bit per weight + the nonzero values at their stored width), int8 scales included
   */
  deployableBytes: number;
  /** fraction of exact zeros over the block matrices prune works on (qkv, proj, fc, out): what --sparsity asks */
  sparsity: number;
  /** fraction of exact zeros over every weight (embeddings and LayerNorms count, not pruned) */
  overallSparsity: number;
  /** the sparsity kd prune was asked for (from the checkpoint's compress history) */
  askedSparsity: number | null;
  /** stored bits per weight: weightBytes · 8 / params */
  bits: number;
}

export interface LatencyFigures {
  /** context length of every timed step (tokens already in the KV cache) */
  context: number;
  steps: number;
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
  /** 1000 / meanMs: one stream, one token per step, KV cache */
  tokensPerSec: number;
  /** the prompt's forward pass that fills the cache (untimed steps excluded), ms */
  prefillMs: number;
  /** every timed step, for the distribution chart and the intervals */
  samplesMs: number[];
}

export interface BitsPerByte {
  /** bits / bytes */
  bpb: number;
  /** Σ −log2 p(token) over the scored tokens */
  bits: number;
  /** UTF-8 bytes of the scored tokens */
  bytes: number;
  /** scored tokens (all but the first) */
  tokens: number;
}

export interface Interval {
  /** 2.5th and 97.5th percentile of the replicates (a 95% interval) */
  lo: number;
  hi: number;
}

/** One continuation, and the share of its word 3-grams that already occurred in it (loops show as a high share). */
export interface Continuation {
  text: string;
  repeated: number;
}

/** Every model continues the same prompt text (completion, no chat template), greedy and sampled. */
export interface SampleText {
  prompt: string;
  /** the text that follows the prompt in the validation split (null for --prompts) */
  reference: string | null;
  /** the teacher's continuations: its checkpoint, or live over --teacher-url (completions) */
  teacher: { greedy: Continuation | null; sampled: Continuation | null } | null;
  teacherSource: 'checkpoint' | 'live' | null;
  /** per student, in the order of `students` */
  students: { greedy: Continuation; sampled: Continuation }[];
}

export interface TrainLogPoint {
  step: number;
  loss: number;
  valLoss?: number;
}

export interface StudentReport {
  name: string;
  path: string;
  kind: StudentKind;
  tokenizerHash: string | null;
  model: Record<string, unknown>;
  metrics: EvalMetrics;
  /** 95% bootstrap intervals over the validation sequences */
  intervals: Record<'kl' | 'agreement' | 'recall' | 'ppl' | 'accuracy' | 'ece', Interval | null>;
  /** the hard-label baseline (--baseline-student) */
  baseline: boolean;
  /** from the checkpoint: alpha (1 = hard labels only), steps and tokens trained on */
  training: { alpha: number | null; steps: number | null; tokens: number | null };
  /** next-token latency with a KV cache at the short context (what --fail-if p50-ms etc. check) */
  latency: LatencyFigures;
  /** the same at the long context */
  latencyLong: LatencyFigures;
  size: StudentSize;
  cost: {
    /** forward FLOPs per generated token at the measured context */
    flopsPerToken: number;
    /** single-stream CPU seconds to generate 1M tokens on this machine and backend */
    cpuSecondsPer1MTokens: number | null;
    /** with --cpu-usd-per-hour */
    usdPer1MTokens: number | null;
  };
  /** train-log.jsonl next to the checkpoint, when there is one */
  trainLog: TrainLogPoint[];
}

/** Bits per byte on one plain text (`kd eval --text`), each model with its own tokenizer. */
export interface TextScore {
  /** the --text spec */
  text: string;
  /** UTF-8 bytes of the text scored (after --text-bytes) */
  bytes: number;
  /** the teacher's figures: from --teacher-checkpoint, or a --teacher-url that scores given text */
  teacher: BitsPerByte | null;
  teacherSource: 'checkpoint' | 'api' | null;
  /** why a --teacher-url has no figure (it cannot score given text, or did not answer) */
  teacherNote: string | null;
  /** in the order of `students`; ci: 95% bootstrap interval over blocks of the text */
  students: (BitsPerByte & { name: string; ci: Interval | null })[];
  teacherCi: Interval | null;
  /** bytes per bootstrap block */
  blockBytes: number;
}

/** "Did distillation pay?" on one text: each student against the hard-label baseline and the teacher. */
export interface Headline {
  text: string;
  baseline: string;
  baselineBpb: number;
  teacherBpb: number | null;
  rows: {
    name: string;
    bpb: number;
    ci: Interval | null;
    /** (baseline − student) / baseline: > 0 when the student is better */
    gain: number;
    gainCi: Interval | null;
    /** (baseline − student) / (baseline − teacher): 1 = as good as the teacher; null without a teacher below the baseline */
    gapClosed: number | null;
    gapClosedCi: Interval | null;
    verdict: 'paid' | 'no measurable difference' | 'worse';
  }[];
  /** where the baseline is not like for like (size, tokens, alpha) */
  notes: string[];
}

/** The teacher as a kd checkpoint (--teacher-checkpoint), measured like the students. */
export interface TeacherCheckpoint {
  path: string;
  tokenizerHash: string | null;
  vocabSize: number;
  /** its tokenizer is the dataset's: validation metrics on the actual tokens compare like with like */
  sameTokenizer: boolean;
  /** on the validation split when sameTokenizer (KL/agreement are against itself: not shown) */
  metrics: EvalMetrics | null;
  latency: LatencyFigures;
  latencyLong: LatencyFigures;
  size: StudentSize;
  cost: StudentReport['cost'];
}

export interface GateReport {
  conditions: string[];
  baseline: string | null;
  maxRegression: number | null;
  failures: string[];
  notes: string[];
  passed: boolean;
}

export interface EvalReport {
  format: typeof EVAL_REPORT_FORMAT;
  version: number;
  kdVersion: string;
  createdAt: string;
  backend: string;
  data: {
    spec: string;
    describe: Record<string, unknown>;
    batches: number;
    batchSize: number;
    seqLen: number;
    tokenizerHash: string | null;
    /** sequences (rows of seqLen tokens) and positions scored, each once */
    sequences: number;
    tokens: number;
    /** tokens in the validation split (null for synthetic data) */
    splitTokens: number | null;
    /** --max-tokens */
    capTokens: number;
    /** scored the whole split (else: the cap, or --batches, cut it) */
    whole: boolean;
  };
  /** what a reader should know before trusting the figures (small or cut validation split, …) */
  warnings: string[];
  teacher: {
    model: string | null;
    collection: CollectionFigures | null;
    live: LiveTeacher | null;
    /** USD per 1M tokens */
    price: { input: number; output: number; source: string } | null;
    /** from the dataset's labels (same for every student): over the positions whose token is in its top-k only */
    ppl: number | null;
    coverage: number | null;
    checkpoint: TeacherCheckpoint | null;
  };
  students: StudentReport[];
  /** bits per byte on each --text (empty without --text) */
  texts: TextScore[];
  /** one per --text when there is a hard-label baseline */
  headline: Headline[];
  samples: SampleText[];
  /** the one-line verdict and its parts */
  summary: { line: string; best: Record<string, string | null>; ties: Record<string, string[]> };
  gate: GateReport | null;
  /** where the figures came from: this repository's commit, the teacher's fingerprints, each student's seed and steps */
  provenance: {
    gitCommit: string | null;
    systemFingerprints: string[];
    students: { name: string; seed: number | null; steps: number | null }[];
  };
}
