import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveEvalArgs } from '../../src/cli/eval.js';
import { checkConditions, compareBaseline, parseBaselineMetrics, parseFailIf, parseRegression, readBaseline, regression, runGate } from '../../src/eval/gate.js';
import { EVAL_REPORT_FORMAT, type EvalReport, type StudentReport } from '../../src/schema/eval-report.js';

function student(name: string, m: { agreement: number | null; kl: number | null; ppl?: number }, bytes = 1000): StudentReport {
  return {
    name, path: `checkpoints/${name}`, kind: 'fp32', tokenizerHash: null, model: {},
    metrics: { labelled: 10, targeted: 10, kl: m.kl, agreement: m.agreement, recall: 0.5, ppl: m.ppl ?? 10, accuracy: 0.3, ece: 0.05, teacherPpl: null, teacherCoverage: null, reliability: [] },
    intervals: { kl: null, agreement: null, recall: null, ppl: null, accuracy: null, ece: null }, baseline: false, training: { alpha: 0.5, steps: 10, tokens: 1000 },
    latency: { context: 8, steps: 3, p50Ms: 1, p95Ms: 2, meanMs: 1, tokensPerSec: 1000, prefillMs: 1, samplesMs: [1, 1, 2] },
    latencyLong: { context: 16, steps: 3, p50Ms: 2, p95Ms: 3, meanMs: 2, tokensPerSec: 500, prefillMs: 2, samplesMs: [2, 2, 3] },
    size: { params: 100, bytesOnDisk: 2000, weightBytes: bytes, deployableBytes: bytes, sparsity: 0, overallSparsity: 0, askedSparsity: null, bits: 32 },
    cost: { flopsPerToken: 1, cpuSecondsPer1MTokens: 1000, usdPer1MTokens: null },
    trainLog: [],
  };
}
const report = (students: StudentReport[]) => ({ format: EVAL_REPORT_FORMAT, version: 1, students }) as unknown as EvalReport;

