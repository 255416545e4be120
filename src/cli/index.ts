import type { CommandModule } from 'yargs';
import { collectCommand } from './collect.js';
import { exportCommand, pruneCommand, quantizeCommand } from './compress.js';
import { doctorCommand } from './doctor.js';
import { trainCommand } from './train.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [collectCommand, trainCommand, pruneCommand, quantizeCommand, exportCommand, doctorCommand];
