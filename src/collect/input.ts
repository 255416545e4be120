/**
 * Input readers for `kd collect`: CSV (header row) and JSONL, streamed row by row.
 *
 * Files are read as latin1 so that every byte maps to one char: the CSV/JSONL structure (commas,
 * quotes, newlines, braces) is ASCII and parses the same, and each field is then turned back into
 * its bytes and decoded as strict UTF-8. A row with invalid UTF-8 becomes a reject instead of being
 * silently "repaired" with U+FFFD.
 *
 * Row ids: the id column/field when given, else the 1-based data row number (CSV: after the header;
 * JSONL: the line number).
 */
import { accessSync, constants, createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { extname } from 'node:path';
import { parse } from 'csv-parse';
import { KdError } from '../core/errors.js';

export type CollectMode = 'chat' | 'score';
export type InputFormat = 'csv' | 'jsonl';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface InputOptions {
  file: string;
  mode: CollectMode;
  format?: InputFormat;
  /** CSV column / JSONL field holding the prompt (chat) or text (score). */
  column?: string;
  idColumn?: string;
  systemColumn?: string;
  /** A system prompt for every chat row without its own. */
  system?: string;
}

/** A row ready to become a request, or a row already known to be a reject. */
export interface InputRow {
  row: number;
  id: string;
  /** chat mode */
  messages?: ChatMessage[];
  /** score mode */
  text?: string;
  reject?: { reason: RowRejectReason; detail: string };
}

export type RowRejectReason = 'empty_prompt' | 'invalid_utf8' | 'invalid_messages';

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** A string holding one of these cannot be encoded as UTF-8 (JSON allows them via \\u escapes). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** latin1 string (one char per byte) → strict UTF-8, or null when the bytes are not valid UTF-8. */
export function decodeLatin1Field(field: string): string | null {
  try {
    return utf8.decode(Buffer.from(field, 'latin1'));
  } catch {
    return null;
  }
}

/** --input must be a readable file: one line naming it otherwise (not a stream's stack trace). */
export function checkInputFile(file: string): void {
  let st: import('node:fs').Stats;
  try {
    st = statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KdError('input-missing', code === 'ENOENT' ? `${file}: no such file (--input)` : `${file}: cannot read --input (${code ?? (e as Error).message})`);
  }
  if (st.isDirectory()) throw new KdError('input-not-file', `${file}: is a directory; --input takes a CSV or JSONL file`);
  try {
    accessSync(file, constants.R_OK);
  } catch {
    throw new KdError('input-missing', `${file}: not readable (--input)`);
  }
}

export function inputFormat(file: string, format?: InputFormat): InputFormat {
  if (format) return format;
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new KdError('input-format', `${file}: cannot tell the format from the extension "${ext}"; use --format csv|jsonl`);
}

export function defaultColumn(mode: CollectMode): string {
  return mode === 'chat' ? 'prompt' : 'text';
}

/** Streams the rows of an input file; structural errors throw a KdError naming file, row and field. */
export function readInput(opts: InputOptions): AsyncGenerator<InputRow> {
  return inputFormat(opts.file, opts.format) === 'csv' ? readCsv(opts) : readJsonl(opts);
}

function chatRow(row: number, id: string, prompt: string, system: string | undefined): InputRow {
  if (prompt.trim() === '') return { row, id, reject: { reason: 'empty_prompt', detail: 'the prompt is empty' } };
  const messages: ChatMessage[] = [];
  if (system) messages.push({ role: 'system', content: system });
  messages.push({ role: 'user', content: prompt });
  return { row, id, messages };
}

function textRow(row: number, id: string, text: string): InputRow {
  if (text.trim() === '') return { row, id, reject: { reason: 'empty_prompt', detail: 'the text is empty' } };
  return { row, id, text };
}

async function* readCsv(opts: InputOptions): AsyncGenerator<InputRow> {
  const file = opts.file;
  const column = opts.column ?? defaultColumn(opts.mode);
  const parser = createReadStream(file, { encoding: 'latin1' }).pipe(
    parse({ info: true, relax_column_count: false, skip_empty_lines: true }),
  );
  let header: string[] | null = null;
  let textIdx = -1;
  let idIdx = -1;
  let systemIdx = -1;
  let row = 0;
  try {
    for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (!header) {
        header = item.record.map((h, i) => {
          const name = decodeLatin1Field(h) ?? h;
          return (i === 0 ? name.replace(/^\ufeff/, '') : name).trim();
        });
        const find = (name: string | undefined, flag: string): number => {
          if (name === undefined) return -1;
          const i = header!.indexOf(name);
          if (i < 0) {
            throw new KdError('input-column', `${file}: row 1 (header): no column "${name}" for ${flag} (columns: ${header!.join(', ')})`);
          }
          return i;
        };
        textIdx = find(column, opts.column ? '--column' : `--column (default "${column}")`);
        idIdx = find(opts.idColumn, '--id-column');
        systemIdx = find(opts.systemColumn, '--system-column');
        continue;
      }
      row++;
      const rec = item.record;
      const rawId = idIdx >= 0 ? rec[idIdx] : undefined;
      const id = rawId !== undefined ? (decodeLatin1Field(rawId) ?? rawId).trim() : String(row);
      if (idIdx >= 0 && id === '') {
        throw new KdError('input-id', `${file}: row ${row + 1} (line ${item.info.lines}): empty id in column "${opts.idColumn}"`);
      }
      const text = decodeLatin1Field(rec[textIdx]!);
      const system = systemIdx >= 0 ? decodeLatin1Field(rec[systemIdx]!) : (opts.system ?? '');
      if (text === null || system === null) {
        yield { row, id, reject: { reason: 'invalid_utf8', detail: `column "${text === null ? column : opts.systemColumn}" is not valid UTF-8` } };
        continue;
      }
      yield opts.mode === 'chat' ? chatRow(row, id, text, system || opts.system) : textRow(row, id, text);
    }
  } catch (e) {
    if (e instanceof KdError) throw e;
    const err = e as Error & { code?: string; lines?: number };
    if (err.code?.startsWith('CSV_')) {
      throw new KdError('input-csv', `${file}: line ${err.lines ?? '?'}: malformed CSV (${err.message})`);
    }
    throw e;
  }
  if (!header) throw new KdError('input-empty', `${file}: empty file (a header row is needed)`);
}

