/**
 * One typed option spec per command (vitest's CLIOptions<Config> is the model): each option written
 * once, with its type, its description and the default the stage applies. From it come the yargs
 * options (src/cli/), the TypeScript type of the parsed flags (OptionsOf), and the keys a pipeline
 * stage's `with:` may use (they are the same flags: src/pipeline/stages.ts checks the keys against the
 * stage kind's spec and turns them into --kebab-case).
 *
 * Defaults are shown in --help, not applied by yargs: a stage merges defaults, its config file and the
 * flags itself, so a flag left out must stay undefined.
 */
import type { Argv } from 'yargs';
import { kebab } from './names.js';

export interface OptionSpec {
  type: 'string' | 'number' | 'boolean';
  describe: string;
  /** the value the stage uses when the flag is left out, shown in --help as "(default …)" */
  default?: string | number | boolean;
  /** --help text for a default that is not one value ("one per core") */
  defaultText?: string;
  choices?: readonly string[];
  required?: boolean;
  /** other --kebab-case names of the flag (a renamed flag keeps its old name working) */
  alias?: readonly string[];
  /** the flag may be repeated; its value is the list */
  array?: boolean;
  /** the flag may be given more than once, not being an array flag (it takes one value a time): one value, or the list */
  multiple?: boolean;
  /** the value is taken even when it looks like a flag (--shard -1/4 gets the --shard error) */
  requiresArg?: boolean;
  /** a positional argument of the command (`kd run <pipeline>`), not a --flag */
  positional?: boolean;
}

export type OptionsSpec = Record<string, OptionSpec>;

type ScalarOf<S extends OptionSpec> = S['type'] extends 'number' ? number : S['type'] extends 'boolean' ? boolean
  : S['choices'] extends readonly (infer C)[] ? C : string;
type ValueOf<S extends OptionSpec> = S['array'] extends true ? ScalarOf<S>[] : S['multiple'] extends true ? ScalarOf<S> | ScalarOf<S>[] : ScalarOf<S>;

/** The parsed flags of a spec, camelCase keys: required options present, the others optional. */
export type OptionsOf<S extends OptionsSpec> =
  { -readonly [K in keyof S as S[K]['required'] extends true ? K : never]: ValueOf<S[K]> } &
  { -readonly [K in keyof S as S[K]['required'] extends true ? never : K]?: ValueOf<S[K]> };

interface YargsOption { type: OptionSpec['type']; describe: string; demandOption?: boolean; choices?: string[]; alias?: string[]; array?: boolean; requiresArg?: boolean }

/** The --help text of an option: its description, then "(default …)" when it has one. */
export function describeOption(o: OptionSpec): string {
  const shown = o.defaultText ?? (o.default === undefined ? undefined : String(o.default));
  return shown === undefined ? o.describe : `${o.describe} (default ${shown})`;
}

function yargsOption(o: OptionSpec): YargsOption {
  return {
    type: o.type,
    describe: describeOption(o),
    ...(o.required ? { demandOption: true } : {}),
    ...(o.choices ? { choices: [...o.choices] } : {}),
    ...(o.alias ? { alias: [...o.alias] } : {}),
    ...(o.array ? { array: true } : {}),
    ...(o.requiresArg ? { requiresArg: true } : {}),
  };
}

/** yargs `.options(…)` for a spec's flags (not its positionals): --kebab-case names, the default in the description. */
export function yargsOptions(spec: OptionsSpec): Record<string, YargsOption> {
  return Object.fromEntries(Object.entries(spec).filter(([, o]) => !o.positional).map(([key, o]) => [kebab(key), yargsOption(o)]));
}

/** A spec's positionals and flags declared on a yargs builder, typed as the spec's parsed flags. */
export function withOptions<S extends OptionsSpec>(y: Argv, spec: S): Argv<OptionsOf<S>> {
  let out = y;
  for (const [key, o] of Object.entries(spec)) if (o.positional) out = out.positional(key, yargsOption(o));
  return out.options(yargsOptions(spec)) as unknown as Argv<OptionsOf<S>>;
}

/** The spec's options out of a parsed argv (yargs adds `$0`, `_` and --kebab-case copies): only its own keys, none undefined. */
export function optionValues<S extends OptionsSpec>(spec: S, argv: Record<string, unknown>): OptionsOf<S> {
  return Object.fromEntries(Object.keys(spec).filter((k) => argv[k] !== undefined).map((k) => [k, argv[k]])) as OptionsOf<S>;
}

/** Every flag name of a spec (kebab-case, aliases included) → the spec's key. */
export function flagNames(spec: OptionsSpec): Map<string, string> {
  const names = new Map<string, string>();
  for (const [key, o] of Object.entries(spec)) for (const n of [kebab(key), ...(o.alias ?? [])]) names.set(n, key);
  return names;
}

/** Options a flag's value is given in seconds or MiB, and the stage wants milliseconds or bytes. */
export const msOfSeconds = (s: number | undefined): number | undefined => (s === undefined ? undefined : s * 1000);
export const bytesOfMiB = (mib: number | undefined): number | undefined => (mib === undefined ? undefined : Math.round(mib * 1024 * 1024));

// Options several commands share, written once.
export const BACKEND_OPTION = { type: 'string', describe: 'tensorflow-gpu, tensorflow, wasm or cpu', defaultText: 'best available; or KD_BACKEND' } as const satisfies OptionSpec;
/** a boolean flag, off unless given (--json, --force, …), in the command's own words */
export const flag = <D extends string>(describe: D) => ({ type: 'boolean', describe }) as const satisfies OptionSpec;

/** seconds per teacher request attempt (kd collect, and the rounds of kd onpolicy) */
export const TEACHER_TIMEOUT_SECONDS = 120;

/** The teacher's address, model and key, as collect, eval, onpolicy and doctor name them. */
export const TEACHER_OPTIONS = {
  teacherUrl: { type: 'string', describe: 'OpenAI-compatible base URL of the teacher, e.g. http://127.0.0.1:8000/v1', defaultText: 'OPENAI_BASE_URL, else OpenAI' },
  model: { type: 'string', alias: ['teacher-model'], describe: 'teacher model name' },
  apiKeyEnv: { type: 'string', describe: 'environment variable holding the teacher API key; local servers need none', defaultText: 'OPENAI_API_KEY' },
} as const satisfies OptionsSpec;

/** A USD budget and the prices it is counted in (collect, onpolicy). */
export const PRICE_OPTIONS = {
  priceIn: { type: 'number', describe: 'USD per 1M input tokens', defaultText: 'the price table' },
  priceOut: { type: 'number', describe: 'USD per 1M output tokens', defaultText: 'the price table' },
} as const satisfies OptionsSpec;
