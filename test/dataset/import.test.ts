import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/dataset/build.js';
import { importResponses } from '../../src/dataset/import.js';
import { readDatasetManifest } from '../../src/schema/dataset.js';
import { readRawDir } from '../../src/schema/raw.js';
import { paragraphs, rawRecords, tmpDir } from './fixtures.js';

/** A chat.completion body with logprobs, as the OpenAI API returns it, made from a fixture record. */
function completion(i: number, text: string) {
  const r = rawRecords([text], { k: 5, seed: i })[0];
  return {
    id: `chatcmpl-${i}`, object: 'chat.completion', created: 1_700_000_000 + i, model: 'gpt-4o-mini-2024-07-18',
    choices: [{
      index: 0, finish_reason: 'stop', message: { role: 'assistant', content: text },
      logprobs: {
        content: r.tokens.map((t, p) => ({
          token: t, logprob: r.token_logprobs[p], bytes: r.token_bytes[p] ? [...r.token_bytes[p]!] : null,
          top_logprobs: r.top_tokens[p]!.map((a, j) => ({ token: a, logprob: r.top_logprobs[p]![j] ?? -9999, bytes: r.top_bytes[p]![j] ? [...r.top_bytes[p]![j]!] : null })),
        })),
      },
    }],
    usage: { prompt_tokens: 20, completion_tokens: r.tokens.length, total_tokens: 20 + r.tokens.length },
  };
}

const texts = paragraphs(12);
const messages = (i: number) => [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `Paragraph ${i}?` }];

describe('kd dataset import (saved OpenAI chat completions)', () => {
  it('reads completions, Batch API output lines and {messages, response} pairs; rejects bad lines with their line number', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'saved.jsonl');
    const lines = [
      JSON.stringify(completion(0, texts[1])),
      JSON.stringify({ id: 'batch_req_1', custom_id: 'row-7', response: { status_code: 200, request_id: 'r', body: completion(1, texts[2]) }, error: null }),
      JSON.stringify({ messages: messages(3), response: completion(3, texts[3]) }),
      '{not json',
      JSON.stringify({ ...completion(4, texts[4]), choices: [{ index: 0, message: { content: 'x' }, finish_reason: 'stop' }] }),
      '',
    ];
    fs.writeFileSync(file, lines.join('\n'));
    const s = importResponses({ from: file, out: path.join(dir, 'raw') });
    expect(s).toMatchObject({ lines: 5, records: 3, rejected: 2 });
    expect(s.rejects.map((r) => r.line)).toEqual([4, 5]);
    expect(s.rejects[1].reason).toMatch(/no_logprobs/);
    const recs = [...readRawDir(path.join(dir, 'raw'))];
    expect(recs.map((r) => r.input_id)).toEqual(['chatcmpl-0', 'row-7', 'chatcmpl-3']);
    expect(recs[2].prompt).toBe('system: Be brief.\nuser: Paragraph 3?\n');
    expect(recs[0].prompt).toBeUndefined(); // no messages saved: no prompt
    expect(recs[1].tokens.join('')).toBe(texts[2]);
    expect(recs[1].token_bytes[2]).toBeNull(); // the saved response had no bytes there
    expect(recs[1].top_logprobs[0]!.length).toBe(5);
    expect(fs.readFileSync(path.join(dir, 'raw', 'rejects.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    expect(() => importResponses({ from: file, out: path.join(dir, 'raw') })).toThrow(/already holds raw shards; pass --force/);
  });

  it('reads CSV with a response column, and builds a dataset straight from a responses file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'saved.csv');
    const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
    const rows = texts.slice(0, 10).map((t, i) => [`id-${i}`, q(`Write paragraph ${i}`), q(JSON.stringify(completion(i, t)))].join(','));
    fs.writeFileSync(file, ['id,prompt,response', ...rows].join('\n') + '\n');
    const s = importResponses({ from: file, out: path.join(dir, 'raw') });
    expect(s.records).toBe(10);
    const recs = [...readRawDir(path.join(dir, 'raw'))];
    expect(recs[4]).toMatchObject({ input_id: 'id-4', prompt: 'user: Write paragraph 4\n', model: 'gpt-4o-mini-2024-07-18' });

    const out = path.join(dir, 'ds');
    const b = buildDataset({ from: file, out, vocabSize: 300, valFraction: 0.2 });
    expect(b.topK).toBe(5);
    expect(b.counts.records).toBe(10);
    const m = readDatasetManifest(out);
    expect(m.source.files).toEqual([{ file: 'saved.csv', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), bytes: fs.statSync(file).size }]);
    expect(() => importResponses({ from: path.join(dir, 'x.txt'), out: path.join(dir, 'r2') })).toThrow(/no such file/);
    fs.writeFileSync(path.join(dir, 'bad.csv'), 'a,b\n1,2\n');
    expect(() => importResponses({ from: path.join(dir, 'bad.csv'), out: path.join(dir, 'r3') })).toThrow(/bad\.csv: row 1 \(header\): no "response" column/);
  });
});
