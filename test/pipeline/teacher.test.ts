import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashInput } from '../../src/pipeline/hash.js';
import { loadPipeline } from '../../src/pipeline/load.js';
import { runPipeline } from '../../src/pipeline/run.js';
import { checkArgv } from '../../src/cli/index.js';
import { startTeacherServer } from '../collect/teacher-server.js';
import { KD_ARGS, ROOT } from '../helpers/kd.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-teacher-'));
const write = (dir: string, name: string, text: string) => { const f = path.join(dir, name); fs.writeFileSync(f, text); return f; };

const withTeacher = (extra = '') => `version: 1
name: refs
teacher:
  url: \${env.KD_T_URL:-https://api.example.com/v1}
  model: \${env.KD_T_MODEL}
${extra}stages:
  - stage: collect
    with:
      teacher_url: \${teacher.url}
      model: "\${teacher.model}"
      input: in.csv
      out: raw-\${env.KD_T_MODEL}
`;

describe('a pipeline\'s teacher in one place: ${env.…} and ${teacher.…}', () => {
  it('resolves the teacher block from the environment (with shell-style defaults), then the stages from it', () => {
    const f = write(tmp(), 'p.yaml', withTeacher());
    const p = loadPipeline(f, { KD_T_MODEL: 'm1' }).pipeline;
    expect(p.teacher).toEqual({ url: 'https://api.example.com/v1', model: 'm1' });
    expect(p.stages[0].with).toMatchObject({ teacher_url: 'https://api.example.com/v1', model: 'm1', out: 'raw-m1' });
    expect(loadPipeline(f, { KD_T_MODEL: 'm1', KD_T_URL: 'http://127.0.0.1:1/v1' }).pipeline.stages[0].with.teacher_url).toBe('http://127.0.0.1:1/v1');
    // an empty variable takes the default too, as ${VAR:-x} does in the shell
    expect(loadPipeline(f, { KD_T_MODEL: 'm1', KD_T_URL: '' }).pipeline.teacher!.url).toBe('https://api.example.com/v1');
  });

  it('bad references are one line naming the file, line and field', () => {
    const dir = tmp();
    const f = write(dir, 'p.yaml', withTeacher());
    expect(() => loadPipeline(f, {})).toThrow(`${f}:5: teacher.model: \${env.KD_T_MODEL}: the environment variable KD_T_MODEL is not set (set it, or give a default: \${env.KD_T_MODEL:-VALUE})`);
    const noBlock = write(dir, 'q.yaml', 'version: 1\nname: q\nstages:\n  - stage: collect\n    with: { teacher_url: "${teacher.url}", model: m, input: i, out: o }\n');
    expect(() => loadPipeline(noBlock, {})).toThrow(`${noBlock}:5: stages[0].with.teacher_url: \${teacher.url}: this pipeline has no top-level "teacher:" block`);
    const unknown = write(dir, 'r.yaml', withTeacher().replace('${teacher.url}', '${teacher.key}'));
    expect(() => loadPipeline(unknown, { KD_T_MODEL: 'm' })).toThrow(/:9: stages\[0\]\.with\.teacher_url: \$\{teacher\.key\}: teacher has no "key" \(it has url, model\)$/);
    const badKey = write(dir, 's.yaml', withTeacher().replace('  model:', '  token: x\n  model:'));
    expect(() => loadPipeline(badKey, { KD_T_MODEL: 'm' })).toThrow(/s\.yaml:5: teacher\.token: Unrecognized key/);
  });

  it('pipelines/openai.yaml against a test teacher: --dry-run plans every stage with that teacher, collect runs from it, a new teacher reruns it', async () => {
    const teacher = await startTeacherServer();
    try {
      const dir = tmp();
      fs.copyFileSync(path.join(ROOT, 'pipelines/openai.yaml'), path.join(dir, 'openai.yaml'));
      fs.mkdirSync(path.join(dir, 'datasets'));
      fs.copyFileSync(path.join(ROOT, 'datasets/demo-prompts.csv'), path.join(dir, 'datasets/demo-prompts.csv'));
      const env = { ...process.env, KD_TEACHER_URL: teacher.url, KD_TEACHER_MODEL: 'test-teacher', OPENAI_API_KEY: '', KD_BACKEND: '' };
      const run = (args: string[], e: NodeJS.ProcessEnv = env) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, [...KD_ARGS, 'run', 'openai.yaml', ...args], { cwd: dir, env: e });
        let stdout = '', stderr = '';
        c.stdout.on('data', (d) => (stdout += d));
        c.stderr.on('data', (d) => (stderr += d));
        c.on('exit', (code) => resolve({ code, stdout, stderr }));
      });

      const text = await run(['--dry-run']);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout.split('\n').slice(1, 3)).toEqual([
        expect.stringMatching(/^ {2}planned +collect +0\.0s {2}\(first run\)$/), expect.stringMatching(/^ {2}planned +dataset +0\.0s {2}\(collect would rerun\)$/)]);
      const plan = await run(['--dry-run', '--json']);
      expect(plan.code, plan.stderr).toBe(0);
      const stages = JSON.parse(plan.stdout).stages as { name: string; status: string; reason: string }[];
      expect(stages.map((s) => [s.name, s.status, s.reason])).toEqual([
        ['collect', 'planned', 'first run'], ['dataset', 'planned', 'collect would rerun'], ['train', 'planned', 'dataset would rerun'],
        ['train-baseline', 'planned', 'dataset would rerun'], ['eval', 'planned', 'dataset would rerun']]);
      // the teacher set once reaches both stages that talk to it; nothing points elsewhere
      const commands = plan.stderr.split('\n').filter((l) => l.startsWith('- '));
      for (const name of ['collect', 'eval']) expect(commands.find((l) => l.startsWith(`- ${name}:`))).toContain(`--teacher-url ${teacher.url} --model test-teacher`);
      expect(plan.stderr).not.toMatch(/openai\.com|gpt-4o/);
      expect(teacher.total()).toBe(0); // a dry run calls nothing

      const collected = await run(['--to', 'collect', '--json']);
      expect(collected.code, collected.stderr).toBe(0);
      expect(JSON.parse(collected.stdout).stages[0]).toMatchObject({ status: 'ran', summary: { model: 'test-teacher', stopReason: 'complete' } });
      expect(teacher.total()).toBeGreaterThan(0);

      const again = JSON.parse((await run(['--dry-run', '--json'])).stdout).stages as { status: string; reason: string }[];
      expect(again.slice(0, 2).map((s) => [s.status, s.reason])).toEqual([['skipped', 'up to date'], ['planned', 'first run']]);
      const other = JSON.parse((await run(['--dry-run', '--json'], { ...env, KD_TEACHER_MODEL: 'another-teacher' })).stdout).stages as { status: string; reason: string }[];
      expect(other[0]).toMatchObject({ status: 'planned', reason: 'inputs or parameters changed' });
    } finally {
      await teacher.close();
    }
  });
});

