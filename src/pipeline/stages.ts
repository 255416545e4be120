/**
 * How each pipeline stage kind maps onto a kd command: which flags name its inputs (hashed into the
 * stage's key) and its output, and how to resume or overwrite it. A stage runs as a child process
 * `kd <command> <flags> --json`, so it is exactly what a user would type, with the same validation,
 * and its summary is the last JSON line it prints.
 */
import { kebab } from '../core/names.js';
import { type OptionSpec, type OptionsSpec, flagNames } from '../core/options.js';
import type { StageKind } from '../schema/pipeline.js';
import { COLLECT_OPTIONS } from '../collect/options.js';
import { BUILD_OPTIONS, MERGE_OPTIONS } from '../dataset/options.js';
import { TRAIN_OPTIONS } from '../train/options.js';
import { COMPRESS_OPTIONS, PRUNE_OPTIONS, QUANTIZE_OPTIONS } from '../compress/options.js';
import { EVAL_OPTIONS } from '../eval/options.js';
import { TOKENIZER_TRAIN_OPTIONS } from '../tokenizer/options.js';

export interface StageKindDef {
  command: string[];
  /** the command's option spec: the keys `with:` may use */
  options: OptionsSpec;
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
  tokenizer: { command: ['tokenizer', 'train'], options: TOKENIZER_TRAIN_OPTIONS, inputs: ['corpus'], out: 'out', outIsFile: true },
  collect: { command: ['collect'], options: COLLECT_OPTIONS, inputs: ['input'], out: 'out' },
  merge: { command: ['dataset', 'merge'], options: MERGE_OPTIONS, inputs: ['from'], out: 'out', force: 'force' },
  dataset: { command: ['dataset', 'build'], options: BUILD_OPTIONS, inputs: ['from'], out: 'out', force: 'force' },
  train: { command: ['train'], options: TRAIN_OPTIONS, inputs: ['data', 'config', 'tokenizer'], out: 'out', resume: 'resume', force: 'force' },
  prune: { command: ['prune'], options: PRUNE_OPTIONS, inputs: ['checkpoint', 'data'], out: 'out', resume: 'resume', force: 'force' },
  quantize: { command: ['quantize'], options: QUANTIZE_OPTIONS, inputs: ['checkpoint'], out: 'out', force: 'force' },
  export: { command: ['export'], options: COMPRESS_OPTIONS, inputs: ['checkpoint'], out: 'out', force: 'force' },
  eval: { command: ['eval'], options: EVAL_OPTIONS, inputs: ['data', 'student', 'baseline', 'baseline-student', 'teacher-checkpoint', 'text'], out: 'out', force: 'force' },
};

/** A stage's `with:` checked against its kind's option spec: the first unknown key or ill-typed value (its key, and the message from `with` on), or undefined. */
export function withProblem(kind: StageKind, params: Record<string, unknown>): { key: string; message: string } | undefined {
  const spec = STAGES[kind].options;
  const names = flagNames(spec);
  for (const [key, value] of Object.entries(params)) {
    const name = names.get(kebab(key));
    if (name === undefined) {
      const near = closest(kebab(key), [...names.keys()]);
      const cmd = `kd ${STAGES[kind].command.join(' ')}`;
      return { key, message: `with: unknown key "${key}" (${cmd} has no --${kebab(key)}); ${near ? `did you mean "${styled(near, key)}"?` : `see ${cmd} --help for its options`}` };
    }
    const bad = valueProblem(spec[name], value);
    if (bad) return { key, message: `with.${key}: ${bad}` };
  }
  return undefined;
}

function valueProblem(o: OptionSpec, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return o.array || o.multiple ? v.map((x) => valueProblem({ ...o, array: false, multiple: false }, x)).find((x) => x !== undefined) : `takes one value, not a list`;
  if (o.type === 'boolean') return typeof v === 'boolean' ? undefined : `takes true or false, not ${JSON.stringify(v)}`;
  if (o.type === 'number') return typeof v === 'number' || (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) ? undefined : `takes a number, not ${JSON.stringify(v)}`;
  if (typeof v === 'boolean') return `takes a value, not ${v}`;
  if (o.choices && !o.choices.includes(String(v))) return `takes one of ${o.choices.join(', ')}, not ${JSON.stringify(v)}`;
  return undefined;
}

/** A flag name in the style of the key the user wrote: snake_case (the pipelines' own), camelCase or kebab-case. */
function styled(flagName: string, like: string): string {
  if (like.includes('-')) return flagName;
  if (/[A-Z]/.test(like)) return flagName.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
  return flagName.replace(/-/g, '_');
}

/** The name nearest to `name` by edit distance, if it is near enough to be a slip (at most a third of its letters). */
export function closest(name: string, names: string[]): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const n of names) {
    const d = editDistance(name, n);
    if (d < bestD) { best = n; bestD = d; }
  }
  return bestD <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

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
