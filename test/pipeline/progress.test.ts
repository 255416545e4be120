import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { COLLECT_BAR_FORMAT, progressLines } from '../../src/collect/progress.js';
import { relayProgress } from '../../src/pipeline/progress-relay.js';
import { runPipeline } from '../../src/pipeline/run.js';
import { etaTime, lineProgress, progressSink, renderProgress } from '../../src/core/progress.js';
import { checkArgv } from '../../src/cli/index.js';
import { TRAIN_BAR_FORMAT } from '../../src/cli/train.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('a stage\'s progress line', () => {
  it('the train bar\'s ETA has a unit (cli-progress\'s own {eta}, bare seconds, would win over a payload key of that name)', () => {
    const line = renderProgress(TRAIN_BAR_FORMAT, 40, 200, { loss: '3.2100', tps: 1500, etaText: '1m05s' }, 34);
    expect(line).toBe('train 20% 40/200 steps | loss 3.2100 | 1500 tok/s | ETA 1m05s');
    // what the old format showed: the built-in token, a bare number
    expect(renderProgress('ETA {eta}', 40, 200, { eta: '1m05s' }, 34)).toBe('ETA 34');
  });

  it('lineProgress renders each update, with a linear ETA for formats that use {eta}, and a final line on stop', () => {
    let t = 0;
    const lines: [string, boolean | undefined][] = [];
    const p = lineProgress(10, 'build |{bar}| {value}/{total} | ETA {eta}s', (l, f) => lines.push([l, f]), () => t);
    t = 2000;
    p.update(4, {});
    p.stop();
    p.stop();
    expect(lines).toEqual([['build 40% 4/10 | ETA 3s', undefined], ['build 40% 4/10 | ETA 3s', true]]);
  });

  it('the build and export bars\' ETA: kd\'s durations with a unit, "--" while unknown (on a terminal too)', () => {
    expect(renderProgress('ETA {eta_formatted}', 1, 4, {}, 125)).toBe('ETA 2m05s');
    expect(renderProgress('ETA {eta_formatted}', 1, 4, {}, 7)).toBe('ETA 7s');
    expect(renderProgress('ETA {eta_formatted}', 0, 4, {}, NaN)).toBe('ETA --');
    // a terminal bar's own ETA before the first estimate, or for a stalled run: cli-progress's "NULL" / "INF"
    expect(['NULL', 'INF', 3725].map(etaTime)).toEqual(['--', '--', '1h02m']);
  });

  it('collect\'s progress as lines: the bar\'s figures', () => {
    const lines: string[] = [];
    const c = progressLines((l) => lines.push(l));
    const base = { total: 8, answered: 0, rejected: 0, retries: 1, failures: 0, inFlight: 2, promptTokens: 100, completionTokens: 0, costUsd: 0.5 };
    c.update({ ...base, done: 2, elapsedMs: 1000 });
    c.update({ ...base, done: 6, elapsedMs: 2000 });
    c.stop();
    expect(COLLECT_BAR_FORMAT).toContain('{value}/{total}');
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^collect 75% 6\/8 \| 2\.0 req\/s \| 50 tok\/s \| \$0\.5000 \| ETA 1s \| retries 1$/);
    expect(lines[2]).toBe(lines[1]);
  });

  it('progressSink writes a line at most every everyMs to the pipe, the final one always; none outside kd run', () => {
    expect(progressSink(250, undefined)).toBeUndefined();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kd-progress-')), 'pipe');
    const fd = fs.openSync(file, 'w');
    let t = 0;
    const sink = progressSink(250, fd, () => t)!;
    sink('a');
    t = 100; sink('b');
    t = 300; sink('c\nd');
    t = 301; sink('e', true);
    fs.closeSync(fd);
    expect(fs.readFileSync(file, 'utf8')).toBe('a\nc d\ne\n');
  });
});

describe('kd run relays the running stage\'s progress', () => {
  it('on a terminal: redrawn in place, cleared when the stage ends', async () => {
    const pipe = new PassThrough();
    let out = '';
    const relay = relayProgress(pipe, 'lm', { isTTY: true, columns: 40, write: (s: string) => (out += s) });
    pipe.write('train 10% 1/10 steps\n');
    pipe.write('train 20% 2/10 steps | loss 3.1 | a long tail that does not fit\n');
    await tick();
    await relay.stop();
    expect(out).toBe('\r\x1b[K  lm: train 10% 1/10 steps\r\x1b[K  lm: train 20% 2/10 steps | loss 3.1 …\r\x1b[K');
  });

  it('on a log: one line every everyMs, none for a short stage', async () => {
    let t = 0;
    const pipe = new PassThrough();
    let out = '';
    const relay = relayProgress(pipe, 'collect', { write: (s: string) => (out += s) }, { everyMs: 10_000, now: () => t });
    for (const [at, line] of [[1000, 'one'], [10_500, 'two'], [12_000, 'three'], [21_000, 'four']] as const) {
      t = at;
      pipe.write(line + '\n');
      await tick();
    }
    await relay.stop();
    expect(out).toBe('  collect: two\n  collect: four\n');
  });

  it('a real stage under kd run: train\'s line comes through the pipe', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-pipe-'));
    const f = path.join(dir, 'p.yaml');
    fs.writeFileSync(f, `version: 1
name: progress
stages:
  - name: lm
    stage: train
    with: { data: synthetic, out: ${dir}/lm, steps: 3, vocab_size: 32, d_model: 8, heads: 2, layers: 1, seq_len: 8, batch_size: 2, workers: 1, backend: cpu }
`);
    let out = '';
    const r = await runPipeline(f, { log: () => {}, checkArgv, progress: { isTTY: true, write: (s: string) => (out += s) } });
    expect(r.ok).toBe(true);
    expect(out).toMatch(/\r\x1b\[K {2}lm: train \d+% \d\/3 steps \| loss \d+\.\d{4} \| \d+ tok\/s \| ETA (\d+s|--)/);
    expect(out.endsWith('\r\x1b[K')).toBe(true);
  });
});
