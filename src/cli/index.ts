import type { CommandModule } from 'yargs';
import { collectCommand } from './collect.js';
import { datasetCommand } from './dataset.js';
import { doctorCommand } from './doctor.js';
import { trainCommand } from './train.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [collectCommand, datasetCommand, trainCommand, doctorCommand];
