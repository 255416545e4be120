/**
 * The offline demo end to end (issue: "npm ci then npm run demo"): kd serve with the embedded teacher,
 * collect over HTTP in score and chat mode, merge, dataset, train, prune, quantize, export, eval —
 * then a second run that finds every stage up to date. Runs in a scratch directory holding only what
 * the demo reads from the repository.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT as root, kd } from '../helpers/kd.js';


function kdRun(cwd: string, ...args: string[]) {
  const r = kd(['run', 'pipelines/demo.yaml', '--json', ...args], { cwd });
  const report = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { status: r.status, report, stderr: r.stderr };
}

describe('npm run demo', () => {
  it('distils a student from the embedded teacher end to end, then finds everything up to date', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-demo-'));
    for (const p of ['pipelines/demo.yaml', 'datasets/demo-sotu.jsonl', 'datasets/demo-prompts.csv', 'checkpoints/teacher/checkpoint.kdc']) {
      fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
      fs.copyFileSync(path.join(root, p), path.join(dir, p));
    }
    const first = kdRun(dir);
    expect(first.stderr).not.toMatch(/internal error/);
    expect(first.status).toBe(0);
    expect(first.report.ok).toBe(true);
    expect(first.report.stages.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual(
      ['collect-score', 'collect-chat', 'merge', 'dataset', 'train', 'train-baseline', 'prune', 'quantize', 'export', 'eval'].map((n) => `${n}:ran`));
    const byName = Object.fromEntries(first.report.stages.map((s: { name: string; summary: unknown }) => [s.name, s.summary]));
    expect(byName['collect-score']).toMatchObject({ mode: 'score' });
    expect(byName.prune).toBeTruthy();

    const report = JSON.parse(fs.readFileSync(path.join(dir, 'reports/demo/report.json'), 'utf8'));
    expect(report.students.map((s: { name: string }) => s.name)).toEqual(['fp32', 'pruned', 'int8', 'hard-label']);
    // the headline: every student against the hard-label baseline and the teacher on held-out SOTU text
    expect(report.students[3]).toMatchObject({ baseline: true, training: { alpha: 1, steps: 300 } });
    expect(report.headline).toHaveLength(1);
    const h = report.headline[0];
    expect(h).toMatchObject({ text: 'corpus:sotu', baseline: 'hard-label', notes: [] });
    expect(h.teacherBpb).toBeLessThan(h.baselineBpb);
    expect(h.rows.map((r: { name: string }) => r.name)).toEqual(['fp32', 'pruned', 'int8']);
    for (const r of h.rows) expect(r.gain).toBeCloseTo((h.baselineBpb - r.bpb) / h.baselineBpb, 9);
    // the teacher is measured like the students, and the whole validation split is scored once
    expect(report.teacher.checkpoint).toMatchObject({ sameTokenizer: false, metrics: null });
    expect(report.teacher.checkpoint.latencyLong.tokensPerSec).toBeGreaterThan(0);
    expect(report.data.whole).toBe(true);
    expect(report.data.tokens).toBe(report.data.splitTokens);
    expect(report.samples[0].teacherSource).toBe('checkpoint');
    for (const s of report.students.slice(0, 3)) {
      expect(s.metrics.kl).toBeGreaterThan(0);
      expect(s.metrics.agreement).toBeGreaterThan(0.1); // far above chance (1/1024): the student learned from the teacher
    }
    expect(report.teacher.live.status).toBe('ok');
    expect(report.teacher.collection.requests).toBe(152);
    // provenance: kd serve's fingerprint seen while collecting, each student's seed and steps
    expect(report.provenance.systemFingerprints[0]).toMatch(/^fp_[0-9a-f]{12}$/);
    expect(report.provenance.students[0]).toMatchObject({ name: 'fp32', seed: 0, steps: 300 });
    const html = fs.readFileSync(path.join(dir, 'reports/demo/index.html'), 'utf8');
    expect(html).toMatch(/<svg/);
    expect(fs.existsSync(path.join(dir, 'exports/demo/model.json'))).toBe(true);
    const collected = JSON.parse(fs.readFileSync(path.join(dir, 'datasets/demo/raw-score/kd-stage.json'), 'utf8'));
    expect(collected.provenance).toMatchObject({ teacherModel: 'kd-teacher', systemFingerprints: [report.provenance.systemFingerprints[0]] });
    const student = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoints/demo-student/kd-stage.json'), 'utf8'));
    expect(student).toMatchObject({ kind: 'train', status: 'done', provenance: { seed: '0' } });
    // the student is about a tenth of the teacher
    expect(report.students[0].size.params).toBeLessThan(2_583_936 / 8);

    const second = kdRun(dir);
    expect(second.status).toBe(0);
    expect(second.report.stages.every((s: { status: string }) => s.status === 'skipped')).toBe(true);
  }, 900_000);
});