describe('--fail-if', () => {
  it('parses comma-separated conditions with all four operators', () => {
    expect(parseFailIf('agreement<0.6, kl>0.5,ppl<=12,  tokens-per-sec>=1e3')).toEqual([
      { metric: 'agreement', op: '<', value: 0.6, text: 'agreement<0.6' },
      { metric: 'kl', op: '>', value: 0.5, text: 'kl>0.5' },
      { metric: 'ppl', op: '<=', value: 12, text: 'ppl<=12' },
      { metric: 'tokens-per-sec', op: '>=', value: 1000, text: 'tokens-per-sec>=1e3' },
    ]);
  });

  it('unknown metrics and bad syntax are errors listing what is valid', () => {
    expect(() => parseFailIf('agrement<0.6')).toThrow(/unknown metric "agrement" \(valid: agreement, kl, recall, ppl/);
    expect(() => parseFailIf('kl=0.5')).toThrow(/cannot read "kl=0.5"/);
    expect(() => parseFailIf('kl>')).toThrow(/cannot read/);
    expect(() => parseFailIf(' , ')).toThrow(/no condition/);
  });

  it('each student must pass; one line per failed condition and student', () => {
    const s = [student('a', { agreement: 0.7, kl: 0.3 }), student('b', { agreement: 0.5, kl: 0.6 })];
    expect(checkConditions(s, parseFailIf('agreement<0.6,kl>0.5'), 'each')).toEqual([
      'fail-if agreement<0.6: student "b" has agreement = 0.5000',
      'fail-if kl>0.5: student "b" has kl = 0.6000',
    ]);
    expect(checkConditions(s, parseFailIf('agreement<0.6,kl>0.5'), 'best')).toEqual([]);
    expect(checkConditions(s, parseFailIf('agreement<0.8'), 'best')).toEqual(['fail-if agreement<0.8: best student "a" has agreement = 0.7000']);
    expect(checkConditions(s, parseFailIf('agreement<=0.5'), 'each')).toHaveLength(1);
  });

  it('a missing figure fails the condition', () => {
    const s = [student('a', { agreement: null, kl: 0.3 })];
    expect(checkConditions(s, parseFailIf('agreement<0.6'), 'each')).toEqual(['fail-if agreement<0.6: student "a" has no agreement figure']);
  });
});

describe('--baseline', () => {
  it('measures regressions in each metric\'s direction', () => {
    expect(regression(0.5, 0.45, 'higher')).toBeCloseTo(0.1, 9);
    expect(regression(0.5, 0.55, 'higher')).toBeCloseTo(-0.1, 9);
    expect(regression(0.4, 0.5, 'lower')).toBeCloseTo(0.25, 9);
    expect(regression(0, 0.1, 'lower')).toBe(Infinity);
    expect(regression(0, 0, 'lower')).toBe(0);
    expect(parseRegression('5%')).toBe(0.05);
    expect(parseRegression('0.1')).toBe(0.1);
    expect(() => parseRegression('-1%')).toThrow(/max-regression/);
    expect(() => parseRegression('lots')).toThrow(/max-regression/);
    expect(parseBaselineMetrics(undefined)).toEqual(['agreement', 'kl', 'recall', 'ppl']);
    expect(parseBaselineMetrics(['kl,ece'])).toEqual(['kl', 'ece']);
    expect(() => parseBaselineMetrics(['kl,speed'])).toThrow(/unknown metric "speed"/);
  });

  it('fails beyond the threshold, matches students by name, notes the unmatched', () => {
    const old = report([student('a', { agreement: 0.6, kl: 0.4 }), student('gone', { agreement: 0.6, kl: 0.4 })]);
    const now = [student('a', { agreement: 0.58, kl: 0.5 }), student('new', { agreement: 0.1, kl: 9 })];
    const r = compareBaseline(now, old, ['agreement', 'kl'], 0.05);
    // agreement 0.6 → 0.58 is 3.3% worse: allowed; kl 0.4 → 0.5 is 25% worse: not
    expect(r.failures).toEqual(['baseline: student "a" kl 0.4000 → 0.5000 (25.0% worse, allowed 5.0%)']);
    expect(r.notes).toEqual(['baseline: no student "new" in the baseline; not compared', 'baseline: student "gone" is not in this run']);
    expect(compareBaseline(now, old, ['agreement', 'kl'], 0.3).failures).toEqual([]);
  });

  it('runGate combines both and reads baseline files', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-gate-'));
    const file = path.join(dir, 'report.json');
    fs.writeFileSync(file, JSON.stringify(report([student('a', { agreement: 0.9, kl: 0.1 })])));
    const base = readBaseline(file);
    const g = runGate([student('a', { agreement: 0.5, kl: 0.1 })], { failIf: parseFailIf('agreement<0.6'), baseline: { file, report: base, metrics: ['agreement'], maxRegression: 0.05 } })!;
    expect(g.passed).toBe(false);
    expect(g.failures).toHaveLength(2);
    expect(g.failures[1]).toMatch(/^baseline: student "a" agreement 0\.9000 → 0\.5000 \(44\.4% worse/);
    expect(runGate([], {})).toBeNull();
    fs.writeFileSync(file, '{"format": "other"}');
    expect(() => readBaseline(file)).toThrow(/not a kd eval report\.json/);
    fs.writeFileSync(file, '{');
    expect(() => readBaseline(file)).toThrow(/cannot read it as JSON/);
  });
});

describe('kd eval arguments', () => {
  const base = { data: 'synthetic', student: ['a=ck/a', 'ck/b'], out: 'reports/x' };
  it('map 1:1 onto EvalOptions', () => {
    const o = resolveEvalArgs({ ...base, model: 'gpt-4o', teacherTimeout: 2, failIf: 'kl>1', gateOn: 'best', baseline: 'old.json', maxRegression: '3%', baselineMetrics: 'kl' });
    expect(o).toMatchObject({ data: 'synthetic', students: ['a=ck/a', 'ck/b'], out: 'reports/x', model: 'gpt-4o', teacherTimeoutMs: 2000, failIf: 'kl>1', gateOn: 'best', maxRegression: '3%', baselineMetrics: ['kl'] });
  });
  it('reject contradictions', () => {
    expect(() => resolveEvalArgs({ ...base, maxRegression: '5%' })).toThrow(/needs --baseline/);
    expect(() => resolveEvalArgs({ ...base, gateOn: 'worst' as never })).toThrow(/--gate-on/);
    expect(() => resolveEvalArgs({ ...base, student: [] })).toThrow(/at least one --student/);
  });
});
