/**
 * Check a kd command line against the command's own yargs definition (strict: unknown flags, missing
 * required ones, bad choices) without running its handler: the same checks a user gets. Used for
 * pipeline stages before anything runs, and to keep the README's command lines honest.
 */
import yargs, { type CommandModule } from 'yargs';

/** kd's commands (src/cli/index.ts), and the subcommands of the nested ones. */
export interface CommandTable {
  commands: CommandModule<any, any>[];
  subcommands: Record<string, CommandModule<any, any>[]>;
}

/**
 * `command`: the command path, e.g. ['train'] or ['dataset', 'build'], looked up in `table`. Throws an
 * Error with yargs' message. (src/cli/index.ts binds it to kd's own commands as checkArgv.)
 */
export async function checkArgvIn(table: CommandTable, command: string[], argv: string[]): Promise<void> {
  const { commands, subcommands } = table;
  const name = (c: CommandModule) => String(c.command).split(' ')[0];
  // the leaf command module (nested commands such as `tokenizer train` are looked up one level down)
  const cmd = command.length === 1 ? commands.find((c) => name(c) === command[0]) : subcommands[command[0]]?.find((c) => name(c) === command[1]);
  if (!cmd) throw new Error(`this kd has no "${command.join(' ')}" command`);
  let failure: string | undefined;
  const y = yargs([...command.slice(-1), ...argv]).scriptName('kd').strict().exitProcess(false).help(false).version(false)
    .fail((msg, err) => { failure = msg ?? err?.message ?? 'invalid arguments'; })
    .command({ ...cmd, handler: () => {} } as CommandModule);
  await y.parseAsync();
  if (failure) throw new Error(failure);
}
