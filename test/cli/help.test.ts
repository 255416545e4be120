import { describe, expect, it } from 'vitest';
import { REFERENCE_CONFIG } from '../../src/model/config.js';
import { DEFAULT_TRAIN } from '../../src/train/config.js';
import { argvProblem, examplesOf, leafCommands, shellWords } from '../helpers/command-lines.js';
import { kd } from '../helpers/kd.js';
import yargs from 'yargs';
import type { OptionsSpec } from '../../src/core/options.js';
import { kebab } from '../../src/core/names.js';

/** `--help` output as one entry per flag, its wrapped description joined: { '--steps': 'optimizer steps (default 1000) [number]' } */
function helpEntries(help: string): Record<string, string> {
  const entries: Record<string, string> = {};
  let current: string | undefined;
  for (const line of help.split('\nExamples:\n')[0].split('\n')) {
    const m = /^\s+(?:-\w, )?(--[\w-]+)\s+(.*)$/.exec(line);
    if (m) { current = m[1]; entries[current] = m[2]; }
    else if (current && /^\s{10,}\S/.test(line)) entries[current] += ' ' + line.trim();
    else current = undefined;
  }
  return entries;
}

describe('--help', () => {
  it('kd train shows the defaults of the schedule, the batch and the model sizes', () => {
    const r = kd(['train', '--help']);
    expect(r.status).toBe(0);
    const e = helpEntries(r.stdout);
    const want: Record<string, number> = {
      '--steps': DEFAULT_TRAIN.steps, '--batch-size': DEFAULT_TRAIN.batchSize, '--seq-len': REFERENCE_CONFIG.seqLen, '--accum-steps': DEFAULT_TRAIN.accumSteps,
      '--lr': DEFAULT_TRAIN.lr, '--min-lr': DEFAULT_TRAIN.minLr, '--warmup-steps': DEFAULT_TRAIN.warmupSteps, '--weight-decay': DEFAULT_TRAIN.weightDecay,
      '--grad-clip': DEFAULT_TRAIN.gradClip, '--log-every': DEFAULT_TRAIN.logEvery, '--eval-every': DEFAULT_TRAIN.evalEvery, '--eval-batches': DEFAULT_TRAIN.evalBatches,
      '--checkpoint-every': DEFAULT_TRAIN.checkpointEvery, '--seed': DEFAULT_TRAIN.seed,
      '--vocab-size': REFERENCE_CONFIG.vocabSize, '--d-model': REFERENCE_CONFIG.dModel, '--layers': REFERENCE_CONFIG.nLayers, '--heads': REFERENCE_CONFIG.nHeads, '--ffn-mult': REFERENCE_CONFIG.ffnMult,
    };
    for (const [flag, v] of Object.entries(want)) {
      expect(e[flag], flag).toBeDefined();
      const shown = /\(default ([^)]+)\)/.exec(e[flag])?.[1];
      expect(Number(shown), `${flag}: ${e[flag]}`).toBe(v);
    }
  });

  it('every command is built from its option spec, and its --help shows every default the spec names', async () => {
    const commands = leafCommands();
    expect(commands.length).toBeGreaterThanOrEqual(16);
    let defaults = 0;
    for (const { path, cmd } of commands) {
      const spec = (cmd as { options?: OptionsSpec }).options;
      expect(spec, `kd ${path.join(' ')} has no option spec`).toBeDefined();
      const y = yargs([]).scriptName('kd').wrap(null).help(false).version(false);
      (cmd.builder as (y: unknown) => unknown)(y);
      const help = await y.getHelp();
      for (const [key, o] of Object.entries(spec!)) {
        // a default written into the description by hand would not come from the spec
        expect(o.describe, `kd ${path.join(' ')} --${kebab(key)}`).not.toMatch(/\(default\b/);
        const line = help.split('\n').find((l) => new RegExp(`^\\s+-{0,2}${kebab(key)}(?=[\\s,])`).test(l));
        expect(line, `kd ${path.join(' ')}: ${kebab(key)} in --help`).toBeDefined();
        const shown = o.defaultText ?? (o.default === undefined ? undefined : String(o.default));
        if (shown !== undefined) {
          expect(line, `kd ${path.join(' ')} --${kebab(key)}`).toContain(`(default ${shown})`);
          defaults++;
        }
      }
    }
    expect(defaults).toBeGreaterThan(100);
  });

  it('collect, run, doctor, dataset inspect, dataset import and dataset export give examples', () => {
    for (const name of ['collect', 'run', 'doctor', 'dataset inspect', 'dataset import', 'dataset export']) {
      const r = kd([...name.split(' '), '--help']);
      expect(r.status, name).toBe(0);
      const examples = r.stdout.split('\nExamples:\n')[1] ?? '';
      expect(examples, name).toMatch(new RegExp(`^ {2}kd ${name} `, 'm'));
    }
  });

  it('every command\'s examples parse with that command\'s own strict flags', async () => {
    let n = 0;
    for (const { path, cmd } of leafCommands()) {
      for (const ex of examplesOf(cmd)) {
        const words = shellWords(ex);
        expect(words[0], ex).toBe('$0');
        expect(await argvProblem(words.slice(1)), `${path.join(' ')}: ${ex}`).toBeUndefined();
        n++;
      }
    }
    expect(n).toBeGreaterThanOrEqual(15);
    // the check itself: a flag that does not exist is caught
    expect(await argvProblem(shellWords('train --data synthetic --out x --stepz 3'))).toMatch(/Unknown argument: stepz/);
  });

  it('the examples that need no teacher and no earlier stage run as written', () => {
    const doctor = kd(shellWords('doctor --backend cpu --json'));
    expect(doctor.status).toBe(0);
    expect(JSON.parse(doctor.stdout)).toMatchObject({ backend: 'cpu' });
    const run = kd(shellWords('run pipelines/demo.yaml --dry-run'));
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^pipeline demo: ok/);
  });
});
