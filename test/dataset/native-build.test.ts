/**
 * The native dataset-build kernels (native/build.cc) against the JavaScript path they replace: V8's
 * Math.exp/log/log1p bit for bit, labelling bit for bit, and whole builds byte for byte (the golden
 * build, both ways, in this thread and in workers). Without the addon (no compiler at install) only
 * the JavaScript path exists, and the golden tests of ./columnar.test.ts cover it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { setNativeEnabled } from '../../src/backend/native.js';
import { buildDataset, buildDatasetParallel } from '../../src/dataset/build.js';
import { label, labelJs, nativeBuild, packRows } from '../../src/dataset/label.js';
import { NativeTable, group1Js, readRawShard } from '../../src/dataset/columnar.js';
import { Rng } from '../../src/core/rng.js';
import { LP8_DELTA, unpackIds } from '../../src/schema/lp8.js';
import { GOLDEN_OPTIONS, describeBuild, goldenRaw } from './golden.js';

const k = nativeBuild();
const golden = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'golden', 'v1-build.json'), 'utf8'));

describe.runIf(k !== null)('native dataset-build kernels (addon built)', () => {
  const rng = new Rng(17);

  it('exp, log and log1p are V8\'s Math.exp, Math.log and Math.log1p, bit for bit', () => {
    const n = 200_000;
    const x = new Float64Array(n), out = new Float64Array(n);
    const special = [0, -0, 1, -1, 0.5, -0.5, Infinity, -Infinity, Number.NaN, 5e-324, -5e-324, 1e-300, 709.78, 709.79, -745.1, -745.2, Math.LN2 / 2, 1e-20, -1e-20, -0.999999];
    // exp: 0 the AVX2 path (4 at a time; near its range's and argument reduction's edges too), 3 the scalar one
    const edges = [0.5 * Math.LN2, 1.5 * Math.LN2, 1, 704, 2 ** -28, 20];
    const nearEdge = () => edges[rng.int(edges.length)] * (1 + (rng.next() - 0.5) * (rng.next() < 0.5 ? 1e-12 : 1e-5)) * (rng.next() < 0.5 ? -1 : 1);
    const cases: [number, (v: number) => number, () => number][] = [
      [0, Math.exp, () => Math.fround(-rng.next() * 40)], [0, Math.exp, () => (rng.next() - 0.5) * 1500], [0, Math.exp, nearEdge],
      [3, Math.exp, () => Math.fround(-rng.next() * 40)], [3, Math.exp, nearEdge],
      [1, Math.log, () => rng.next() * 50], [1, Math.log, () => Math.exp((rng.next() - 0.5) * 1400)],
      [2, Math.log1p, () => Math.exp(-rng.next() * 60)], [2, Math.log1p, () => rng.next() * 4 - 0.999],
    ];
    for (const [op, f, gen] of cases) {
      for (let i = 0; i < n; i++) x[i] = i < special.length ? special[i] : gen();
      k!.mathF64(op, x, out);
      let bad = 0;
      for (let i = 0; i < n; i++) if (!Object.is(f(x[i]), out[i])) bad++;
      expect(bad, `op ${op}`).toBe(0);
    }
  });

  it('labels positions (merge, sort, entropy, float16 and 8-bit codes) exactly as the JavaScript path', () => {
    const n = 20_000;
    const m0 = new Int32Array(n);
    const first: number[] = [], lp: number[] = [];
    for (let j = 0; j < n; j++) {
      const m = 1 + rng.int(24);
      m0[j] = m;
      const best = j % 7 === 0 ? 0 : -rng.next() * 3;
      for (let a = 0; a < m; a++) {
        // repeated first ids (merged), ties, −0, entries far below the best (clipped codes)
        const id = j % 3 === 0 ? rng.int(4) : rng.int(300);
        const l = a === 0 ? (j % 11 === 0 ? -0 : best) : j % 5 === 0 && a === 1 ? best : Math.fround(best - rng.next() * (a % 4 === 0 ? 40 : 8));
        first.push(id); lp.push(l);
      }
    }
    const pOff = new Int32Array(n);
    for (let j = 1; j < n; j++) pOff[j] = pOff[j - 1] + m0[j - 1];
    const x = { n, m0, pOff, first: Uint16Array.from(first), lp: Float32Array.from(lp), p: Float64Array.from(lp, (l) => Math.exp(Math.fround(l))) };
    for (const version of [1, 2] as const) {
      const a = label(x, 300, version, k), b = labelJs(x, 300, version);
      expect(a.maxK).toBe(b.maxK);
      expect(Array.from(a.counts)).toEqual(Array.from(b.counts));
      expect(Array.from(a.topIds)).toEqual(Array.from(b.topIds));
      expect(Buffer.from(a.entropies.buffer).equals(Buffer.from(b.entropies.buffer))).toBe(true);
      if (version === 1) expect(Array.from(a.lp16!)).toEqual(Array.from(b.lp16!));
      else {
        expect(Array.from(a.best16!)).toEqual(Array.from(b.best16!));
        expect(Array.from(a.lp8!)).toEqual(Array.from(b.lp8!));
      }
    }
  });

  it('8-bit codes: near ties, where exp(best)·exp(−d̂) is not exact enough to choose, give the exact path\'s codes', () => {
    // a position with best −0.5 (exact in float16: the running error starts at 0) and one entry whose p sits
    // at the midpoint of its two candidate p̂, give or take a few ulps: the two distances tie to rounding
    const n = 4000, best = -0.5;
    const m0 = new Int32Array(n).fill(3), pOff = Int32Array.from({ length: n }, (_, j) => 3 * j);
    const first: number[] = [], lp: number[] = [], p: number[] = [];
    let approxWrong = 0;
    for (let j = 0; j < n; j++) {
      const lo = 1 + (j % 250);
      const l1 = Math.fround(best - (LP8_DELTA[lo] + LP8_DELTA[lo + 1]) / 2);
      const qLo = Math.exp(best - LP8_DELTA[lo]), qHi = Math.exp(best - LP8_DELTA[lo + 1]);
      const mid = (qLo + qHi) / 2, ulp = mid * 2 ** -52;
      const p1 = mid + ((j >> 3) % 9 - 4) * ulp;
      first.push(0, 1, 2); lp.push(best, l1, Math.fround(l1 - 1)); p.push(Math.exp(best), p1, Math.exp(Math.fround(l1 - 1)));
      // what the product alone would choose, against the exact choice
      const eb = Math.exp(best), aLo = eb * Math.exp(-LP8_DELTA[lo]), aHi = eb * Math.exp(-LP8_DELTA[lo + 1]);
      const exact = Math.abs(qLo - p1) <= Math.abs(qHi - p1), approx = Math.abs(aLo - p1) <= Math.abs(aHi - p1);
      if (exact !== approx) approxWrong++;
    }
    expect(approxWrong, 'the test has ties the product gets wrong').toBeGreaterThan(0);
    const x = { n, m0, pOff, first: Uint16Array.from(first), lp: Float32Array.from(lp), p: Float64Array.from(p) };
    const a = label(x, 300, 2, k), b = labelJs(x, 300, 2);
    expect(Array.from(a.best16!)).toEqual(Array.from(b.best16!));
    expect(Buffer.from(a.lp8!).equals(Buffer.from(b.lp8!))).toBe(true);
  });

  it('pass 1 groups: the fold of grouped events gives every sum of the event-by-event fold, bit for bit', () => {
    // three shards over overlapping tokens (bytes), events in a random order: the reference folds event by event
    const tokens = Array.from({ length: 500 }, (_, i) => Buffer.from(`tok${i * 7919 % 1000}`));
    const ref = { g: new Map<string, number>(), count: [] as number[], mass: [] as number[], total: 0.25 };
    const table = new NativeTable(k!);
    let count = new Float64Array(0), mass = new Float64Array(0);
    const total = new Float64Array([0.25]);
    for (let shard = 0; shard < 3; shard++) {
      const local = Array.from({ length: 200 }, () => tokens[rng.int(tokens.length)]).filter((b, i, a) => a.findIndex((x) => x.equals(b)) === i);
      const pool = Buffer.concat(local), off = new Int32Array(local.length + 1);
      local.forEach((b, i) => { off[i + 1] = off[i] + b.length; });
      const events: number[] = [], p: number[] = [];
      for (let e = 0; e < 5000; e++) {
        const t = Math.min(local.length - 1, Math.floor(local.length * rng.next() ** 3)); // frequent tokens first
        if (rng.next() < 0.1) events.push(-1 - t); else { events.push(t); p.push(rng.next() * 10 ** -rng.int(6)); }
      }
      for (let e = 0, j = 0; e < events.length; e++) {
        const x = events[e], key = local[x < 0 ? -1 - x : x].toString();
        let g = ref.g.get(key);
        if (g === undefined) { ref.g.set(key, g = ref.g.size); ref.count.push(0); ref.mass.push(0); }
        if (x < 0) ref.count[g]++;
        else { ref.mass[g] += p[j]; ref.total += p[j++]; }
      }
      const ev = Int32Array.from(events), pv = Float64Array.from(p);
      const js = group1Js(ev, pv, local.length);
      const order = new Int32Array(local.length), cnt = new Int32Array(local.length), qOff = new Int32Array(local.length + 1), qs = new Float64Array(pv.length);
      const named = k!.group1(ev, pv, local.length, order, cnt, qOff, qs);
      expect(named).toBe(js.named);
      expect([Array.from(order), Array.from(cnt), Array.from(qOff)]).toEqual([Array.from(js.order), Array.from(js.cnt), Array.from(js.qOff)]);
      expect(Buffer.from(qs.buffer).equals(Buffer.from(js.qs.buffer))).toBe(true);
      const c2 = new Float64Array(table.size + named), m2 = new Float64Array(table.size + named);
      c2.set(count); m2.set(mass); count = c2; mass = m2;
      table.size = k!.fold1(table.handle, pool, off, order, cnt, qOff, qs, named, pv, count, mass, total);
    }
    expect(table.size).toBe(ref.g.size);
    expect(Array.from(count.subarray(0, table.size))).toEqual(ref.count);
    expect(Buffer.from(mass.buffer, 0, 8 * table.size).equals(Buffer.from(Float64Array.from(ref.mass).buffer))).toBe(true);
    expect(Object.is(total[0], ref.total)).toBe(true);
  });

  it('packs ids row by row as packIds does, at every width (each row starting on a byte)', () => {
    for (const bits of [1, 3, 8, 11, 13, 16]) {
      const rows = 40, rowEnt = new Int32Array(rows + 1);
      for (let r = 0; r < rows; r++) rowEnt[r + 1] = rowEnt[r] + (r % 7 === 0 ? 0 : rng.int(60));
      const ids = Uint16Array.from({ length: rowEnt[rows] }, () => rng.int(2 ** bits));
      const a = packRows(ids, rowEnt, bits, k), b = packRows(ids, rowEnt, bits, null);
      expect(Buffer.from(a.packed).equals(Buffer.from(b.packed)), `bits ${bits}`).toBe(true);
      expect(Array.from(a.packOff)).toEqual(Array.from(b.packOff));
      const back = new Uint16Array(ids.length);
      for (let r = 0; r < rows; r++) unpackIds(a.packed, a.packOff[r], rowEnt[r + 1] - rowEnt[r], bits, back, rowEnt[r]);
      expect(Array.from(back)).toEqual(Array.from(ids));
    }
  });

  it('maps raw shards: the same bytes as reading them; the previous shard\'s bytes read as empty after the next call', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-map-'));
    try {
      const a = path.join(dir, 'a.arrows'), b = path.join(dir, 'b.arrows'), empty = path.join(dir, 'empty.arrows');
      fs.writeFileSync(a, Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 255)));
      fs.writeFileSync(b, 'second shard');
      fs.writeFileSync(empty, '');
      const x = readRawShard(a);
      expect(Buffer.from(x).equals(fs.readFileSync(a))).toBe(true);
      const view = x.subarray(10, 20);
      const y = readRawShard(b);
      expect(Buffer.from(y).toString()).toBe('second shard');
      if (k!.mapFile) expect([x.length, view.length, view[0]]).toEqual([0, 0, undefined]); // (no mmap on this platform: a reused buffer)
      expect(readRawShard(empty).length).toBe(0); // (not mappable: read)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('whole builds: native and JavaScript write the same bytes', () => {
    const raw = goldenRaw();
    const root = path.dirname(raw);
    const env = process.env.KD_NATIVE;
    const js = async <T>(f: () => T | Promise<T>): Promise<T> => {
      setNativeEnabled(false);
      process.env.KD_NATIVE = '0'; // the workers started meanwhile load without the addon
      try {
        return await f();
      } finally {
        setNativeEnabled(true);
        if (env === undefined) delete process.env.KD_NATIVE;
        else process.env.KD_NATIVE = env;
      }
    };
    afterAll(() => setNativeEnabled(true));

    it.each([
      ['native, this thread', (out: string) => buildDataset({ from: raw, out, ...GOLDEN_OPTIONS, formatVersion: 1 })],
      ['native, 2 workers', (out: string) => buildDatasetParallel({ from: raw, out, ...GOLDEN_OPTIONS, formatVersion: 1, workers: 2 })],
      ['JavaScript, this thread', (out: string) => js(() => buildDataset({ from: raw, out, ...GOLDEN_OPTIONS, formatVersion: 1 }))],
      ['JavaScript, 2 workers', (out: string) => js(() => buildDatasetParallel({ from: raw, out, ...GOLDEN_OPTIONS, formatVersion: 1, workers: 2 }))],
    ])('version 1, %s: the golden build', async (name, build) => {
      const out = path.join(root, `nb-${name.replace(/\W+/g, '-')}`);
      await build(out);
      expect(describeBuild(out)).toEqual(golden);
    });

    it('version 2: native (this thread, 3 workers) and JavaScript give the same bytes', async () => {
      const out = (name: string) => path.join(root, `nb-v2-${name}`);
      await js(() => buildDataset({ from: raw, out: out('js'), ...GOLDEN_OPTIONS }));
      const want = describeBuild(out('js'));
      expect(want.manifest.version).toBe(2);
      for (const [name, build] of [
        ['native', () => buildDataset({ from: raw, out: out('native'), ...GOLDEN_OPTIONS })],
        ['native-workers', () => buildDatasetParallel({ from: raw, out: out('native-workers'), ...GOLDEN_OPTIONS, workers: 3 })],
      ] as const) {
        await build();
        expect(describeBuild(out(name)), name).toEqual(want);
      }
    });
  });
});
