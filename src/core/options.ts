/**
 * One typed option spec per command (vitest's CLIOptions<Config> is the model): each option written
 * once, with its type, its description and the default the stage applies. From it come the yargs
 * options (src/cli/), the TypeScript type of the parsed flags (OptionsOf), and the keys a pipeline
 * stage's `with:` may use (they are the same flags: src/pipeline/stages.ts turns keys into --kebab-case).
 *
 * Defaults are shown in --help, not applied by yargs: a stage merges defaults, its config file and the
 * flags itself, so a flag left out must stay undefined.
 */
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
}

export type OptionsSpec = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S['type'] extends 'number' ? number : S['type'] extends 'boolean' ? boolean
  : S['choices'] extends readonly (infer C)[] ? C : string;

/** The parsed flags of a spec, camelCase keys: required options present, the others optional. */
export type OptionsOf<S extends OptionsSpec> =
  { [K in keyof S as S[K]['required'] extends true ? K : never]: ValueOf<S[K]> } &
  { [K in keyof S as S[K]['required'] extends true ? never : K]?: ValueOf<S[K]> };

/** yargs `.options(…)` for a spec: --kebab-case flags, the default in the description. */
export function yargsOptions(spec: OptionsSpec): Record<string, { type: OptionSpec['type']; describe: string; demandOption?: boolean; choices?: string[] }> {
  return Object.fromEntries(Object.entries(spec).map(([key, o]) => {
    const shown = o.defaultText ?? (o.default === undefined ? undefined : String(o.default));
    return [kebab(key), {
      type: o.type,
      describe: shown === undefined ? o.describe : `${o.describe} (default ${shown})`,
      ...(o.required ? { demandOption: true } : {}),
      ...(o.choices ? { choices: [...o.choices] } : {}),
    }];
  }));
}
