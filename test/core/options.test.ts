import { describe, expect, it } from 'vitest';
import { yargsOptions } from '../../src/core/options.js';
import { checkArgv } from '../../src/cli/index.js';
import { toArgv } from '../../src/pipeline/stages.js';
import { TRAIN_OPTIONS, type TrainArgs } from '../../src/train/options.js';

describe('option specs', () => {
  it('turn into yargs options: --kebab-case, required, choices, the default in the description (not applied)', () => {
    const y = yargsOptions({
      batchSize: { type: 'number', describe: 'sequences', default: 16 },
      data: { type: 'string', describe: 'where', required: true },
      divergence: { type: 'string', describe: 'which', choices: ['a', 'b'], default: 'a' },
      workers: { type: 'number', describe: 'threads', defaultText: 'one per core' },
    });
    expect(y).toEqual({
      'batch-size': { type: 'number', describe: 'sequences (default 16)' },
      data: { type: 'string', describe: 'where', demandOption: true },
      divergence: { type: 'string', describe: 'which (default a)', choices: ['a', 'b'] },
      workers: { type: 'number', describe: 'threads (default one per core)' },
    });
  });

  it('kd train: every option of the spec is a flag of the command and a key a pipeline stage may use', async () => {
    // a pipeline's `with:` keys (snake_case or camelCase) become exactly the spec's flags; all of them pass kd train's strict check
    const all = Object.fromEntries(Object.entries(TRAIN_OPTIONS).map(([k, o]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
      o.type === 'boolean' ? true : o.type === 'number' ? 1 : 'choices' in o ? o.choices[0] : 'x'])) as Record<string, unknown>;
    await expect(checkArgv(['train'], toArgv(all))).resolves.toBeUndefined();
    await expect(checkArgv(['train'], toArgv({ ...all, stepz: 3 }))).rejects.toThrow(/Unknown argument: stepz/);
    // the type follows the spec: required flags are required, choices are the only strings allowed
    const a: TrainArgs = { data: 'synthetic', out: 'o', divergence: 'jsd', missingMass: 'tail' };
    expect(a.divergence).toBe('jsd');
    // @ts-expect-error: not one of the spec's choices (npm test type-checks, so this line fails the suite if the type loosens)
    const b: TrainArgs = { data: 'synthetic', out: 'o', divergence: 'kl' };
    expect(b.out).toBe('o');
  });
});
