/**
 * reports/RUN/report.json, version 1: every figure of a `kd eval` run, for machines (CI gates,
 * --baseline comparisons, dashboards). index.html is rendered from exactly this object.
 * Missing figures are null, with the reason next to them where there is one.
 */
import type { CollectionFigures, LiveTeacher } from '../eval/teacher.js';
import type { EvalMetrics } from '../eval/metrics.js';
import type { StudentKind, StudentSize } from '../eval/load.js';
import type { LatencyFigures } from '../eval/student.js';
import type { BitsPerByte } from '../eval/bpb.js';

export const EVAL_REPORT_FORMAT = 'kd-eval-report';
export const EVAL_REPORT_VERSION = 1;

export interface SampleText {
  prompt: string;
  /** the teacher's continuation: from the dataset (the actual text) or live */
  teacher: string | null;
  teacherSource: 'dataset' | 'live' | null;
  /** per student, in the order of `students` */
  students: string[];
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
  latency: LatencyFigures;
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
  /** in the order of `students` */
  students: (BitsPerByte & { name: string })[];
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
  };
  teacher: {
    model: string | null;
    collection: CollectionFigures | null;
    live: LiveTeacher | null;
    /** USD per 1M tokens */
    price: { input: number; output: number; source: string } | null;
    /** from the dataset's labels (same for every student) */
    ppl: number | null;
    coverage: number | null;
  };
  students: StudentReport[];
  /** bits per byte on each --text (empty without --text) */
  texts: TextScore[];
  samples: SampleText[];
  /** the one-line verdict and its parts */
  summary: { line: string; best: Record<string, string | null> };
  gate: GateReport | null;
  /** where the figures came from: this repository's commit, the teacher's fingerprints, each student's seed and steps */
  provenance: {
    gitCommit: string | null;
    systemFingerprints: string[];
    students: { name: string; seed: number | null; steps: number | null }[];
  };
}
