/**
 * The export's index.html in headless Chromium, served by kd serve --static's server: type a prompt,
 * click, see kd's greedy continuation appear token by token with no console error; the logits the first
 * token is drawn from are kd's. And every code block of the export's README.md, run as written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { initBackend } from '../../src/backend/index.js';
import { type StaticHandle, serveStatic } from '../../src/serve/static.js';
import { CHROMIUM, hasChromium, launchChromium } from '../helpers/chromium.js';
import { ROOT } from '../helpers/kd.js';
import { KdReference, exportTeacher, maxAbsDiff, runNode } from './web-fixture.js';

const PROMPT = 'The Congress of the United States';
const TOL = 1e-4; // page forced to tfjs's cpu backend, as kd in Node: float32, same kernels

let browser: Browser;
let server: StaticHandle;
let dir: string;
let kd: KdReference;

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  kd = new KdReference();
  dir = exportTeacher();
  server = await serveStatic({ dir, port: 0 });
  if (hasChromium()) browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  kd?.dispose();
});

/** A page that records console errors, uncaught exceptions and every URL it asks for. */
async function open(url: string): Promise<{ page: Page; errors: string[]; requests: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [], requests: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => { requests.push(r.url()); });
  await page.goto(url);
  return { page, errors, requests };
}

/** Without Chromium (KD_CHROMIUM, or Debian's /usr/bin/chromium) the browser tests are skipped, not failed: .ci/run installs it. */
const withBrowser = !hasChromium() ? `skipped: no Chromium at ${CHROMIUM}` : '';

