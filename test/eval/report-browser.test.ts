/**
 * The report in a real browser: Debian's headless Chromium opens index.html from file://, and the
 * page must load nothing but itself, log no console error, and show its charts. A screenshot is
 * saved to test-artifacts/ (gitignored) for people and CI artifacts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { initBackend } from '../../src/backend/index.js';
import { evalStudents } from '../../src/eval/eval.js';
import { hasChromium, launchChromium } from '../helpers/chromium.js';
import { makeStudents } from './fixtures.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/schema/checkpoint.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import type { EvalReport } from '../../src/schema/eval-report.js';

const root = path.resolve(__dirname, '../..');
let browser: Browser;
let page: string;
let headlinePage: string;
let headlineReport: EvalReport;

beforeAll(async () => {
  if (!hasChromium()) return; // every test here needs the browser
  await initBackend({ backend: 'cpu' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-html-'));
  const s = await makeStudents(dir, { trainSteps: 0 }); // untrained is enough to draw every chart...
  fs.writeFileSync(path.join(path.dirname(s.fp32), 'fp32', 'train-log.jsonl'), // ...given a training log
    [1, 2, 3, 4].map((step) => JSON.stringify({ step, lr: 1e-3, loss: 4 - step / 2, kd: null, ce: null, gradNorm: 1, tokens: step * 10, tokensPerSec: 1, elapsedSec: step, ...(step % 2 ? {} : { valLoss: 4.2 - step / 2 }) })).join('\n') + '\n');
  const out = path.join(dir, 'report');
  await evalStudents({ data: 'synthetic', students: [s.fp32, s.int8, `<b>x</b>=${s.pruned}`], out, batches: 1, batchSize: 4, samples: 2, genTokens: 4, latencySteps: 4,
    teacherUrl: 'http://127.0.0.1:9/v1', model: 'gpt-4o', teacherTimeoutMs: 2000, failIf: 'kl>1000' });
  page = path.join(out, 'index.html');
  // byte-level students with a tokenizer: held-out text, a hard-label baseline and a teacher checkpoint
  const b = await makeStudents(path.join(dir, 'bytes'), { trainSteps: 0, config: resolveModelConfig({ vocabSize: 256, seqLen: 16, dModel: 16, nLayers: 1, nHeads: 2, ffnMult: 2 }), tokenizer: Tokenizer.bytes().toJSON() });
  const text = path.join(dir, 'held-out.txt');
  fs.writeFileSync(text, 'The state of the Union is strong, and the people of the United States are its strength. '.repeat(120));
  // a baseline clearly worse than the teacher (= fp32 here): fp32's token embedding ×40 makes confident wrong guesses
  const ck = loadCheckpoint(b.fp32);
  const hard = path.join(dir, 'bytes', 'hard', 'checkpoint.kdc');
  saveCheckpoint(hard, { model: ck.header.model, tokenizer: ck.header.tokenizer, meta: ck.header.meta, arrays: [...ck.arrays.values()].filter((a) => !a.name.startsWith('adam.')).map((a) => (a.name === 'wte' ? { ...a, data: (a.data as Float32Array).map((x) => x * 40) } : a)) });
  const out2 = path.join(dir, 'report-headline');
  headlineReport = (await evalStudents({ data: 'synthetic', students: [b.fp32, b.int8], baselineStudent: `hard=${hard}`, teacherCheckpoint: b.fp32, texts: [text],
    out: out2, batches: 2, batchSize: 4, samples: 1, genTokens: 8, latencySteps: 4, latencyWarmup: 1 })).report;
  headlinePage = path.join(out2, 'index.html');
  browser = await launchChromium();
}, 600_000); // two evals and a browser start: minutes when the machine is busy

afterAll(async () => {
  await browser?.close();
});

// without Chromium (KD_CHROMIUM, or Debian's /usr/bin/chromium) skipped, not failed: .ci/run installs it
describe.skipIf(!hasChromium())('index.html in headless Chromium', () => {
  it('loads nothing but itself, logs no console error, renders the summary and five charts; screenshot saved', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await ctx.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    p.on('request', (r) => requests.push(r.url()));
    p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`); });
    p.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    const url = pathToFileURL(page).href;
    await p.goto(url, { waitUntil: 'load' });
    expect(requests).toEqual([url]); // the page itself, nothing else (no fonts, images, scripts)
    expect(problems).toEqual([]);
    expect(await p.locator('p.verdict').innerText()).toMatch(/size \(deployable\): /);
    expect(await p.locator('table.quality tbody tr').count()).toBe(4); // the teacher (missing here) and three students
    expect(await p.locator('figure svg').count()).toBe(5);
    // charts really drew marks (not empty SVGs): the latency boxplots and the reliability points
    expect(await p.locator('figure svg path, figure svg line, figure svg rect').count()).toBeGreaterThan(20);
    // user text shows as text, never as markup
    expect(await p.locator('table.quality tbody th').nth(3).innerText()).toContain('<b>x</b>');
    expect(await p.locator('b', { hasText: 'x' }).count()).toBe(0);
    // the unreachable teacher is marked missing
    expect(await p.locator('.missing[title^="teacher unreachable"]').count()).toBeGreaterThan(0);
    const shots = path.join(root, 'test-artifacts');
    fs.mkdirSync(shots, { recursive: true });
    const file = path.join(shots, 'eval-report.png');
    await p.screenshot({ path: file, fullPage: true });
    expect(fs.statSync(file).size).toBeGreaterThan(10_000);
    await ctx.close();
  });

  it('the headline answers "did distillation pay" and the teacher is a row of the main tables; nothing overflows 1280 px; screenshot saved', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await ctx.newPage();
    const problems: string[] = [];
    p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`); });
    await p.goto(pathToFileURL(headlinePage).href, { waitUntil: 'load' });
    expect(problems).toEqual([]);
    const h = headlineReport.headline[0];
    const rows = p.locator('section.headline table tbody tr');
    expect(await rows.count()).toBe(4); // teacher, the baseline, fp32, int8
    const cells = async (i: number) => (await rows.nth(i).locator('th, td').allInnerTexts()).map((x) => x.trim());
    expect((await cells(0)).slice(0, 2)).toEqual(['teacher', h.teacherBpb!.toFixed(4)]);
    expect((await cells(1)).slice(0, 2)).toEqual(['hard hard-label baseline', h.baselineBpb.toFixed(4)]);
    const fp32 = h.rows.find((r) => r.name === 'fp32')!;
    const row = await cells(2);
    expect(row[0]).toBe('fp32');
    expect(row[1]).toMatch(new RegExp(`^${fp32.bpb.toFixed(4)}\\s+\\[`)); // with its interval
    expect(row[2]).toMatch(new RegExp(`^${fp32.gain >= 0 ? '−' : '\\+'}${(Math.abs(fp32.gain) * 100).toFixed(1)}%`));
    expect(row[4]).toBe(fp32.verdict);
    // the teacher checkpoint is fp32 itself: it closes the whole gap
    expect(fp32.gapClosed).toBeCloseTo(1, 6);
    expect(row[3]).toMatch(/^100\.0%/);
    // the teacher's rows: bits per byte and size/speed measured, per-token figures marked as not comparable
    const q = await p.locator('table.quality tbody tr.teacher').locator('th, td').allInnerTexts();
    expect(q[0]).toBe('teacher');
    expect(q[1]).toContain(headlineReport.texts[0].teacher!.bpb.toFixed(4));
    expect(q.slice(2, 5)).toEqual(['reference', 'reference', 'reference']);
    expect(q.slice(5)).toEqual(['n/a', 'n/a', 'n/a']);
    const sp = await p.locator('table.speed tbody tr.teacher').locator('th, td').allInnerTexts();
    expect(sp[0]).toBe('teacher');
    expect(sp[1]).toBe(headlineReport.teacher.checkpoint!.size.params.toLocaleString('en-US'));
    const shots = path.join(root, 'test-artifacts');
    fs.mkdirSync(shots, { recursive: true });
    const file = path.join(shots, 'eval-report-headline.png');
    await p.screenshot({ path: file, fullPage: true });
    for (const t of ['table.quality', 'table.speed', 'section.headline table']) {
      const w = await p.locator(t).evaluate((el) => el.getBoundingClientRect().right);
      expect(w, t).toBeLessThanOrEqual(1280);
    }
    expect(fs.statSync(file).size).toBeGreaterThan(10_000);
    await ctx.close();
  });
});
