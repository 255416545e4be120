import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromArrays, tableToIPC } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { RejectWriter, scanLedger } from '../../src/collect/ledger.js';
import { ShardWriter } from '../../src/collect/shards.js';
import { KdError } from '../../src/core/errors.js';
import {
  IPC_EOS, rawSchema, RawStreamEncoder, readRawBytes, readRawDir, readRawShard, scanIpcStream, type RawRecord,
} from '../../src/schema/raw.js';

function record(i: number, hash = `h${i}`): RawRecord {
  return {
    input_id: `id${i}`, request_hash: hash, mode: 'chat', choice_index: 0, chunk_index: 0, chunk_count: 1, chunk_start: null, score_from: null,
    tokens: ['a', 'é'], token_bytes: [Uint8Array.of(97), null], token_logprobs: [-0.5, null],
    top_ids: null, top_tokens: [['a', 'b'], []], top_bytes: [[Uint8Array.of(97), null], []], top_logprobs: [[-0.5, -2], []],
    text_offsets: null, finish_reason: 'stop', prompt_tokens: 10 + i, completion_tokens: 2, cached_tokens: null,
    model: 'm', system_fingerprint: i % 2 ? 'fp_a' : null, latency_ms: 12.25, attempts: 1, completed_at: 1_700_000_000_000 + i,
  };
}
const tmp = () => mkdtempSync(join(tmpdir(), 'kd-ledger-'));

describe('raw schema', () => {
  it('round-trips records through an IPC stream, with format metadata', () => {
    const enc = new RawStreamEncoder(rawSchema({ 'kd.mode': 'chat' }));
    const bytes = Buffer.concat([enc.start(), enc.batch([record(1), record(2)]), enc.batch([record(3)]), enc.end()]);
    const { records, schema, scan } = readRawBytes(bytes, 'x.arrows');
    expect(scan).toEqual({ completeBytes: bytes.length - 8, recordBatches: 2, hasEos: true, tornBytes: 0 });
    expect(schema.metadata.get('kd.format')).toBe('kd-raw');
    expect(schema.metadata.get('kd.format_version')).toBe('1');
    expect(records).toHaveLength(3);
    expect(records[0]).toEqual(record(1));
    expect(records[1]!.system_fingerprint).toBe(null);
    expect(records[0]!.top_bytes[0]![0]).toEqual(Uint8Array.of(97));
  });

  it('refuses an Arrow stream of another format', () => {
    const other = tableToIPC(tableFromArrays({ x: [1, 2] }), 'stream');
    expect(() => readRawBytes(other, 'other.arrows')).toThrow(KdError);
    expect(() => readRawBytes(other, 'other.arrows')).toThrow(/other\.arrows: not a kd raw shard/);
  });

  it('finds the last complete message wherever the stream is cut', () => {
    const enc = new RawStreamEncoder(rawSchema());
    const head = enc.start();
    const b1 = enc.batch([record(1)]);
    const b2 = enc.batch([record(2), record(3)]);
    const full = Buffer.concat([head, b1, b2]);
    for (let cut = 0; cut <= full.length; cut++) {
      const s = scanIpcStream(full.subarray(0, cut));
      const expected = cut < head.length ? 0 : cut < head.length + b1.length ? 0 : cut < full.length ? 1 : 2;
      expect(s.recordBatches).toBe(expected);
      expect(s.completeBytes).toBe(cut < head.length ? 0 : [head.length, head.length + b1.length, full.length][expected]);
      expect(s.hasEos).toBe(false);
    }
    expect(scanIpcStream(Buffer.concat([full, IPC_EOS])).hasEos).toBe(true);
  });
});

