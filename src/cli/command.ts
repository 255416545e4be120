/**
 * A kd command from its option spec: the flags (and positionals) declared from the spec, examples and
 * an epilogue, and a handler that gets only the spec's options, typed. Every command but the nested
 * parents (`kd dataset`, `kd tokenizer`) is one of these, so every --help shows the defaults.
 */
import type { Argv, CommandModule } from 'yargs';
import { type OptionsOf, type OptionsSpec, optionValues, withOptions } from '../core/options.js';

// the handler takes yargs' argv (any: kd's command table holds commands of every spec), the spec's options picked from it
export interface SpecCommand<S extends OptionsSpec> extends CommandModule<object, any> {
  /** the command's option spec (tests read it: every default shown in --help) */
  options: S;
}

export interface CommandDef<S extends OptionsSpec> {
  command: string;
  describe: string;
  options: S;
  /** [command line, what it does] */
  examples?: readonly (readonly [string, string])[];
  epilogue?: string;
  handler: (a: OptionsOf<S>) => void | Promise<void>;
}

export function specCommand<S extends OptionsSpec>(d: CommandDef<S>): SpecCommand<S> {
  return {
    command: d.command,
    describe: d.describe,
    options: d.options,
    builder: (y: Argv) => {
      let b = withOptions(y, d.options);
      for (const [line, what] of d.examples ?? []) b = b.example(line, what);
      return d.epilogue ? b.epilogue(d.epilogue) : b;
    },
    handler: (argv: Record<string, unknown>) => d.handler(optionValues(d.options, argv)),
  };
}

export interface SummaryDef<S extends OptionsSpec, T> extends Omit<CommandDef<S>, 'handler'> {
  /** run the stage (importing it lazily, so --help loads no stage code) and return its summary */
  run: (a: OptionsOf<S>) => T | Promise<T>;
  /** the human form of the summary; --json prints it as JSON */
  format: (s: T, a: OptionsOf<S>) => string;
}

/** The common command: run the stage, print its summary (JSON with --json). */
export function summaryCommand<S extends OptionsSpec, T>(d: SummaryDef<S, T>): SpecCommand<S> {
  const { run, format, ...def } = d;
  return specCommand({ ...def, handler: async (a) => printSummary((a as { json?: boolean }).json, await run(a), (s) => format(s, a)) });
}

/** Print a stage's summary: JSON, or the human form. */
export const printSummary = <T>(json: boolean | undefined, s: T, format: (s: T) => string): void => {
  process.stdout.write((json ? JSON.stringify(s) : format(s)) + '\n');
};
