import type { CommandModule } from 'yargs';
import { collectCommand } from './collect.js';
import { doctorCommand } from './doctor.js';
import { serveCommand } from './serve.js';
import { trainCommand } from './train.js';
import { tokenizerCommand, tokenizerTrainCommand } from './tokenizer.js';
import { runCommand } from './run.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [runCommand, collectCommand, tokenizerCommand, trainCommand, serveCommand, doctorCommand];

/** Subcommands of the nested commands, for validating pipeline stages without running anything. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const subcommands: Record<string, CommandModule<any, any>[]> = { tokenizer: [tokenizerTrainCommand] };