describe('--dry-run and stages downstream of one that would rerun', () => {
  it('a stage whose input an earlier planned stage would rewrite is planned, not "up to date"', async () => {
    const dir = tmp();
    const pipe = (vocab: number) => `version: 1
name: chain
stages:
  - stage: tokenizer
    with: { corpus: sotu, vocab_size: ${vocab}, out: ${dir}/tok.json }
  - name: lm
    stage: train
    with: { data: corpus:sotu, tokenizer: ${dir}/tok.json, alpha: 1, out: ${dir}/lm, steps: 1, d_model: 8, heads: 2, layers: 1, seq_len: 8, batch_size: 2, workers: 1, backend: cpu }
  - name: other
    stage: train
    with: { data: synthetic, out: ${dir}/other, steps: 1, vocab_size: 16, d_model: 8, heads: 2, layers: 1, seq_len: 8, batch_size: 2, workers: 1, backend: cpu }
`;
    const f = write(dir, 'chain.yaml', pipe(280));
    const quiet = { log: () => {}, checkArgv };
    expect((await runPipeline(f, quiet)).ok).toBe(true);
    expect((await runPipeline(f, { ...quiet, dryRun: true })).stages.map((s) => s.status)).toEqual(['skipped', 'skipped', 'skipped']);
    write(dir, 'chain.yaml', pipe(300)); // the tokenizer would rerun: so would lm, which reads it; other does not
    const r = await runPipeline(f, { ...quiet, dryRun: true });
    expect(r.stages.map((s) => [s.name, s.status, s.reason])).toEqual([
      ['tokenizer', 'planned', 'inputs or parameters changed'], ['lm', 'planned', 'tokenizer would rerun'], ['other', 'skipped', 'up to date']]);
  });

  it('eval\'s NAME=PATH students are inputs by content: a retrained student reruns eval', () => {
    const dir = tmp();
    fs.mkdirSync(path.join(dir, 'run'));
    write(path.join(dir, 'run'), 'checkpoint.kdc', 'one');
    const before = hashInput(`kd=${dir}/run`);
    expect(before).toBe(hashInput(`${dir}/run`));
    write(path.join(dir, 'run'), 'checkpoint.kdc', 'two');
    expect(hashInput(`kd=${dir}/run`)).not.toBe(before);
    expect(hashInput('kd=nowhere')).toBe('spec:kd=nowhere');
  });
});
