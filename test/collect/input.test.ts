import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readInput, type InputOptions, type InputRow } from '../../src/collect/input.js';
import { KdError } from '../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'kd-input-'));
function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
async function rows(o: InputOptions): Promise<InputRow[]> {
  const out: InputRow[] = [];
  for await (const r of readInput(o)) out.push(r);
  return out;
}

describe('CSV input', () => {
  it('reads a header, quoted fields with newlines, a BOM, ids, system prompts', async () => {
    const f = file('a.csv', '\ufeffkey,question,sys\nk1,"Hello, ""you""\nthere",Be brief\nk2,Plain,\n');
    const r = await rows({ file: f, mode: 'chat', column: 'question', idColumn: 'key', systemColumn: 'sys' });
    expect(r).toEqual([
      { row: 1, id: 'k1', messages: [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Hello, "you"\nthere' }] },
      { row: 2, id: 'k2', messages: [{ role: 'user', content: 'Plain' }] },
    ]);
  });

  it('numbers rows when there is no id column and keeps UTF-8', async () => {
    const r = await rows({ file: file('b.csv', 'text\nčešće 🙂\nzwei\n'), mode: 'score' });
    expect(r).toEqual([{ row: 1, id: '1', text: 'češće 🙂' }, { row: 2, id: '2', text: 'zwei' }]);
  });

  it('turns empty prompts and invalid UTF-8 into rejects, not errors', async () => {
    const f = file('c.csv', Buffer.concat([Buffer.from('prompt\n""\n'), Buffer.from([0x61, 0xff, 0x62, 0x0a]), Buffer.from('ok\n')]));
    const r = await rows({ file: f, mode: 'chat' });
    expect(r.map((x) => x.reject?.reason ?? 'ok')).toEqual(['empty_prompt', 'invalid_utf8', 'ok']);
    expect(r.map((x) => x.id)).toEqual(['1', '2', '3']);
  });

  it('names file, row and column when a column is missing', async () => {
    const f = file('d.csv', 'a,b\n1,2\n');
    await expect(rows({ file: f, mode: 'chat' })).rejects.toThrow(KdError);
    await expect(rows({ file: f, mode: 'chat' })).rejects.toThrow(`${f}: row 1 (header): no column "prompt"`);
    await expect(rows({ file: f, mode: 'chat', column: 'a', idColumn: 'nope' })).rejects.toThrow(/no column "nope" for --id-column \(columns: a, b\)/);
  });

  it('names the line of malformed CSV', async () => {
    const f = file('e.csv', 'prompt,x\nfine,1\n"unterminated,2\n');
    await expect(rows({ file: f, mode: 'chat' })).rejects.toThrow(/e\.csv: line \d+: malformed CSV/);
  });
});

describe('JSONL input', () => {
  it('reads {id, prompt}, {messages}, numeric ids and line numbers', async () => {
    const f = file('a.jsonl', [
      JSON.stringify({ id: 'x', prompt: 'Hi' }),
      '',
      JSON.stringify({ messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }] }),
      JSON.stringify({ id: 7, prompt: 'Seven' }),
    ].join('\n'));
    const r = await rows({ file: f, mode: 'chat', system: 'default sys' });
    expect(r).toEqual([
      { row: 1, id: 'x', messages: [{ role: 'system', content: 'default sys' }, { role: 'user', content: 'Hi' }] },
      { row: 3, id: '3', messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }] },
      { row: 4, id: '7', messages: [{ role: 'system', content: 'default sys' }, { role: 'user', content: 'Seven' }] },
    ]);
  });

  it('reads {id, text} for score mode', async () => {
    const r = await rows({ file: file('b.jsonl', '{"id":"d1","text":"Some text."}\n'), mode: 'score' });
    expect(r).toEqual([{ row: 1, id: 'd1', text: 'Some text.' }]);
  });

  it('rejects bad rows: empty, bad messages, invalid UTF-8, lone surrogates', async () => {
    const f = file('c.jsonl', Buffer.concat([
      Buffer.from('{"id":"e","prompt":"  "}\n{"id":"m","messages":[{"role":"user"}]}\n{"id":"u","prompt":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}\n{"id":"s","prompt":"\\ud800x"}\n'),
    ]));
    const r = await rows({ file: f, mode: 'chat' });
    expect(r.map((x) => [x.id, x.reject?.reason])).toEqual([['e', 'empty_prompt'], ['m', 'invalid_messages'], ['u', 'invalid_utf8'], ['s', 'invalid_utf8']]);
  });

  it('names file and line of a malformed line or a missing field', async () => {
    const bad = file('d.jsonl', '{"prompt":"ok"}\n{"prompt": oops}\n');
    await expect(rows({ file: bad, mode: 'chat' })).rejects.toThrow(new RegExp(`d\\.jsonl: line 2: malformed JSON`));
    const missing = file('e.jsonl', '{"id":1,"question":"?"}\n');
    await expect(rows({ file: missing, mode: 'chat' })).rejects.toThrow(/e\.jsonl: line 1: no field "prompt" or "messages"/);
    await expect(rows({ file: missing, mode: 'score' })).rejects.toThrow(/line 1: no field "text"/);
    await expect(rows({ file: file('f.jsonl', '[1]\n'), mode: 'chat' })).rejects.toThrow(/line 1: expected a JSON object/);
  });

  it('refuses an unknown extension unless --format is given', async () => {
    const f = file('g.txt', '{"prompt":"a"}\n');
    await expect(rows({ file: f, mode: 'chat' })).rejects.toThrow(/use --format/);
    expect(await rows({ file: f, mode: 'chat', format: 'jsonl' })).toHaveLength(1);
  });
});
