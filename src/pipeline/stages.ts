/**
 * How each pipeline stage kind maps onto a kd command: which flags name its inputs (hashed into the
 * stage's key) and its output, and how to resume or overwrite it. A stage runs as a child process
 * `kd <command> <flags> --json`, so it is exactly what a user would type, with the same validation,
 * and its summary is the last JSON line it prints.
 */
import { kebab } from '../core/names.js';
import type { StageKind } from '../schema/pipeline.js';

export interface StageKindDef {
  command: string[];
  /** flags whose files or directories are the stage's inputs */
  inputs: string[];
  /** the flag naming the output (a directory, or a file for the tokenizer) */
  out: string;
  outIsFile?: boolean;
  /** flag that continues an interrupted run (collect resumes by itself) */
  resume?: string;
  /** flag that allows replacing a stale output */
  force?: string;
}

export const STAGES: Record<StageKind, StageKindDef> = {
  tokenizer: { command: ['tokenizer', 'train'], inputs: ['corpus'], out: 'out', outIsFile: true },
  collect: { command: ['collect'], inputs: ['input'], out: 'out' },
  merge: { command: ['dataset', 'merge'], inputs: ['from'], out: 'out', force: 'force' },
  dataset: { command: ['dataset', 'build'], inputs: ['from'], out: 'out', force: 'force' },
  train: { command: ['train'], inputs: ['data', 'config', 'tokenizer'], out: 'out', resume: 'resume', force: 'force' },
  prune: { command: ['prune'], inputs: ['checkpoint', 'data'], out: 'out', force: 'force' },
  quantize: { command: ['quantize'], inputs: ['checkpoint'], out: 'out', force: 'force' },
  export: { command: ['export'], inputs: ['checkpoint'], out: 'out', force: 'force' },
  eval: { command: ['eval'], inputs: ['data', 'student', 'baseline', 'baseline-student', 'teacher-checkpoint', 'text'], out: 'out', force: 'force' },
};

/** `with:` parameters → command-line flags (snake_case and camelCase keys both become --kebab-case). */
export function toArgv(params: Record<string, unknown>): string[] {
  const argv: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    const flag = `--${kebab(k)}`;
    if (v === true) argv.push(flag);
    else if (v === false) argv.push(`--no-${kebab(k)}`);
    else if (Array.isArray(v)) for (const x of v) argv.push(...flagWith(flag, String(x)));
    else if (typeof v === 'object') argv.push(...flagWith(flag, JSON.stringify(v)));
    else argv.push(...flagWith(flag, String(v)));
  }
  return argv;
}

/** `--flag value`, or `--flag=value` when the value looks like a flag itself (a value "--force" stays a value). */
function flagWith(flag: string, value: string): string[] {
  return value.startsWith('-') ? [`${flag}=${value}`] : [flag, value];
}

/** Values of one flag in an argv (repeatable flags give several). */
export function flagValues(argv: string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${flag}` && i + 1 < argv.length) out.push(argv[i + 1]);
    else if (argv[i].startsWith(`--${flag}=`)) out.push(argv[i].slice(flag.length + 3));
  }
  return out;
}
