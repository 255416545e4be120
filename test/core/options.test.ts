import { describe, expect, it } from 'vitest';
import { type OptionsSpec, bytesOfMiB, flagNames, msOfSeconds, optionValues, yargsOptions } from '../../src/core/options.js';
import { checkArgv } from '../../src/cli/index.js';
import { STAGES, closest, toArgv, withProblem } from '../../src/pipeline/stages.js';
import { STAGE_KINDS } from '../../src/schema/pipeline.js';
import { TRAIN_OPTIONS, type TrainArgs } from '../../src/train/options.js';

describe('option specs', () => {
  it('turn into yargs options: --kebab-case, required, choices, the default in the description (not applied)', () => {
    const y = yargsOptions({
      batchSize: { type: 'number', describe: 'sequences', default: 16 },
      data: { type: 'string', describe: 'where', required: true },
      divergence: { type: 'string', describe: 'which', choices: ['a', 'b'], default: 'a' },
      workers: { type: 'number', describe: 'threads', defaultText: 'one per core' },
      student: { type: 'string', describe: 'who', array: true, alias: ['pupil'], requiresArg: true },
      dir: { type: 'string', describe: 'where', positional: true },
    });
    expect(y).toEqual({
      'batch-size': { type: 'number', describe: 'sequences (default 16)' },
      data: { type: 'string', describe: 'where', demandOption: true },
      divergence: { type: 'string', describe: 'which (default a)', choices: ['a', 'b'] },
      workers: { type: 'number', describe: 'threads (default one per core)' },
      student: { type: 'string', describe: 'who', array: true, alias: ['pupil'], requiresArg: true },
    });
  });

  it('pick only their own options out of a parsed argv, and convert seconds and MiB', () => {
    const spec = { batchSize: { type: 'number', describe: 'b' }, json: { type: 'boolean', describe: 'j' } } satisfies OptionsSpec;
    expect(optionValues(spec, { _: [], $0: 'kd', batchSize: 4, 'batch-size': 4, json: undefined })).toEqual({ batchSize: 4 });
    expect([msOfSeconds(2.5), msOfSeconds(undefined), bytesOfMiB(1.5), bytesOfMiB(undefined)]).toEqual([2500, undefined, 1572864, undefined]);
    expect(flagNames({ model: { type: 'string', describe: 'm', alias: ['teacher-model'] } })).toEqual(new Map([['model', 'model'], ['teacher-model', 'model']]));
  });

  const sample = (spec: OptionsSpec, style: (k: string) => string) => Object.fromEntries(Object.entries(spec).map(([k, o]) => [style(k),
    o.type === 'boolean' ? true : o.type === 'number' ? 1 : o.choices ? o.choices[0] : o.array ? ['x'] : 'x']));
  const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

  it('every pipeline stage kind: each option of its spec is a key `with:` may use, in any casing, and a flag its command takes', async () => {
    for (const kind of STAGE_KINDS) {
      const { options, command, inputs, out, resume, force } = STAGES[kind];
      for (const style of [snake, (k: string) => k]) {
        const all = sample(options, style);
        expect(withProblem(kind, all), kind).toBeUndefined();
        await expect(checkArgv(command, toArgv(all)), kind).resolves.toBeUndefined();
      }
      // the flags the runner reads (inputs hashed into the key, the output, resume and force) are the spec's
      for (const f of [...inputs, out, ...(resume ? [resume] : []), ...(force ? [force] : [])]) expect(flagNames(options).has(f), `${kind}: --${f}`).toBe(true);
    }
    // a renamed flag's old name still works: collect's teacher_model is model
    expect(withProblem('collect', { teacher_model: 'm', input: 'i', out: 'o' })).toBeUndefined();
    // a flag that may be repeated takes a list; one that may not is told so
    expect(withProblem('collect', { model: 'm', input: 'i', out: 'o', select: 'disagreement', student: ['a', 'b'], budget_tokens: 9 })).toBeUndefined();
    expect(withProblem('collect', { model: ['m', 'n'], input: 'i', out: 'o' })?.message).toBe('with.model: takes one value, not a list');
    expect(withProblem('train', { data: 'synthetic', out: 'o', steps: '${env.STEPS}' })?.message).toMatch(/takes a number/);
    expect(withProblem('train', { data: 'synthetic', out: 'o', steps: '200' })).toBeUndefined(); // a substituted number is a string
  });

  it('suggest the nearest key only when it is a slip', () => {
    expect(closest('stepz', ['steps', 'seed'])).toBe('steps');
    expect(closest('vocab-sise', ['vocab-size', 'val-fraction'])).toBe('vocab-size');
    expect(closest('colour', ['steps', 'seed', 'out'])).toBeUndefined();
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