describe.skipIf(withBrowser)('index.html of an export in Chromium', () => {
  it('types a prompt, clicks Generate: kd\'s greedy text token by token, tokens/s, the backend; first-token logits equal kd\'s', async () => {
    const { page, errors, requests } = await open(`${server.url}/?backend=cpu`);
    await page.waitForSelector('#generate:not([disabled])', { timeout: 60_000 });
    expect(await page.textContent('#backend')).toBe('cpu');
    expect(await page.textContent('#model')).toMatch(/^2,583,936 parameters, 4 blocks, context 128 tokens, int8 weights$/);
    await page.fill('#prompt', PROMPT);
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', '8');
    await page.evaluate(() => { // every state of #output while it is written
      const w = window as unknown as { states: string[] };
      w.states = [];
      new MutationObserver(() => w.states.push(document.getElementById('output')!.textContent!)).observe(document.getElementById('output')!, { subtree: true, childList: true, characterData: true });
    });
    await page.click('#generate');
    await page.waitForSelector('#output[data-done]', { timeout: 60_000 });

    const want = await kd.greedy(kd.served.tokenizer.encode(PROMPT), 8);
    expect(want.text.length).toBeGreaterThan(0);
    expect(await page.textContent('#output')).toBe(PROMPT + want.text);
    const states = await page.evaluate(() => (window as unknown as { states: string[] }).states);
    const growing = [...new Set(states)].filter((s) => s.startsWith(PROMPT) && s.length > PROMPT.length);
    expect(growing.length).toBeGreaterThanOrEqual(3); // written piece by piece, not at the end
    expect(Number(await page.textContent('#speed'))).toBeGreaterThan(0);

    const logits = await page.evaluate(async (p) => {
      const s = (window as unknown as { kdStudent: { encode(t: string): number[]; logits(ids: number[]): Promise<Float32Array> } }).kdStudent;
      return Array.from(await s.logits(s.encode(p)));
    }, PROMPT);
    expect(maxAbsDiff(logits, kd.nextLogits(kd.served.tokenizer.encode(PROMPT)))).toBeLessThan(TOL);

    // The page's generation decodes with the KV cache: six greedy steps through student.decoder() give
    // kd's ids and, after them, kd's logits on the whole context; generate() never runs the graph.
    const kv = await page.evaluate(async (p) => {
      type Kd = { encode(t: string): number[]; decoder(): { next(ids: number[]): Promise<Float32Array>; length: number; dispose(): void };
        generate(p: string, o: object): Promise<unknown>; model: { execute: (...a: unknown[]) => unknown } };
      const s = (window as unknown as { kdStudent: Kd }).kdStudent;
      const ids = s.encode(p), dec = s.decoder(), greedy: number[] = [];
      let lg = await dec.next(ids);
      for (let i = 0; i < 6; i++) {
        let b = 0;
        for (let j = 1; j < lg.length; j++) if (lg[j] > lg[b]) b = j;
        greedy.push(b);
        lg = await dec.next([b]);
      }
      const length = dec.length;
      dec.dispose();
      const execute = s.model.execute;
      let calls = 0;
      s.model.execute = (...a: unknown[]) => { calls++; return execute.apply(s.model, a); };
      await s.generate(p, { maxTokens: 3, temperature: 0 });
      s.model.execute = execute;
      return { prompt: ids, greedy, logits: Array.from(lg), length, calls };
    }, PROMPT);
    expect(kv.greedy).toEqual(want.ids.slice(0, 6));
    expect(kv.length).toBe(kv.prompt.length + 6);
    expect(maxAbsDiff(kv.logits, kd.nextLogits([...kv.prompt, ...kv.greedy]))).toBeLessThan(TOL);
    expect(kv.calls).toBe(0);
    expect(errors).toEqual([]);
    expect(requests.every((u) => u.startsWith(server.url + '/'))).toBe(true); // tfjs included: nothing from a CDN
    expect(requests.some((u) => u.endsWith('/tf.fesm.min.js'))).toBe(true);
    await page.close();
  });

  it('by default takes WebGL, or cpu where WebGL is drawn in software (headless, no GPU), and generates', async () => {
    const { page, errors } = await open(`${server.url}/`);
    await page.waitForSelector('#generate:not([disabled])', { timeout: 60_000 });
    const renderer = await page.evaluate(() => {
      const gl = document.createElement('canvas').getContext('webgl2');
      const info = gl?.getExtension('WEBGL_debug_renderer_info');
      return info ? String(gl!.getParameter(info.UNMASKED_RENDERER_WEBGL)) : 'none';
    });
    const backend = await page.textContent('#backend');
    expect(backend).toBe(/swiftshader|llvmpipe|software/i.test(renderer) || renderer === 'none' ? 'cpu' : 'webgl');
    await page.fill('#max-tokens', '2');
    await page.click('#generate');
    await page.waitForSelector('#output[data-done]', { timeout: 60_000 });
    expect((await page.textContent('#output'))!.length).toBeGreaterThan((await page.inputValue('#prompt')).length);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('opened from file:// it says how to serve it instead of failing silently', async () => {
    const { page } = await open(pathToFileURL(path.join(dir, 'index.html')).href);
    expect(await page.textContent('#status')).toMatch(/do not load this page from file:\/\/.*kd serve --static DIR/);
    expect(await page.isDisabled('#generate')).toBe(true);
    await page.close();
  });
});

describe('the export README\'s code blocks, run as written', () => {
  let blocks: { lang: string; code: string }[];
  let node: ReturnType<typeof runNode>[];
  beforeAll(() => {
    blocks = [...fs.readFileSync(path.join(dir, 'README.md'), 'utf8').matchAll(/```(html|js)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, code: m[2]! }));
    blocks.forEach((b, i) => fs.writeFileSync(path.join(dir, `readme-${i}.${b.lang === 'js' ? 'mjs' : 'html'}`), b.code));
    node = blocks.flatMap((b, i) => (b.lang === 'js' ? [runNode(path.join(dir, `readme-${i}.mjs`))] : []));
  });

  it('has two browser and two Node blocks; in Node they print generated text and the logits\' shape', () => {
    expect(blocks.map((b) => b.lang)).toEqual(['html', 'html', 'js', 'js']);
    for (const r of node) expect(r.status, r.stderr).toBe(0);
    expect(node[0]!.stdout.trim().length).toBeGreaterThan(0);
    expect(node[1]!.stdout).toContain('[ 1, 3, 4096 ]');
  });

  it.skipIf(withBrowser)('the browser blocks, saved as pages in the export: the same text as in Node, and the logits\' shape', async () => {
    const nodeText = node[0]!.stdout.replace(/\n$/, ''); // console.log(text); tfjs's banner goes to stderr
    expect(nodeText.length).toBeGreaterThan(0);
    const g = await open(`${server.url}/readme-0.html`);
    await g.page.waitForFunction((t) => document.getElementById('out')?.textContent === t, nodeText, { timeout: 60_000 });
    expect(g.errors).toEqual([]);
    await g.page.close();

    const m = await open(`${server.url}/readme-1.html`);
    await m.page.waitForFunction(() => document.body.textContent?.includes('1 × 3 × 4096'), undefined, { timeout: 60_000 });
    expect(m.errors).toEqual([]);
    expect(m.requests.every((u) => u.startsWith(server.url + '/'))).toBe(true);
    await m.page.close();
  });
});

describe.skipIf(withBrowser)('the embedding example of kd\'s README ("Deploy in the browser"), as written', () => {
  it('a page beside the export\'s folder student/: prompt, Go, text appears, no console errors', async () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Deploy in the browser'));
    const html = /```html\n([\s\S]*?)```/.exec(section)![1]!;
    expect(html.trim().split('\n')).toHaveLength(10);
    const project = path.dirname(dir); // the export is project/student
    fs.writeFileSync(path.join(project, 'embed.html'), html);
    const site = await serveStatic({ dir: project, port: 0 });
    try {
      const { page, errors, requests } = await open(`${site.url}/embed.html`);
      await page.waitForFunction(() => document.getElementById('go')!.onclick !== null, undefined, { timeout: 60_000 }); // the student has loaded
      await page.click('#go');
      await page.waitForFunction(() => (document.getElementById('out')?.textContent ?? '').length > 20, undefined, { timeout: 60_000 });
      expect(errors).toEqual([]);
      expect(requests.every((u) => u.startsWith(site.url + '/'))).toBe(true);
      await page.close();
    } finally {
      await site.close();
    }
  });
});
