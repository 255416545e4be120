/**
 * A kd tokenizer: a vocabulary of byte strings in which ids 0–255 are the 256 single bytes, so any
 * text encodes (byte fallback) and every id sequence decodes back to the exact bytes. Text is encoded
 * by greedy longest match over a byte trie — the natural encoder for a vocabulary taken from a
 * teacher's own token strings, which comes with no merge rules.
 *
 * Saved as JSON (`tokenizer.json` next to a dataset, and inside checkpoints), versioned like minbpe's
 * files: {"format": "kd-tokenizer", "version": 1, "tokens": ["<hex bytes>", ...], "meta": {...}}.
 */
import { createHash } from 'node:crypto';
import { KdError } from '../core/errors.js';
import { readJsonFile } from '../core/json-file.js';

export const TOKENIZER_FORMAT = 'kd-tokenizer';
export const TOKENIZER_VERSION = 1;

export interface TokenizerJson {
  format: typeof TOKENIZER_FORMAT;
  version: number;
  /** token byte strings, hex-encoded, by id; the first 256 are the single bytes 00..ff */
  tokens: string[];
  /** how it was made (teacher model, counts, …); not part of the identity */
  meta?: Record<string, unknown>;
}

interface TrieNode {
  id: number;
  next: Map<number, TrieNode>;
}

export class Tokenizer {
  readonly tokens: Uint8Array[];
  readonly meta: Record<string, unknown>;
  private readonly root: TrieNode = { id: -1, next: new Map() };
  private readonly ids = new Map<string, number>();

  constructor(tokens: Uint8Array[], meta: Record<string, unknown> = {}) {
    if (tokens.length < 256) throw new KdError('bad-tokenizer', `a kd tokenizer needs the 256 byte tokens first, got ${tokens.length} tokens`);
    for (let b = 0; b < 256; b++) {
      if (tokens[b].length !== 1 || tokens[b][0] !== b) throw new KdError('bad-tokenizer', `token ${b} must be the single byte ${b}`);
    }
    this.tokens = tokens;
    this.meta = meta;
    tokens.forEach((t, id) => {
      const key = Buffer.from(t).toString('hex');
      if (t.length === 0) throw new KdError('bad-tokenizer', `token ${id} is empty`);
      if (this.ids.has(key)) throw new KdError('bad-tokenizer', `token ${id} repeats token ${this.ids.get(key)} (${key})`);
      this.ids.set(key, id);
      let node = this.root;
      for (const byte of t) {
        let child = node.next.get(byte);
        if (!child) node.next.set(byte, (child = { id: -1, next: new Map() }));
        node = child;
      }
      node.id = id;
    });
  }

  /** Only the byte tokens. */
  static bytes(meta: Record<string, unknown> = {}): Tokenizer {
    return new Tokenizer(Array.from({ length: 256 }, (_, b) => Uint8Array.of(b)), meta);
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  /** The id of exactly these bytes, if it is a token. */
  idOf(bytes: Uint8Array): number | undefined {
    return this.ids.get(Buffer.from(bytes).toString('hex'));
  }

  /** Greedy longest match; strings are UTF-8 encoded first. */
  encode(input: string | Uint8Array): number[] {
    const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
    const out: number[] = [];
    let i = 0;
    while (i < bytes.length) {
      let node = this.root;
      let best = bytes[i]; // byte fallback: ids 0..255 are the bytes
      let bestLen = 1;
      for (let j = i; j < bytes.length; j++) {
        const child = node.next.get(bytes[j]);
        if (!child) break;
        node = child;
        if (node.id >= 0) { best = node.id; bestLen = j - i + 1; }
      }
      out.push(best);
      i += bestLen;
    }
    return out;
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      const t = this.tokens[ids[i]];
      if (!t) throw new KdError('bad-token', `token id ${ids[i]} is outside the vocabulary (size ${this.vocabSize})`);
      parts.push(t);
    }
    return Buffer.concat(parts);
  }

  /** Decoded text; invalid UTF-8 (a cut multi-byte character) shows as U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return Buffer.from(this.decodeBytes(ids)).toString('utf8');
  }

  toJSON(): TokenizerJson {
    return { format: TOKENIZER_FORMAT, version: TOKENIZER_VERSION, tokens: this.tokens.map((t) => Buffer.from(t).toString('hex')), meta: this.meta };
  }

  /** sha256 of the vocabulary: what datasets, checkpoints and exports compare. */
  hash(): string {
    const h = createHash('sha256');
    for (const t of this.tokens) h.update(Buffer.from(t).toString('hex') + '\n');
    return h.digest('hex');
  }

  static fromJSON(j: unknown, source = 'tokenizer'): Tokenizer {
    const o = j as Partial<TokenizerJson> | null;
    if (!o || typeof o !== 'object' || o.format !== TOKENIZER_FORMAT) throw new KdError('bad-tokenizer', `${source}: not a kd tokenizer (format ${JSON.stringify(o?.format ?? null)})`);
    if (o.version !== TOKENIZER_VERSION) throw new KdError('bad-tokenizer', `${source}: tokenizer version ${o.version} is not supported (this kd reads version ${TOKENIZER_VERSION})`);
    if (!Array.isArray(o.tokens) || !o.tokens.every((t) => typeof t === 'string' && /^([0-9a-f]{2})+$/.test(t))) {
      throw new KdError('bad-tokenizer', `${source}: "tokens" must be a list of hex byte strings`);
    }
    try {
      return new Tokenizer(o.tokens.map((t) => Uint8Array.from(Buffer.from(t, 'hex'))), o.meta ?? {});
    } catch (e) {
      if (e instanceof KdError) throw new KdError(e.code, `${source}: ${e.message}`);
      throw e;
    }
  }
}

/** Reads a tokenizer JSON file (kd tokenizer train, or a dataset's tokenizer.json): the one reader of that file. */
export function readTokenizerFile(file: string): Tokenizer {
  return Tokenizer.fromJSON(readJsonFile(file, 'tokenizer file', 'bad-tokenizer'), file);
}
