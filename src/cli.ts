#!/usr/bin/env node
/**
 * kd — knowledge distillation from the command line. Each command lives in src/cli/<name>.ts as a
 * thin yargs module: it parses flags into one typed options object and calls one stage function.
 * Handlers import tfjs lazily so `kd --help` stays fast.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { watchParent } from './cli/child.js';
import { takeProgressFd } from './core/progress.js';
import { isKdError } from './core/errors.js';
import { commands } from './cli/index.js';

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const parser = yargs(argv)
    .scriptName('kd')
    .usage('$0 <command> [options]\n\nDistil a mini student model from a teacher model\'s top-k log-probabilities.')
    .strict()
    .demandCommand(1, 'Give a command; see kd --help.')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    });
  for (const c of commands) parser.command(c);
  try {
    await parser.parseAsync();
  } catch (e) {
    code = reportError(e);
  }
  return code || Number(process.exitCode ?? 0);
}

class UsageError extends Error {}

/** One line for users' mistakes; a stack only for bugs. */
export function reportError(e: unknown): number {
  if (isKdError(e)) {
    process.stderr.write(`kd: ${e.code}: ${e.message}\n`);
    return e.code === 'interrupted' ? 130 : 1; // stopped by SIGINT/SIGTERM, resumable: as a shell reports a Ctrl-C
  }
  if (e instanceof UsageError) {
    process.stderr.write(`kd: ${e.message}\n(see kd --help)\n`);
    return 2;
  }
  process.stderr.write(`kd: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 70;
}

const isEntry = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry || process.argv[1]?.endsWith('/kd') || process.argv[1]?.endsWith('cli.js')) {
  watchParent();
  takeProgressFd();
  main(hideBin(process.argv)).then((code) => {
    process.exitCode = code;
  });
}