describe('shard writer', () => {
  it('writes one batch per event-loop turn, rolls shards by size, renames on close', async () => {
    const dir = tmp();
    const w = new ShardWriter({ dir, firstIndex: 1, schema: rawSchema(), maxBytes: 6000 });
    for (let i = 0; i < 12; i++) {
      w.add([record(i)]);
      if (i % 3 === 2) await new Promise((r) => setImmediate(r));
    }
    // add() resolves once its batch is on disk: a resume would find it done
    await w.add([record(12)]);
    expect(scanLedger(dir, { repair: false }).done.has(record(12).request_hash)).toBe(true);
    w.close();
    const files = readdirSync(dir).sort();
    expect(files.every((f) => /^raw-\d{5}\.arrows$/.test(f))).toBe(true);
    expect(files.length).toBeGreaterThan(1);
    const all = [...readRawDir(dir)];
    expect(all.map((r) => r.input_id)).toEqual(Array.from({ length: 13 }, (_, i) => `id${i}`));
    expect(w.closed.reduce((a, s) => a + s.records, 0)).toBe(13);
    expect(w.closed.reduce((a, s) => a + s.batches, 0)).toBe(5);
  });

  it('writes a batch at once when maxBatchPositions are queued, keeping the records of one add() together', async () => {
    const dir = tmp();
    const w = new ShardWriter({ dir, firstIndex: 1, schema: rawSchema(), maxBytes: 1 << 30, maxBatchPositions: 3 * (1 + record(0).tokens.length) });
    const first = w.add([record(0), record(1)]);
    let firstDone = false;
    void first.then(() => { firstDone = true; });
    const second = w.add([record(2), record(3)]); // 4 records queued ≥ the bound of 3: written now, both add()s in one batch
    await Promise.resolve();
    expect(firstDone).toBe(true); // settled without waiting for the next turn
    await second;
    w.add([record(4)]);
    await new Promise((r) => setImmediate(r)); // below the bound: written on the next turn
    w.close();
    expect(w.closed).toEqual([expect.objectContaining({ records: 5, batches: 2 })]);
    expect([...readRawDir(dir)].map((r) => r.input_id)).toEqual(['id0', 'id1', 'id2', 'id3', 'id4']);
  });
});

describe('resume ledger', () => {
  it('repairs a torn partial shard by keeping its complete batches, atomically', () => {
    const dir = tmp();
    const enc = new RawStreamEncoder(rawSchema());
    const parts = [enc.start(), enc.batch([record(1), record(2)]), enc.batch([record(3)])];
    const torn = enc.batch([record(4)]);
    writeFileSync(join(dir, 'raw-00001.arrows.partial'), Buffer.concat([...parts, torn.subarray(0, torn.length - 5)]));
    const before = scanLedger(dir, { repair: false });
    expect([...before.done].sort()).toEqual(['h1', 'h2', 'h3']);
    expect(existsSync(join(dir, 'raw-00001.arrows.partial'))).toBe(true); // dry scan changes nothing
    const s = scanLedger(dir, { repair: true });
    expect([...s.done].sort()).toEqual(['h1', 'h2', 'h3']);
    expect(s.nextShardIndex).toBe(2);
    expect(s.repairs[0]).toMatch(/kept 2 complete batch\(es\), dropped a torn tail/);
    expect(readdirSync(dir)).toEqual(['raw-00001.arrows']);
    expect(readRawShard(join(dir, 'raw-00001.arrows')).map((r) => r.request_hash)).toEqual(['h1', 'h2', 'h3']);
    expect(s.usage.promptTokens).toBe(11 + 12 + 13);
    expect([...s.systemFingerprints]).toEqual(['fp_a']);
    // a second scan finds nothing to repair
    expect(scanLedger(dir, { repair: true }).repairs).toEqual([]);
  });

  it('removes shards holding no complete batch and truncates a torn rejects line', () => {
    const dir = tmp();
    const enc = new RawStreamEncoder(rawSchema());
    writeFileSync(join(dir, 'raw-00003.arrows.partial'), enc.start().subarray(0, 20));
    const rw = new RejectWriter(join(dir, 'rejects.jsonl'));
    rw.write({ id: 'a', row: 1, reason: 'empty_prompt', detail: '', request_hash: 'r1', at: 'now' });
    rw.close();
    appendFileSync(join(dir, 'rejects.jsonl'), '{"id":"b","row":2,"reas');
    const s = scanLedger(dir, { repair: true });
    expect([...s.done]).toEqual(['r1']);
    expect(s.rejects).toBe(1);
    expect(s.nextShardIndex).toBe(4);
    expect(readdirSync(dir)).toEqual(['rejects.jsonl']);
    expect(readFileSync(join(dir, 'rejects.jsonl'), 'utf8').endsWith('\n')).toBe(true);
  });

  it('reports hashes found twice instead of hiding them', () => {
    const dir = tmp();
    const enc = new RawStreamEncoder(rawSchema());
    writeFileSync(join(dir, 'raw-00001.arrows'), Buffer.concat([enc.start(), enc.batch([record(1)]), enc.end()]));
    const enc2 = new RawStreamEncoder(rawSchema());
    writeFileSync(join(dir, 'raw-00002.arrows'), Buffer.concat([enc2.start(), enc2.batch([record(1)]), enc2.end()]));
    expect(scanLedger(dir, { repair: false }).duplicates).toBe(1);
  });
});
