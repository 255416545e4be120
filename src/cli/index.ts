import type { CommandModule } from 'yargs';
import { collectCommand } from './collect.js';
import { exportCommand, pruneCommand, quantizeCommand } from './compress.js';
import { buildCommand, datasetCommand, exportDatasetCommand, importCommand, inspectCommand, mergeCommand } from './dataset.js';
import { doctorCommand } from './doctor.js';
import { evalCommand } from './eval.js';
import { onPolicyCommand } from './onpolicy.js';
import { runCommandWith } from './run.js';
import { serveCommand } from './serve.js';
import { tokenizerCommand, tokenizerTrainCommand } from './tokenizer.js';
import { trainCommand } from './train.js';
import { lockingOut } from '../core/lock.js';
import { checkArgvIn } from './validate.js';

const runCommand = runCommandWith((command, argv) => checkArgv(command, argv));

/** Every kd command, in the order `kd --help` lists them: the pipeline, then its stages, then tools. */
export const commands: CommandModule<any, any>[] = [runCommand, lockingOut('kd collect', collectCommand), datasetCommand, tokenizerCommand, lockingOut('kd train', trainCommand), lockingOut('kd onpolicy', onPolicyCommand),
  lockingOut('kd prune', pruneCommand), lockingOut('kd quantize', quantizeCommand), lockingOut('kd export', exportCommand), lockingOut('kd eval', evalCommand), serveCommand, doctorCommand];

/** Subcommands of the nested commands, for validating argv without running anything (src/cli/validate.ts). */
export const subcommands: Record<string, CommandModule<any, any>[]> = { tokenizer: [tokenizerTrainCommand], dataset: [buildCommand, inspectCommand, importCommand, mergeCommand, exportDatasetCommand] };

/** Checks a kd command line against the command's own yargs definition without running it (src/cli/validate.ts). */
export function checkArgv(command: string[], argv: string[]): Promise<void> {
  return checkArgvIn({ commands, subcommands }, command, argv);
}
