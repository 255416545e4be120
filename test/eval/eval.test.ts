import { kd as runKd } from '../helpers/kd.js';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { evalStudents, type EvalOptions } from '../../src/eval/eval.js';
import { loadStudent } from '../../src/eval/load.js';
import { generate } from '../../src/eval/student.js';
import { nextTokenLogProbs } from '../../src/model/gpt.js';
import { startTeacherServer } from '../collect/teacher-server.js';
import { makeStudents, type Students } from './fixtures.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-'));
let dir: string;
let s: Students;
// small everywhere: the machine is shared
const small = (out: string, over: Partial<EvalOptions> = {}): EvalOptions => ({
  data: 'synthetic', students: [s.fp32, s.int8, s.pruned], out, batches: 2, batchSize: 4, samples: 2, genTokens: 6, promptTokens: 4,
  latencySteps: 3, latencyWarmup: 1, latencyContext: 8, ...over,
});

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = tmp();
  s = await makeStudents(dir, { trainSteps: 30 });
});

/** A loopback port with nothing listening: bind, read the port, close. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('loadStudent', () => {
  it('dequantizes int8 and measures size, sparsity and bits', () => {
    const a = loadStudent(s.fp32), q = loadStudent(s.int8), p = loadStudent(s.pruned);
    try {
      expect([a.kind, q.kind, p.kind]).toEqual(['fp32', 'int8', 'pruned']);
      expect(a.size.params).toBe(q.size.params);
      expect(a.size.bits).toBe(32);
      expect(q.size.bits).toBeGreaterThan(8);
      expect(q.size.bits).toBeLessThan(12); // int8 + per-channel scales + fp32 LayerNorms: a lot for d = 16
      expect(a.size.bytesOnDisk).toBeGreaterThan(a.size.weightBytes * 2); // the training checkpoint holds AdamW moments too
      expect(p.size.sparsity).toBeGreaterThan(0.45);
      expect(a.size.sparsity).toBe(0);
      const wa = a.model.params.get('h0.mlp.fc')!.dataSync(), wq = q.model.params.get('h0.mlp.fc')!.dataSync();
      const maxAbs = Math.max(...Array.from(wa, Math.abs));
      for (let i = 0; i < wa.length; i++) expect(Math.abs(wa[i] - wq[i])).toBeLessThanOrEqual(maxAbs / 127 / 2 + 1e-7);
    } finally {
      for (const x of [a, q, p]) for (const v of x.model.params.values()) v.dispose();
    }
  });
});

describe('generate', () => {
  it('greedy follows the argmax; seeded sampling repeats for a seed', () => {
    const { model } = loadStudent(s.fp32);
    try {
      const prompt = [1, 2, 3];
      const greedy = generate(model, prompt, { maxNew: 3, temperature: 0, seed: 1 });
      const first = tf.tidy(() => tf.argMax(nextTokenLogProbs(model, tf.tensor2d([prompt], [1, 3], 'int32')), 1).dataSync()[0]);
      expect(greedy[0]).toBe(first);
      expect(generate(model, prompt, { maxNew: 3, temperature: 0, seed: 9 })).toEqual(greedy);
      const a = generate(model, prompt, { maxNew: 8, temperature: 1.5, seed: 4 });
      expect(generate(model, prompt, { maxNew: 8, temperature: 1.5, seed: 4 })).toEqual(a);
      expect(a.every((t) => t >= 0 && t < model.config.vocabSize)).toBe(true);
      // longer than seqLen: the context window slides instead of failing
      expect(generate(model, Array(20).fill(1), { maxNew: 2, temperature: 0, seed: 1 })).toHaveLength(2);
    } finally {
      for (const v of model.params.values()) v.dispose();
    }
  });
});

describe('evalStudents', () => {
  it('scores fp32, int8 and pruned side by side and writes report.json and a self-contained index.html', async () => {
    const out = path.join(tmp(), 'run');
    const { report, failures } = await evalStudents(small(out, { cpuUsdPerHour: 0.05 }));
    expect(failures).toEqual([]);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['run']); // no temp dir left behind
    expect(JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(report)));
    expect(report.students.map((x) => [x.name, x.kind])).toEqual([['fp32', 'fp32'], ['int8', 'int8'], ['pruned', 'pruned']]);
    const [f, q, p] = report.students;
    for (const x of report.students) {
      expect(x.metrics.labelled).toBe(2 * 4 * 12);
      expect(x.metrics.kl).toBeGreaterThan(0);
      for (const v of [x.metrics.agreement, x.metrics.recall, x.metrics.accuracy, x.metrics.ece]) { expect(v).toBeGreaterThanOrEqual(0); expect(v).toBeLessThanOrEqual(1); }
      expect(x.metrics.reliability.reduce((a, b) => a + b.count, 0)).toBe(x.metrics.targeted);
      expect(x.latency.samplesMs).toHaveLength(3);
      expect(x.latency.tokensPerSec).toBeGreaterThan(0);
      expect([x.latency.context, x.latencyLong.context]).toEqual([8, 11]); // --latency-context, and seqLen − 1
      expect(x.latencyLong.samplesMs).toHaveLength(3);
      // intervals over the 8 validation sequences bracket the figure
      expect(x.intervals.kl!.lo).toBeLessThanOrEqual(x.metrics.kl!);
      expect(x.intervals.kl!.hi).toBeGreaterThanOrEqual(x.metrics.kl!);
      expect(x.intervals.kl!.hi).toBeGreaterThan(x.intervals.kl!.lo);
      expect(x.cost.usdPer1MTokens).toBeCloseTo((x.cost.cpuSecondsPer1MTokens! / 3600) * 0.05, 9);
    }
    // int8 with per-channel scales stays close to fp32; the synthetic teacher beats a 30-step student
    expect(Math.abs(q.metrics.kl! - f.metrics.kl!)).toBeLessThan(0.05 * f.metrics.kl!);
    expect(q.size.weightBytes).toBeLessThan(f.size.weightBytes / 3);
    expect(p.size.sparsity).toBeGreaterThan(0.45);
    // stored dense, deployable sparse: a bitmap and half the values
    expect(p.size.weightBytes).toBe(f.size.weightBytes);
    expect(p.size.deployableBytes).toBeLessThan(0.75 * f.size.deployableBytes);
    expect(f.size.deployableBytes).toBe(f.size.weightBytes);
    expect(report.data).toMatchObject({ sequences: 8, tokens: 8 * 12, splitTokens: null });
    expect(report.warnings).toEqual([expect.stringMatching(/^the validation set is small \(96 tokens in 8 sequences of 12\)/)]);
    expect(report.teacher.coverage).toBe(1); // synthetic sequences are sampled from the teacher's top-k
    expect(report.teacher.ppl!).toBeLessThan(f.metrics.ppl!);
    expect(report.teacher.collection).toBeNull();
    expect(report.teacher.live).toBeNull();
    expect(f.trainLog.length).toBeGreaterThan(3);
    expect(f.trainLog.some((x) => x.valLoss !== undefined)).toBe(true);
    expect(report.samples).toHaveLength(2);
    for (const smp of report.samples) {
      expect(smp.teacherSource).toBeNull();
      expect(smp.reference).toMatch(/^⟨\d+( \d+){5}⟩$/);
      expect(smp.prompt).toMatch(/^⟨\d+( \d+){3}⟩$/); // no tokenizer: ids
      expect(smp.students).toHaveLength(3);
      expect(smp.students[0].greedy.text).toMatch(/^⟨\d+( \d+){5}⟩$/);
      expect(smp.students[0].sampled.text).toMatch(/^⟨\d+( \d+){5}⟩$/);
    }
    expect(report.summary.line).toMatch(/best size \(deployable\): int8/);
    expect(report.summary.best.size).toBe('int8');
    // int8 and fp32 agree on nearly every position: their agreement cannot be told apart on 8 sequences
    expect(report.summary.best.quality).toBeNull();
    expect(report.summary.ties.quality).toEqual(expect.arrayContaining(['fp32', 'int8']));
    const html = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html).toContain(report.summary.line.replace(/&/g, '&amp;'));
    expect(html.match(/<svg /g)).toHaveLength(5); // loss, quality, size, reliability, latency
    expect(html).toContain('Did distillation pay?');
    expect(html).not.toMatch(/<script|<link|<img|@import|url\((?!#)/i);
    expect(html.replace(/xmlns(:xlink)?="http:\/\/www\.w3\.org\/[^"]+"/g, '').replace(/https:\/\/vega\.github\.io[^"]*/g, '')).not.toMatch(/https?:\/\//);
  });

  it('refuses to overwrite without --force; with it, swaps the new report in whole', async () => {
    const out = path.join(tmp(), 'run');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'stale.txt'), 'x');
    await expect(evalStudents(small(out, { students: [s.fp32] }))).rejects.toThrow(/exists: pass --force/);
    expect(fs.readdirSync(out)).toEqual(['stale.txt']);
    const before = tf.memory().numTensors;
    await evalStudents(small(out, { students: [s.fp32], force: true, samples: 1 }));
    expect(tf.memory().numTensors).toBe(before); // every model and intermediate disposed
    expect(fs.readdirSync(out).sort()).toEqual(['index.html', 'report.json']);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['run']);
  });

  it('an unreachable teacher URL: the report still renders, live figures marked missing', async () => {
    const out = path.join(tmp(), 'run');
    const url = `http://127.0.0.1:${await closedPort()}/v1`;
    const { report } = await evalStudents(small(out, { students: [s.fp32], teacherUrl: url, model: 'gpt-4o-mini', teacherTimeoutMs: 3000 }));
    expect(report.teacher.live).toMatchObject({ status: 'unreachable', latency: null, texts: [null, null] });
    expect(report.teacher.live!.error).toMatch(/connection failed|ECONNREFUSED/);
    expect(report.teacher.price).toMatchObject({ output: 0.6, source: 'table' });
    expect(report.samples.every((x) => x.teacherSource === null && x.reference !== null)).toBe(true); // the dataset's text is still shown
    const html = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html).toMatch(/<span class="missing" title="teacher unreachable: [^"]*">missing<\/span>/);
    expect(html).toContain('<span class="bad">teacher unreachable');
  });

  it('a live teacher: its text beside the students\' and its latency measured', async () => {
    const server = await startTeacherServer({ genTokens: 3 });
    try {
      const { report } = await evalStudents(small(path.join(tmp(), 'run'), { students: [s.fp32], teacherUrl: server.url, model: 'teacher-x' }));
      expect(report.teacher.live).toMatchObject({ status: 'ok', latency: { n: 4 } }); // greedy and sampled, 2 prompts
      expect(report.teacher.live!.latency!.msPerToken).toBeGreaterThan(0);
      expect(report.samples.map((x) => x.teacherSource)).toEqual(['live', 'live']);
      // a completion of the prompt text (not a chat answer), greedy and sampled
      expect(report.samples[0].teacher!.greedy!.text).toMatch(/^( c\d+){4}$/);
      expect(report.samples[0].teacher!.sampled!.text).toMatch(/^( c\d+){4}$/);
      expect(report.samples[0].teacher!.sampled!.text).not.toBe(report.samples[0].teacher!.greedy!.text);
      expect(report.teacher.price).toBeNull(); // unknown model: no made-up price
    } finally {
      await server.close();
    }
  });

  it('gates: failures are returned one line per condition and recorded, after the report is written', async () => {
    const out = path.join(tmp(), 'run');
    const { report, failures } = await evalStudents(small(out, { students: [s.fp32, `<i>q&a</i>=${s.int8}`], failIf: 'agreement>=0,bits<16', samples: 1 }));
    expect(failures).toEqual([
      expect.stringMatching(/^fail-if agreement>=0: student "fp32" has agreement = /),
      expect.stringMatching(/^fail-if agreement>=0: student "<i>q&a<\/i>" has agreement = /),
      expect.stringMatching(/^fail-if bits<16: student "<i>q&a<\/i>" has bits = \d+\.\d+$/),
    ]);
    expect(report.gate).toMatchObject({ passed: false, conditions: ['agreement>=0', 'bits<16'] });
    const html = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html).toContain('&lt;i&gt;q&amp;a&lt;/i&gt;');
    expect(html).not.toContain('<i>q&a</i>');
    // the same run is its own baseline: nothing regressed
    const again = await evalStudents(small(path.join(tmp(), 'run2'), { students: [s.fp32, `<i>q&a</i>=${s.int8}`], baseline: path.join(out, 'report.json'), maxRegression: '1%', samples: 1 }));
    expect(again.failures).toEqual([]);
  });
});

