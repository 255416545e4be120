/**
 * `kd dataset import`: previously saved OpenAI chat-completion responses (with logprobs) → raw
 * shards, as if `kd collect` had fetched them. Parsing is collect's own {@link parseChat}, so both
 * paths treat sentinels, missing bytes and short top-k lists the same way.
 *
 * Accepted line shapes (JSONL, one per line; CSV, one per row):
 * - a chat.completion object: `{"id", "choices": [{"logprobs": {"content": [...]}}], ...}`
 * - a Batch API output line: `{"custom_id", "response": {"body": <chat.completion>}}`
 * - a pair: `{"id"?, "messages"? | "request": {"messages"}, "response": <chat.completion>}`
 * CSV needs a `response` column (the JSON); optional `id`/`input_id`, `messages` (JSON) or `prompt`.
 * The input id is custom_id, then id/input_id, then the completion's id, then the line number.
 */
import { parse as parseCsv } from 'csv-parse/sync';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseChat, type PlannedRequest } from '../collect/index.js';
import { KdError } from '../core/errors.js';
import { IMPORT_DEFAULTS } from './options.js';
import { IPC_EOS, RawStreamEncoder, type RawRecord, listRawShards, rawSchema, rawShardName, renderPrompt } from '../schema/raw.js';

export interface ImportOptions {
  /** a .jsonl or .csv file */
  from: string;
  /** the raw directory to write (datasets/NAME/raw) */
  out: string;
  /** alternatives kept per position (default 20, the APIs' maximum) */
  topK?: number;
  /** replace raw shards already in --out */
  force?: boolean;
}

export interface ImportSummary {
  file: string;
  lines: number;
  records: number;
  rejected: number;
  /** the first few rejects: line number and reason */
  rejects: { line: number; reason: string }[];
  shards: string[];
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

interface Item { line: number; text: string; id?: string; messages?: unknown; prompt?: string }

function* items(file: string): Generator<Item> {
  const text = fs.readFileSync(file, 'utf8');
  if (/\.csv$/i.test(file)) {
    let rows: Record<string, string>[];
    try {
      rows = parseCsv(text, { columns: true, skip_empty_lines: true, bom: true }) as Record<string, string>[];
    } catch (e) {
      throw new KdError('input-format', `${file}: not valid CSV (${(e as Error).message})`);
    }
    if (rows.length > 0 && !('response' in rows[0])) throw new KdError('input-column', `${file}: row 1 (header): no "response" column (columns: ${Object.keys(rows[0]).join(', ')})`);
    for (const [i, r] of rows.entries()) {
      let messages: unknown;
      if (r.messages) {
        try { messages = JSON.parse(r.messages); } catch { messages = undefined; }
      }
      yield { line: i + 2, text: r.response ?? '', id: str(r.id) ?? str(r.input_id), messages, prompt: str(r.prompt) };
    }
    return;
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) if (lines[i].trim() !== '') yield { line: i + 1, text: lines[i] };
}

/** One input line → its completion JSON, input id and prompt, or a reason to reject it. */
function unwrap(it: Item): { json: unknown; id: string; prompt: string | null } | string {
  let v: unknown;
  try {
    v = JSON.parse(it.text);
  } catch (e) {
    return `not valid JSON (${(e as Error).message})`;
  }
  if (!isObj(v)) return 'not a JSON object';
  let json: unknown = v;
  let messages: unknown = it.messages ?? v.messages ?? (isObj(v.request) ? (v.request.messages ?? (isObj(v.request.body) ? v.request.body.messages : undefined)) : undefined);
  if (isObj(v.response)) {
    if (v.error) return `the saved request failed: ${JSON.stringify(v.error)}`;
    json = isObj(v.response.body) ? v.response.body : v.response;
  } else if (!Array.isArray(v.choices)) {
    return 'neither a chat completion (choices) nor a {response: …} wrapper';
  }
  if (isObj(json) && Array.isArray(json.messages) && messages === undefined) messages = json.messages;
  const id = it.id ?? str(v.custom_id) ?? str(v.input_id) ?? (json !== v ? str(v.id) : undefined) ?? (isObj(json) ? str(json.id) : undefined) ?? `line-${it.line}`;
  const prompt = renderPrompt(messages) ?? (it.prompt !== undefined ? `user: ${it.prompt}\n` : null);
  return { json, id, prompt };
}

export function importResponses(o: ImportOptions): ImportSummary {
  const file = o.from;
  if (!fs.existsSync(file)) throw new KdError('missing-file', `${file}: no such file`);
  if (!/\.(jsonl|ndjson|csv)$/i.test(file)) throw new KdError('input-format', `${file}: expected a .jsonl or .csv file of saved chat-completion responses`);
  fs.mkdirSync(o.out, { recursive: true });
  if (listRawShards(o.out).length > 0 && !o.force) throw new KdError('would-overwrite', `${o.out}: already holds raw shards; pass --force to replace them`);
  const topK = o.topK ?? IMPORT_DEFAULTS.topK;
  const records: RawRecord[] = [];
  const rejects: { line: number; reason: string }[] = [];
  let lines = 0;
  for (const it of items(file)) {
    lines++;
    const u = unwrap(it);
    if (typeof u === 'string') {
      rejects.push({ line: it.line, reason: u });
      continue;
    }
    const hash = createHash('sha256').update(it.text).digest('hex');
    const req: PlannedRequest = {
      endpoint: 'chat', body: { messages: [] }, hash, inputId: u.id, row: it.line,
      chunkIndex: 0, chunkCount: 1, chunkStart: null, scoreFrom: null, text: null,
    };
    const created = isObj(u.json) && typeof u.json.created === 'number' ? u.json.created * 1000 : 0;
    const parsed = parseChat(u.json, { req, topK, latencyMs: 0, attempts: 0, completedAt: created });
    if (!parsed.ok) {
      rejects.push({ line: it.line, reason: `${parsed.reason}: ${parsed.detail}` });
      continue;
    }
    for (const r of parsed.records) records.push({ ...r, prompt: u.prompt });
  }
  if (records.length === 0) {
    const first = rejects[0];
    throw new KdError('input-empty', `${file}: no usable responses${first ? ` (line ${first.line}: ${first.reason})` : ''}`);
  }
  for (const f of listRawShards(o.out)) fs.rmSync(f);
  // one shard per 1000 records keeps each one small enough to read whole
  const shards: string[] = [];
  const models = [...new Set(records.map((r) => r.model).filter((m): m is string => Boolean(m)))];
  for (let s = 0; s * 1000 < records.length; s++) {
    const enc = new RawStreamEncoder(rawSchema({ 'kd.source': 'import', 'kd.model': models.join(',') }));
    const name = rawShardName(s + 1);
    const partial = path.join(o.out, rawShardName(s + 1, true));
    fs.writeFileSync(partial, Buffer.concat([enc.start(), enc.batch(records.slice(s * 1000, (s + 1) * 1000)), IPC_EOS]));
    fs.renameSync(partial, path.join(o.out, name));
    shards.push(name);
  }
  if (rejects.length) fs.writeFileSync(path.join(o.out, 'rejects.jsonl'), rejects.map((r) => JSON.stringify({ file, ...r })).join('\n') + '\n');
  return { file, lines, records: records.length, rejected: rejects.length, rejects: rejects.slice(0, 5), shards };
}
