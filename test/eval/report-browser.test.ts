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
import { launchChromium } from '../helpers/chromium.js';
import { makeStudents } from './fixtures.js';

const root = path.resolve(__dirname, '../..');
let browser: Browser;
let page: string;

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-html-'));
  const s = await makeStudents(dir, { trainSteps: 0 }); // untrained is enough to draw every chart...
  fs.writeFileSync(path.join(path.dirname(s.fp32), 'fp32', 'train-log.jsonl'), // ...given a training log
    [1, 2, 3, 4].map((step) => JSON.stringify({ step, lr: 1e-3, loss: 4 - step / 2, kd: null, ce: null, gradNorm: 1, tokens: step * 10, tokensPerSec: 1, elapsedSec: step, ...(step % 2 ? {} : { valLoss: 4.2 - step / 2 }) })).join('\n') + '\n');
  const out = path.join(dir, 'report');
  await evalStudents({ data: 'synthetic', students: [s.fp32, s.int8, `<b>x</b>=${s.pruned}`], out, batches: 1, batchSize: 4, samples: 2, genTokens: 4, latencySteps: 4,
    teacherUrl: 'http://127.0.0.1:9/v1', teacherModel: 'gpt-4o', teacherTimeoutMs: 2000, failIf: 'kl>1000' });
  page = path.join(out, 'index.html');
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

describe('index.html in headless Chromium', () => {
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
    expect(await p.locator('p.verdict').innerText()).toMatch(/^best quality: .* best size: /);
    expect(await p.locator('table.summary').first().locator('tbody tr').count()).toBe(3);
    expect(await p.locator('figure svg').count()).toBe(5);
    // charts really drew marks (not empty SVGs): the latency boxplots and the reliability points
    expect(await p.locator('figure svg path, figure svg line, figure svg rect').count()).toBeGreaterThan(20);
    // user text shows as text, never as markup
    expect(await p.locator('table.summary tbody th').nth(2).innerText()).toContain('<b>x</b>');
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
});
