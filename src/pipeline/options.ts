/** `kd run`'s options, once: the spec its flags and types come from. */
import { type OptionsOf, type OptionsSpec, flag } from '../core/options.js';

export const RUN_OPTIONS = {
  pipeline: { type: 'string', positional: true, required: true, describe: 'pipelines/NAME.yaml' },
  from: { type: 'string', describe: 'start at this stage (name or kind)', defaultText: 'the first' },
  to: { type: 'string', describe: 'stop after this stage', defaultText: 'the last' },
  force: flag('rerun stages even when up to date'),
  dryRun: flag('print the plan without running anything'),
  json: flag('print one JSON summary for CI'),
} as const satisfies OptionsSpec;

export type RunArgs = OptionsOf<typeof RUN_OPTIONS>;
