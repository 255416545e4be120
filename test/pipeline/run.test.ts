import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPipeline } from '../../src/pipeline/load.js';
import { runPipeline } from '../../src/pipeline/run.js';
import { checkArgv } from '../../src/cli/index.js';
import { flagValues, toArgv } from '../../src/pipeline/stages.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-pipe-'));
const write = (dir: string, name: string, text: string) => { const f = path.join(dir, name); fs.writeFileSync(f, text); return f; };
const quiet = { log: () => {}, checkArgv };

const tiny = (dir: string, steps = 2) => `version: 1
name: tiny
stages:
  - stage: tokenizer
    with: { corpus: sotu, vocab_size: 280, out: ${dir}/tok.json }
  - name: lm
    stage: train
    with:
      data: corpus:sotu
      tokenizer: ${dir}/tok.json
      alpha: 1
      out: ${dir}/lm
      steps: ${steps}
      d_model: 8
      heads: 2
      layers: 1
      seq_len: 8
      batch_size: 2
      workers: 1
      backend: cpu
`;

describe('pipeline files', () => {
  it('turn parameters into the command-line flags users would type', () => {
    expect(toArgv({ vocab_size: 3, dModel: 4, force: true, student: ['a', 'b'], skip: null })).toEqual(['--vocab-size', '3', '--d-model', '4', '--force', '--student', 'a', '--student', 'b']);
  });

  it('values that start with "-" stay values (--flag=value), and are read back as such', async () => {
    expect(toArgv({ student: ['--force', 'a'], system: '-v' })).toEqual(['--student=--force', '--student', 'a', '--system=-v']);
    expect(flagValues(toArgv({ student: ['--force', 'a'] }), 'student')).toEqual(['--force', 'a']);
    const dir = tmp();
    const lines: string[] = [];
    const g = write(dir, 'q.yaml', `version: 1\nname: dash2\nstages:\n  - stage: eval\n    with: { data: synthetic, student: ["--force"], out: ${dir}/r }\n`);
    const r2 = await runPipeline(g, { log: (l) => lines.push(l), dryRun: true, checkArgv });
    expect(r2.stages[0]).toMatchObject({ status: 'planned', reason: 'first run' }); // before: "Unknown argument" / no --student value
    expect(lines.at(-1)).toContain('--student=--force');
  });

  it('errors name the file, the line and the field', async () => {
    const dir = tmp();
    const cases: [string, RegExp][] = [
      ['version: 1\nname: x\nstages:\n  - stage: train\n    with: { data: synthetic, out: o }\ncolour: red\n', /x?\.yaml:6: colour: Unrecognized key/],
      ['version: 1\nname: x\nstages:\n  - stage: distil\n', /\.yaml:4: stages\[0\]\.stage: /],
      ['version: 2\nname: x\nstages: []\n', /\.yaml:1: version/],
      // with: is checked against the stage kind's option spec before anything runs: unknown keys (with the nearest one), then values
      ['version: 1\nname: x\nstages:\n  - stage: train\n    with:\n      data: synthetic\n      out: o\n      stepz: 3\n', /\.yaml:8: stages\[0\] \(train, kd train\): with: unknown key "stepz" \(kd train has no --stepz\); did you mean "steps"\?$/],
      ['version: 1\nname: x\nstages:\n  - name: build\n    stage: dataset\n    with: { from: r, out: d, vocab_sise: 512 }\n', /\.yaml:6: stages\[0\] \(build, kd dataset build\): with: unknown key "vocab_sise" .*did you mean "vocab_size"\?$/],
      ['version: 1\nname: x\nstages:\n  - stage: eval\n    with: { data: d, student: [s], out: r, batchSise: 2 }\n', /did you mean "batchSize"\?$/],
      ['version: 1\nname: x\nstages:\n  - stage: prune\n    with: { checkpoint: c, out: o, data: d, method: heads, sparsity: 0.5, colour: red }\n', /\(prune, kd prune\): with: unknown key "colour" \(kd prune has no --colour\); see kd prune --help for its options$/],
      ['version: 1\nname: x\nstages:\n  - stage: train\n    with:\n      data: synthetic\n      out: o\n      divergence: kl\n', /\.yaml:8: stages\[0\] \(train, kd train\): with\.divergence: takes one of forward-kl, .*not "kl"$/],
      ['version: 1\nname: x\nstages:\n  - stage: train\n    with: { data: synthetic, out: o, steps: many }\n', /with\.steps: takes a number, not "many"$/],
      ['version: 1\nname: x\nstages:\n  - stage: train\n    with: { data: synthetic, out: o, resume: "yes" }\n', /with\.resume: takes true or false, not "yes"$/],
      ['version: 1\nname: x\nstages:\n  - stage: train\n    with: { data: synthetic, out: [o, p] }\n', /with\.out: takes one value, not a list$/],
      ['version: 1\nname: x\nstages:\n  - stage: train\n    with: { data: synthetic, out: o }\n  - stage: train\n    with: { data: synthetic, out: p }\n', /\.yaml:6: stages\[1\]: a second stage named "train"/],
      ['version: 1\nname: x\nstages:\n  - stage: train\n    with: { data: "${services.t.url}", out: o }\n', /unknown service "t"/],
      ['version: 1\nname: [x\n', /\.yaml:\d+: YAML syntax error/],
    ];
    for (const [text, re] of cases) {
      const f = write(dir, 'p.yaml', text);
      let msg = '';
      try { await runPipeline(f, { ...quiet, dryRun: true }); } catch (e) { msg = (e as Error).message; }
      expect(msg, text).toMatch(re);
      expect(msg.split('\n')).toHaveLength(1);
    }
    expect(() => loadPipeline(path.join(dir, 'none.yaml'))).toThrow(/cannot read pipeline file/);
  });

  it('runs stages, skips what is up to date, reruns what changed, and records manifests', async () => {
    const dir = tmp();
    const f = write(dir, 'tiny.yaml', tiny(dir));
    const r1 = await runPipeline(f, quiet);
    expect(r1.ok).toBe(true);
    expect(r1.stages.map((s) => s.status)).toEqual(['ran', 'ran']);
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'lm', 'kd-stage.json'), 'utf8'));
    expect(m).toMatchObject({ format: 'kd-stage', stage: 'lm', kind: 'train', status: 'done', summary: { steps: 2 } });
    expect(m.command.slice(0, 2)).toEqual(['kd', 'train']);
    expect(Object.keys(m.inputs)).toContain(`tokenizer=${dir}/tok.json`);
    expect(fs.existsSync(path.join(dir, 'tok.json.kd-stage.json'))).toBe(true);

    const r2 = await runPipeline(f, quiet);
    expect(r2.stages.map((s) => s.status)).toEqual(['skipped', 'skipped']);

    write(dir, 'tiny.yaml', tiny(dir, 3)); // a parameter of the second stage changed
    const r3 = await runPipeline(f, quiet);
    expect(r3.stages.map((s) => [s.status, s.reason])).toEqual([['skipped', 'up to date'], ['ran', 'inputs or parameters changed']]);
    expect(r3.stages[1].summary).toMatchObject({ steps: 3 });

    // the output changed since the manifest was written (DVC's check): not up to date, even though the directory exists
    fs.rmSync(path.join(dir, 'lm', 'checkpoint.kdc'));
    const gone = await runPipeline(f, quiet);
    expect(gone.stages.map((s) => [s.status, s.reason])).toEqual([['skipped', 'up to date'], ['ran', 'outputs changed or missing']]);
    expect(fs.existsSync(path.join(dir, 'lm', 'checkpoint.kdc'))).toBe(true);
    fs.appendFileSync(path.join(dir, 'tok.json'), ' '); // an output file edited
    expect((await runPipeline(f, { ...quiet, dryRun: true })).stages[0]).toMatchObject({ status: 'planned', reason: 'outputs changed or missing' });
    expect((await runPipeline(f, { ...quiet, to: 'tokenizer' })).stages[0].status).toBe('ran');

    const r4 = await runPipeline(f, { ...quiet, force: true, from: 'lm', dryRun: true });
    expect(r4.stages.map((s) => [s.name, s.status, s.reason])).toEqual([['lm', 'planned', 'forced']]);
    await expect(runPipeline(f, { ...quiet, to: 'nope' })).rejects.toThrow(/--to nope: .* has no such stage/);
  });

  it('resumes an interrupted stage and reports a failed one', async () => {
    const dir = tmp();
    const steps = 600;
    const f = write(dir, 'tiny.yaml', tiny(dir, steps).replace('      backend: cpu\n', '      backend: cpu\n      checkpoint_every: 1\n'));
    await runPipeline(f, { ...quiet, to: 'tokenizer' });
    // interrupt the train stage once it has written its first checkpoint, as Ctrl-C on kd run would
    const ckpt = path.join(dir, 'lm', 'checkpoint.kdc');
    const interrupts = (stop: (sig: NodeJS.Signals) => void) => {
      const t = setInterval(() => { if (fs.existsSync(ckpt)) { clearInterval(t); stop('SIGINT'); } }, 20);
      return () => clearInterval(t);
    };
    const r1 = await runPipeline(f, { ...quiet, from: 'lm', interrupts });
    expect(r1).toMatchObject({ ok: false, interrupted: 'SIGINT' });
    expect(r1.stages[0]).toMatchObject({ name: 'lm', status: 'failed', error: 'kd train exited with code 130' });
    expect(fs.existsSync(path.join(dir, 'lm', 'kd-stage.json'))).toBe(false); // not done: no stage manifest
    const plan = await runPipeline(f, { ...quiet, dryRun: true });
    expect(plan.stages[1]).toMatchObject({ status: 'planned', reason: 'resuming an interrupted run' });
    // the rerun continues from the checkpoint the interrupted run wrote, and finishes
    const r2 = await runPipeline(f, { ...quiet, from: 'lm' });
    expect(r2.ok).toBe(true);
    expect(r2.stages[0]).toMatchObject({ status: 'ran', reason: 'resuming an interrupted run' });
    const summary = r2.stages[0].summary as { startStep: number; steps: number };
    expect(summary.startStep).toBeGreaterThan(0);
    expect(summary.startStep).toBeLessThan(steps);
    expect(summary.steps).toBe(steps);
    expect((await runPipeline(f, quiet)).stages.map((s) => s.status)).toEqual(['skipped', 'skipped']);

    const bad = write(dir, 'bad.yaml', `version: 1\nname: bad\nstages:\n  - stage: train\n    with: { data: ${dir}/no-such-dataset, out: ${dir}/x, backend: cpu }\n`);
    const failed = await runPipeline(bad, quiet);
    expect(failed.ok).toBe(false);
    expect(failed.stages[0]).toMatchObject({ status: 'failed', error: 'kd train exited with code 1' });
  });
});