async function* readJsonl(opts: InputOptions): AsyncGenerator<InputRow> {
  const file = opts.file;
  const lines = createInterface({ input: createReadStream(file, { encoding: 'latin1' }), crlfDelay: Infinity });
  let lineNo = 0;
  for await (const raw of lines) {
    lineNo++;
    if (raw.trim() === '') continue;
    const decoded = decodeLatin1Field(raw);
    const text = decoded ?? Buffer.from(raw, 'latin1').toString('utf8');
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new KdError('input-jsonl', `${file}: line ${lineNo}: malformed JSON (${(e as Error).message})`);
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new KdError('input-jsonl', `${file}: line ${lineNo}: expected a JSON object, got ${Array.isArray(obj) ? 'an array' : JSON.stringify(obj)}`);
    }
    yield jsonlRow(obj as Record<string, unknown>, lineNo, decoded === null, opts);
  }
}

/** One parsed JSONL object → an input row (pure; exported for tests). */
export function jsonlRow(o: Record<string, unknown>, lineNo: number, badUtf8: boolean, opts: InputOptions): InputRow {
  const file = opts.file;
  const idField = opts.idColumn ?? 'id';
  const rawId = o[idField];
  if (rawId !== undefined && typeof rawId !== 'string' && typeof rawId !== 'number') {
    throw new KdError('input-id', `${file}: line ${lineNo}: field "${idField}" must be a string or number, got ${JSON.stringify(rawId)}`);
  }
  if (opts.idColumn && rawId === undefined) {
    throw new KdError('input-id', `${file}: line ${lineNo}: no field "${idField}" (--id-column)`);
  }
  const id = rawId === undefined ? String(lineNo) : String(rawId);
  const hasWellFormedStrings = (v: unknown): boolean =>
    typeof v === 'string' ? !LONE_SURROGATE.test(v) : Array.isArray(v) ? v.every(hasWellFormedStrings) : v && typeof v === 'object' ? Object.values(v).every(hasWellFormedStrings) : true;
  if (badUtf8 || !hasWellFormedStrings(o)) {
    return { row: lineNo, id, reject: { reason: 'invalid_utf8', detail: 'the line is not valid UTF-8 (or holds a lone surrogate)' } };
  }
  const field = opts.column ?? (opts.mode === 'chat' ? (o.messages !== undefined ? 'messages' : 'prompt') : ('text' in o ? 'text' : 'prompt'));
  const value = o[field];
  if (value === undefined) {
    const wanted = opts.column ? `"${opts.column}" (--column)` : opts.mode === 'chat' ? '"prompt" or "messages"' : '"text"';
    throw new KdError('input-field', `${file}: line ${lineNo}: no field ${wanted}`);
  }
  if (opts.mode === 'score') {
    if (typeof value !== 'string') throw new KdError('input-field', `${file}: line ${lineNo}: field "${field}" must be a string`);
    return textRow(lineNo, id, value);
  }
  if (field === 'messages' && !opts.column) return messagesRow(o.messages, lineNo, id, opts.system);
  if (Array.isArray(value)) return messagesRow(value, lineNo, id, opts.system);
  if (typeof value !== 'string') throw new KdError('input-field', `${file}: line ${lineNo}: field "${field}" must be a string`);
  const system = typeof o.system === 'string' ? o.system : opts.system;
  return chatRow(lineNo, id, value, system);
}

function messagesRow(value: unknown, row: number, id: string, system: string | undefined): InputRow {
  const bad = (detail: string): InputRow => ({ row, id, reject: { reason: 'invalid_messages', detail } });
  if (!Array.isArray(value) || value.length === 0) return bad('"messages" must be a non-empty array');
  const messages: ChatMessage[] = [];
  for (const [i, m] of value.entries()) {
    if (!m || typeof m !== 'object' || typeof (m as ChatMessage).role !== 'string' || typeof (m as ChatMessage).content !== 'string') {
      return bad(`messages[${i}] must be {"role": string, "content": string}`);
    }
    messages.push({ role: (m as ChatMessage).role, content: (m as ChatMessage).content });
  }
  if (messages.every((m) => m.content.trim() === '')) return { row, id, reject: { reason: 'empty_prompt', detail: 'every message is empty' } };
  if (system && !messages.some((m) => m.role === 'system')) messages.unshift({ role: 'system', content: system });
  return { row, id, messages };
}
