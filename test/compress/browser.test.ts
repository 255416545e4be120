/**
 * The exported student in a real browser: headless Debian Chromium loads tf.min.js and the export
 * from a loopback HTTP server, runs the same ids as Node and returns the logits.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { Browser } from 'playwright-core';
import { initBackend } from '../../src/backend/index.js';
import { exportModel } from '../../src/compress/export.js';
import { quantize } from '../../src/compress/quantize.js';
import { disposeModel, forwardLogits } from '../../src/model/gpt.js';
import { loadModel } from '../../src/model/load.js';
import { hasChromium, launchChromium } from '../helpers/chromium.js';
import { loadExport } from './export-load.js';
import { tmpDir, trainedCheckpoint } from './fixture.js';

const TF_BUNDLE = path.resolve(__dirname, '../../node_modules/@tensorflow/tfjs/dist/tf.min.js');
const IDS = [[1, 5, 9, 63, 0, 12], [3, 3, 3, 40, 41, 42]];
// Browser and Node both run tfjs's cpu backend on float32; only op scheduling could differ.
const TOL = 1e-4;

let server: http.Server;
let base: string;
let browser: Browser;
let exportDir: string;
let ckpt: string;

beforeAll(async () => {
  if (!hasChromium()) return; // every test here needs the browser
  await initBackend({ backend: 'cpu' });
  const trained = await trainedCheckpoint(30);
  ckpt = (await quantize({ checkpoint: trained, out: path.join(tmpDir(), 'int8') })).checkpoint;
  exportDir = path.join(tmpDir(), 'export');
  exportModel({ checkpoint: ckpt, out: exportDir });
  server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const file = url === '/tf.min.js' ? TF_BUNDLE : url === '/' ? null : path.join(exportDir, path.basename(url));
    if (url === '/') { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<!doctype html><script src="/tf.min.js"></script>'); return; }
    if (!file || !fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : file.endsWith('.js') ? 'text/javascript' : 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => server?.close(r));
});

// without Chromium (KD_CHROMIUM, or Debian's /usr/bin/chromium) skipped, not failed: .ci/run installs it
describe.skipIf(!hasChromium())('exported student in headless Chromium', () => {
  it('loads with tf.loadGraphModel(url) and gives Node\'s logits for the same ids', async () => {
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (r) => { requests.push(r.url()); });
    await page.goto(base + '/');
    const got = await page.evaluate(async ({ url, ids }) => {
      const tf = (window as unknown as { tf: typeof import('@tensorflow/tfjs') }).tf;
      await tf.setBackend('cpu');
      const model = await tf.loadGraphModel(url);
      const out = model.predict(tf.tensor2d(ids, [ids.length, ids[0].length], 'int32')) as import('@tensorflow/tfjs').Tensor;
      return { shape: out.shape, data: Array.from(await out.data()), backend: tf.getBackend() };
    }, { url: base + '/model.json', ids: IDS });
    await page.close();

    const x = tf.tensor2d(IDS, [2, 6], 'int32');
    const g = await loadExport(exportDir);
    const node = g.predict(x) as tf.Tensor;
    const { model } = loadModel(ckpt);
    const kd = forwardLogits(model, x);
    expect(got.backend).toBe('cpu');
    expect(got.shape).toEqual([2, 6, 64]);
    const a = node.dataSync(), b = kd.dataSync();
    let dNode = 0, dKd = 0;
    got.data.forEach((v, i) => { dNode = Math.max(dNode, Math.abs(v - a[i])); dKd = Math.max(dKd, Math.abs(v - b[i])); });
    expect(got.data.every(Number.isFinite)).toBe(true);
    expect(dNode).toBeLessThan(TOL);
    expect(dKd).toBeLessThan(TOL);
    expect(requests.length).toBeGreaterThanOrEqual(3);
    expect(requests.every((u) => u.startsWith(base + '/'))).toBe(true); // nothing leaves loopback
    tf.dispose([x, node, kd]);
    g.dispose();
    disposeModel(model);
  });
});
