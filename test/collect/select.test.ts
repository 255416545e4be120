/**
 * Active selection under a budget: the pick (pure), near-duplicate removal, the student's uncertainty,
 * and kd collect --budget-tokens/--select end to end against the fault-injecting teacher: only picked
 * rows are sent, within budget; rounds into one --out; a rerun after an abort sends exactly what is
 * left of the same pick, each request once.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { collect, type CollectInput } from '../../src/collect/index.js';
import { nearDuplicates, pickCandidates, type Candidate, SELECTION_FILE, type SelectionFile } from '../../src/collect/select.js';
import { disagreementOf, rowDisagreement, rowStats, studentDisagreement, studentUncertainty } from '../../src/collect/uncertainty.js';
import { disposeModel, initModel } from '../../src/model/gpt.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { readRawDir } from '../../src/schema/raw.js';
import { makeCheckpoint, testTokenizer } from '../serve/fixture.js';
import { initBackend } from '../../src/backend/index.js';
import { startTeacherServer, type TeacherServer } from './teacher-server.js';

let server: TeacherServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const WORDS = 'nation people congress war peace law trade money labor farm river school court army navy tax duty state union liberty'.split(' ');
/** n distinct texts (a seeded word salad each, 30–90 words) */
function texts(n: number): { id: string; text: string }[] {
  let s = 7;
  const r = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  return Array.from({ length: n }, (_, i) => ({ id: `t${i}`, text: Array.from({ length: 30 + Math.floor(r() * 60) }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ') + '.' }));
}

async function setup(rows: object[]) {
  server = await startTeacherServer({ keepLog: true });
  const dir = mkdtempSync(join(tmpdir(), 'kd-select-'));
  const input = join(dir, 'in.jsonl');
  writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const base: CollectInput = { teacherUrl: server.url, model: 'test-teacher', input, out: join(dir, 'raw'), mode: 'score', topK: 3, concurrency: 3 };
  return { dir, base, server };
}
const sentIds = (out: string) => new Set([...readRawDir(out)].map((r) => r.input_id));
const approx = (t: string) => Math.ceil(Buffer.byteLength(t) / 4); // the token estimate for a non-OpenAI model

describe('pickCandidates', () => {
  const cands: Candidate[] = Array.from({ length: 10 }, (_, i) => ({ id: `c${i}`, text: '', tokens: 10 + i, costUsd: (10 + i) / 1e6 }));
  const scores = cands.map((_, i) => ({ entropy: i % 5, margin: 1 - (i % 5) / 10 + i / 1000 }));

  it('random: a seeded shuffle within the token budget, skipping rows that no longer fit', () => {
    const a = pickCandidates(cands, null, { strategy: 'random', budgetTokens: 50, budgetUsd: Infinity, randomShare: 0, seed: 1 });
    expect(a.tokens).toBeLessThanOrEqual(50);
    expect(a.tokens).toBeGreaterThan(50 - 10); // nothing left that fits
    expect(pickCandidates(cands, null, { strategy: 'random', budgetTokens: 50, budgetUsd: Infinity, randomShare: 0, seed: 1 })).toEqual(a);
    expect(pickCandidates(cands, null, { strategy: 'random', budgetTokens: 50, budgetUsd: Infinity, randomShare: 0, seed: 2 }).ids).not.toEqual(a.ids);
  });

  it('entropy takes the least sure first, margin the smallest margins; the random share comes first', () => {
    const e = pickCandidates(cands, scores, { strategy: 'entropy', budgetTokens: 40, budgetUsd: Infinity, randomShare: 0, seed: 0 });
    expect(e.ids).toEqual(['c4', 'c9']); // entropy 4 (14 + 19 tokens); the next (c3, 13) would pass 40
    const m = pickCandidates(cands, scores, { strategy: 'margin', budgetTokens: 40, budgetUsd: Infinity, randomShare: 0, seed: 0 });
    expect(m.ids).toEqual(['c4', 'c9']); // smallest margin = same rows here
    const mixed = pickCandidates(cands, scores, { strategy: 'entropy', budgetTokens: 100, budgetUsd: Infinity, randomShare: 0.3, seed: 0 });
    const firstStrategy = mixed.by.indexOf('strategy');
    expect(mixed.by.slice(0, firstStrategy).every((b) => b === 'random')).toBe(true);
    const randomTokens = mixed.ids.slice(0, firstStrategy).reduce((s, id) => s + cands.find((c) => c.id === id)!.tokens, 0);
    expect(randomTokens).toBeLessThanOrEqual(30);
    expect(randomTokens).toBeGreaterThan(0);
    expect(mixed.tokens).toBeLessThanOrEqual(100);
  });

  it('disagreement takes the largest divergence first, after the random share; unscored rows last', () => {
    const d = cands.map((c, i) => ({ entropy: NaN, margin: NaN, disagreement: [0.1, 0.5, 0.3, 0.9, 0, 0.2, 0.7, 0.4, 0.6, 0.8][i]! }));
    // ranked: c3 .9 (13), c9 .8 (19), c6 .7 (16), c8 .6 (18), c1 .5 (11), …
    const p = pickCandidates(cands, d, { strategy: 'disagreement', budgetTokens: 45, budgetUsd: Infinity, randomShare: 0, seed: 0 });
    expect(p.ids).toEqual(['c3', 'c9', 'c1']); // 13 + 19 = 32; c6 (16) and c8 (18) would pass 45; c1 (11) fits: 43; nothing after does
    expect(p.tokens).toBe(43);
    expect(p.by).toEqual(['strategy', 'strategy', 'strategy']);
    const unscored = d.map((x, i) => (i === 3 ? { entropy: NaN, margin: NaN } : x));
    expect(pickCandidates(cands, unscored, { strategy: 'disagreement', budgetTokens: 1000, budgetUsd: Infinity, randomShare: 0, seed: 0 }).ids.at(-1)).toBe('c3');
    const mixed = pickCandidates(cands, d, { strategy: 'disagreement', budgetTokens: 100, budgetUsd: Infinity, randomShare: 0.3, seed: 0 });
    const first = mixed.by.indexOf('strategy');
    expect(first).toBeGreaterThan(0);
    expect(mixed.by.slice(first).every((b) => b === 'strategy')).toBe(true);
    expect(() => pickCandidates(cands, null, { strategy: 'disagreement', budgetTokens: 10, budgetUsd: Infinity, randomShare: 0, seed: 0 })).toThrow(/disagreement needs one score/);
  });

  it('a cost budget binds like a token budget', () => {
    const c = pickCandidates(cands, null, { strategy: 'random', budgetTokens: Infinity, budgetUsd: 45 / 1e6, randomShare: 0, seed: 3 });
    expect(c.costUsd).toBeLessThanOrEqual(45 / 1e6 + 1e-12);
    expect(c.ids.length).toBeGreaterThan(1);
  });
});

describe('nearDuplicates', () => {
  it('finds copies with small edits and case changes, keeps distinct texts and maps chains to the first', () => {
    const base = texts(3).map((t) => t.text);
    const words = base[0]!.split(' ');
    const edited = [...words.slice(0, 5), 'CHANGED', ...words.slice(6)].join(' '); // one word of 30+ changed
    const dup = nearDuplicates([base[0]!, base[1]!, base[0]!.toUpperCase(), base[2]!, edited]);
    expect(dup.get(2)).toBe(0);
    expect(dup.get(4)).toBe(0);
    expect(dup.has(1)).toBe(false);
    expect(dup.has(3)).toBe(false);
    expect(dup.size).toBe(2);
  });
});

describe('student uncertainty', () => {
  it('rowStats: entropy and top-2 margin of each row', () => {
    const { entropy, margin } = rowStats(Float32Array.from([0.5, 0.5, 0, 1, 0, 0]), 3);
    expect(entropy[0]).toBeCloseTo(Math.log(2), 6);
    expect(margin[0]).toBeCloseTo(0, 6);
    expect(entropy[1]).toBeCloseTo(0, 6);
    expect(margin[1]).toBeCloseTo(1, 6);
  });

  it('rowDisagreement: Jensen–Shannon divergence of each row across the models', () => {
    const a = Float32Array.from([1, 0, 0.5, 0.5, 0.25, 0.75]);
    const b = Float32Array.from([0, 1, 1, 0, 0.25, 0.75]);
    const d = rowDisagreement([a, b], 2);
    expect(d[0]).toBeCloseTo(Math.log(2), 6); // disjoint: ln 2, the maximum for two
    // [.5 .5] vs [1 0]: mix [.75 .25]: H = .5623; mean of H(.5,.5) = ln 2 and 0: .3466; JSD .2158
    expect(d[1]).toBeCloseTo(-(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25)) - Math.log(2) / 2, 6);
    expect(d[1]).toBeCloseTo(0.2158, 4);
    expect(d[2]).toBeCloseTo(0, 6); // the same distribution
    // three one-hot distributions on different tokens: ln 3
    const three = rowDisagreement([Float32Array.from([1, 0, 0]), Float32Array.from([0, 1, 0]), Float32Array.from([0, 0, 1])], 3);
    expect(three[0]).toBeCloseTo(Math.log(3), 6);
  });

  it('disagreementOf: 0 for a model against itself, > 0 for two different inits, NaN for an empty text', async () => {
    await initBackend({ backend: 'cpu' });
    const tok = testTokenizer();
    const config = resolveModelConfig({ vocabSize: tok.vocabSize, seqLen: 16, dModel: 16, nLayers: 1, nHeads: 2 });
    const m1 = initModel(config, 1), m2 = initModel(config, 2);
    try {
      const txt = ['hello world the', 'ab'.repeat(20), ''];
      const same = disagreementOf([m1, m1], tok, txt);
      expect(same[0]).toBeCloseTo(0, 6);
      expect(same[1]).toBeCloseTo(0, 6);
      const diff = disagreementOf([m1, m2], tok, txt);
      expect(diff[0]).toBeGreaterThan(1e-6);
      expect(diff[1]).toBeGreaterThan(1e-6);
      expect(diff[1]).toBeLessThanOrEqual(Math.log(2));
      expect(diff[2]).toBeNaN();
      expect(() => disagreementOf([m1], tok, txt)).toThrow(/at least two/);
    } finally {
      disposeModel(m1);
      disposeModel(m2);
    }
  });
});

describe('kd collect --budget-tokens / --select', () => {
  let student: string;
  let student2: string;
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    student = await makeCheckpoint();
    student2 = await makeCheckpoint(5);
  }, 120_000);

  it('random: only picked rows are sent, within the budget, near-duplicates never; a rerun sends nothing', async () => {
    const rows = texts(20);
    rows.push({ id: 'dup-of-t3', text: rows[3]!.text.toUpperCase() });
    const { base, server: srv } = await setup(rows);
    const budget = Math.floor(rows.reduce((s, r) => s + approx(r.text), 0) * 0.4);
    const s = await collect({ ...base, budgetTokens: budget });
    expect(s.stopReason).toBe('complete');
    expect(s.selection).toMatchObject({ strategy: 'random', nearDuplicates: 1, alreadyDone: 0 });
    const sent = sentIds(base.out);
    expect(sent.size).toBe(s.selection!.selected);
    expect(sent.has('dup-of-t3')).toBe(false);
    const est = [...sent].reduce((a, id) => a + approx(rows.find((r) => r.id === id)!.text), 0);
    expect(est).toBeLessThanOrEqual(budget);
    expect(est).toBe(s.selection!.selectedTokens);
    expect(s.rows).toBe(sent.size);
    const sel = JSON.parse(readFileSync(join(base.out, SELECTION_FILE), 'utf8')) as SelectionFile;
    expect(new Set(sel.rounds[0]!.ids)).toEqual(sent);

    const before = srv.log.length;
    const again = await collect({ ...base, budgetTokens: budget });
    expect(again.selection!.reused).toBe(true);
    expect(again.alreadyDone).toBe(sent.size);
    expect(srv.log.length).toBe(before);
  });

  it('a second round into the same --out spends only what the budget has left, on new rows', async () => {
    const rows = texts(24);
    const { base, server: srv } = await setup(rows);
    const total = rows.reduce((s, r) => s + approx(r.text), 0);
    const s1 = await collect({ ...base, budgetTokens: Math.floor(total * 0.25) });
    const first = sentIds(base.out);
    const spent = s1.tokens.prompt + s1.tokens.completion;
    const logAt = srv.log.length;
    const s2 = await collect({ ...base, budgetTokens: Math.floor(total * 0.6), select: 'entropy', student, randomShare: 0.25 });
    expect(s2.stopReason).toBe('complete');
    expect(s2.selection).toMatchObject({ strategy: 'entropy', alreadyDone: first.size, spentTokensBefore: spent });
    expect(s2.selection!.selectedTokens).toBeLessThanOrEqual(Math.floor(total * 0.6) - spent);
    expect(s2.selection!.byStrategy).toBeGreaterThan(0);
    expect(s2.selection!.byRandom).toBeGreaterThan(0);
    const sentNow = srv.log.slice(logAt).length;
    expect(sentNow).toBe(s2.selection!.selected); // one request per new row, none of round 1 again
    const all = sentIds(base.out);
    for (const id of first) expect(all.has(id)).toBe(true);
    expect(all.size).toBe(first.size + s2.selection!.selected);
  });

  it('entropy picks the rows the student is least sure of (checked against its own scores)', async () => {
    const rows = texts(16);
    const { base } = await setup(rows);
    const u = await studentUncertainty(student, rows.map((r) => r.text));
    const budget = rows.reduce((s, r) => s + approx(r.text), 0) / 3;
    const s = await collect({ ...base, budgetTokens: Math.floor(budget), select: 'entropy', student, randomShare: 0 });
    const sent = sentIds(base.out);
    const ranked = rows.map((r, i) => ({ id: r.id, h: u[i]!.entropy })).sort((a, b) => b.h - a.h);
    // the most uncertain row is in, and every picked row is at least as uncertain as any skipped row that would have fit
    expect(sent.has(ranked[0]!.id)).toBe(true);
    const minPicked = Math.min(...ranked.filter((r) => sent.has(r.id)).map((r) => r.h));
    expect(ranked.filter((r) => !sent.has(r.id) && r.h > minPicked).every((r) => approx(rows.find((x) => x.id === r.id)!.text) + s.selection!.selectedTokens > budget)).toBe(true);
  });

  it('disagreement: the rows two checkpoints disagree on most are sent, with the random share; the round names both', async () => {
    const rows = texts(16);
    rows.push({ id: 'dup-of-t2', text: rows[2]!.text + ' ' });
    const { base, server: srv } = await setup(rows);
    const u = await studentDisagreement([student, student2], rows.map((r) => r.text));
    const budget = Math.floor(rows.reduce((s, r) => s + approx(r.text), 0) / 3);
    const s = await collect({ ...base, budgetTokens: budget, select: 'disagreement', student: [student, student2], randomShare: 0 });
    expect(s.stopReason).toBe('complete');
    expect(s.selection).toMatchObject({ strategy: 'disagreement', nearDuplicates: 1, byRandom: 0 });
    const sent = sentIds(base.out);
    expect(sent.has('dup-of-t2')).toBe(false);
    expect(srv.log.length).toBe(sent.size);
    const ranked = rows.slice(0, 16).map((r, i) => ({ id: r.id, d: u[i]!.disagreement! })).sort((a, b) => b.d - a.d);
    expect(ranked[0]!.d).toBeGreaterThan(0);
    expect(sent.has(ranked[0]!.id)).toBe(true);
    const minPicked = Math.min(...ranked.filter((r) => sent.has(r.id)).map((r) => r.d));
    expect(ranked.filter((r) => !sent.has(r.id) && r.d > minPicked).every((r) => approx(rows.find((x) => x.id === r.id)!.text) + s.selection!.selectedTokens > budget)).toBe(true);
    const sel = JSON.parse(readFileSync(join(base.out, SELECTION_FILE), 'utf8')) as SelectionFile;
    expect(sel.rounds[0]).toMatchObject({ strategy: 'disagreement', student, students: [student, student2] });
    // with a random share: both kinds
    const { base: b2 } = await setup(rows);
    const s2 = await collect({ ...b2, budgetTokens: budget, select: 'disagreement', student: [student, student2], randomShare: 0.4 });
    expect(s2.selection!.byRandom).toBeGreaterThan(0);
    expect(s2.selection!.byStrategy).toBeGreaterThan(0);
  });

  it('--max-cost: the pick fits the cap by the upper bound, so a byte-level teacher gets every picked row and no more than the cap', async () => {
    const rows = texts(20);
    server = await startTeacherServer({ keepLog: true, billPromptTokens: (p) => Buffer.byteLength(p) });
    const dir = mkdtempSync(join(tmpdir(), 'kd-select-'));
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const maxCost = rows.reduce((s, r) => s + Buffer.byteLength(r.text), 0) * 0.4 / 1e6; // $1 per 1M: 40% of what every row costs
    const s = await collect({ teacherUrl: server.url, model: 'test-teacher', input, out: join(dir, 'raw'), mode: 'score', topK: 3, concurrency: 3, maxCost, priceIn: 1, priceOut: 1, select: 'random' });
    expect(s.stopReason).toBe('complete'); // not 'budget': nothing picked was left unsent
    expect(sentIds(join(dir, 'raw')).size).toBe(s.selection!.selected);
    expect(s.selection!.selected).toBeGreaterThan(3);
    expect(s.totalCostUsd).toBeLessThanOrEqual(maxCost);
  });

  it('an abort mid-run, then the same command: the stored pick is finished, every request exactly once', async () => {
    const rows = texts(40);
    server = await startTeacherServer({ keepLog: true, latencyMs: 20, fault: (c) => { if (c.seq === 6) controller.abort(); return null; } });
    const controller = new AbortController();
    const dir = mkdtempSync(join(tmpdir(), 'kd-select-'));
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const o: CollectInput = { teacherUrl: server.url, model: 'test-teacher', input, out: join(dir, 'raw'), mode: 'score', topK: 3, concurrency: 2, budgetTokens: 900, select: 'margin', student };
    const s1 = await collect(o, { signal: controller.signal });
    expect(s1.stopReason).toBe('interrupted');
    const done1 = new Set([...readRawDir(o.out)].map((r) => r.request_hash));
    const logAt = server.log.length;
    const s2 = await collect(o);
    expect(s2.stopReason).toBe('complete');
    for (const l of server.log.slice(logAt)) expect(done1.has(l.hash)).toBe(false); // nothing recorded is sent again
    expect(s2.selection!.reused).toBe(true);
    const sel = JSON.parse(readFileSync(join(o.out, SELECTION_FILE), 'utf8')) as SelectionFile;
    expect(sel.rounds).toHaveLength(1);
    const recs = [...readRawDir(o.out)];
    expect(new Set(recs.map((r) => r.input_id))).toEqual(new Set(sel.rounds[0]!.ids));
    expect(recs.length).toBe(sel.rounds[0]!.ids.length); // one record per row: nothing twice
  });

  it('bad combinations are one clear error before anything is sent', async () => {
    const { base, server: srv } = await setup(texts(3));
    await expect(collect({ ...base, select: 'entropy' })).rejects.toThrow(/give a budget/);
    await expect(collect({ ...base, budgetTokens: 100, select: 'entropy' })).rejects.toThrow(/--student/);
    await expect(collect({ ...base, budgetTokens: 100, select: 'margin', student: '/nonexistent' })).rejects.toThrow(/no such checkpoint/);
    await expect(collect({ ...base, budgetTokens: 100, randomShare: 2 })).rejects.toThrow(/--random-share/);
    await expect(collect({ ...base, budgetTokens: 100, select: 'disagreement', student })).rejects.toThrow(/--select disagreement: give at least two checkpoints .*got 1/);
    await expect(collect({ ...base, budgetTokens: 100, select: 'entropy', student: [student, student2] })).rejects.toThrow(/give one --student \(got 2\)/);
    await expect(collect({ ...base, budgetTokens: 100, select: 'disagreement', student: [student, '/nonexistent'] })).rejects.toThrow(/--student \/nonexistent: no such checkpoint/);
    expect(srv.log.length).toBe(0);
  });
});