describe('kd eval (CLI)', () => {
  const kd = (...args: string[]) => runKd(args);
  const common = () => ['eval', '--data', 'synthetic', '--student', s.fp32, '--batches', '1', '--batch-size', '2', '--samples', '1', '--gen-tokens', '2', '--latency-steps', '2', '--backend', 'cpu'];

  it('--help documents the gates and exit codes', () => {
    const r = kd('eval', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--fail-if/);
    expect(r.stdout).toMatch(/--baseline/);
    expect(r.stdout).toMatch(/3 a gate failed/);
  });

  it('a failed gate: exit 3, one line per failed condition, the report written', () => {
    const out = path.join(tmp(), 'run');
    const r = kd(...common(), '--out', out, '--fail-if', 'agreement>=0,kl<1000,ppl>0', '--json');
    expect(r.status).toBe(3);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^kd eval: fail-if agreement>=0: student "fp32" has agreement = /),
      expect.stringMatching(/^kd eval: fail-if kl<1000: student "fp32" has kl = /),
      expect.stringMatching(/^kd eval: fail-if ppl>0: student "fp32" has ppl = /),
    ]);
    expect(JSON.parse(r.stdout)).toMatchObject({ out, gate: { passed: false }, students: [{ name: 'fp32', kind: 'fp32' }] });
    expect(fs.existsSync(path.join(out, 'index.html'))).toBe(true);
  });

  it('an unknown gate metric: exit 1 with one line listing the valid ones, nothing written', () => {
    const out = path.join(tmp(), 'run');
    const r = kd(...common(), '--out', out, '--fail-if', 'acuracy<0.5');
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^kd: bad-gate: --fail-if: unknown metric "acuracy" \(valid: agreement, kl, recall, ppl, accuracy, ece, /)]);
    expect(fs.existsSync(out)).toBe(false);
  });
});
