/** kd command lines as text (the README's, `--help` examples): split into words and checked against kd's own flags. */
import type { CommandModule } from 'yargs';
import { checkArgv, commands, subcommands } from '../../src/cli/index.js';

/** Shell-like words: spaces separate, '…' and "…" quote; no expansion. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let cur: string | undefined;
  let lastEnd = -1;
  for (const m of line.matchAll(re)) {
    const piece = m[1] ?? m[2] ?? m[3];
    // "a"b or --x="y": pieces with no space between are one word
    if (cur !== undefined && m.index === lastEnd) cur += piece;
    else {
      if (cur !== undefined) words.push(cur);
      cur = piece;
    }
    lastEnd = m.index + m[0].length;
  }
  if (cur !== undefined) words.push(cur);
  return words;
}

/** The command path of `kd WORDS…`: ['train'], or ['dataset', 'build'] for a nested command. */
export function commandPath(words: string[]): string[] {
  return words[0] in subcommands ? words.slice(0, 2) : words.slice(0, 1);
}

/** Parse `kd WORDS…` with the command's strict yargs definition; resolves to the error message, or undefined when it parses. */
export async function argvProblem(words: string[]): Promise<string | undefined> {
  const path = commandPath(words);
  try {
    await checkArgv(path, words.slice(path.length));
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Every leaf command with its path: the top-level ones, and the subcommands of the nested ones. */
export function leafCommands(): { path: string[]; cmd: CommandModule<any, any> }[] {
  const name = (c: CommandModule) => String(c.command).split(' ')[0];
  return commands.flatMap((c) => name(c) in subcommands
    ? subcommands[name(c)].map((s) => ({ path: [name(c), name(s)], cmd: s }))
    : [{ path: [name(c)], cmd: c }]);
}

/** The `.example(...)` lines a command's builder declares, read by running the builder on a recorder. */
export function examplesOf(cmd: CommandModule): string[] {
  const found: string[] = [];
  const recorder: unknown = new Proxy({}, {
    get: (_, key) => key === 'example' ? (line: string) => { found.push(line); return recorder; } : () => recorder,
  });
  (cmd.builder as (y: unknown) => unknown)(recorder);
  return found;
}
