/**
 * The teacher's side of the report: what collecting its log-probs cost and how fast it answered,
 * read from the collection records of a dataset directory (raw/manifest.json and the raw shards'
 * latency_ms column), and — with --teacher-url — measured live through the same OpenAI client
 * kd collect uses. A teacher that cannot be reached is a mark in the report, never a failed eval.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeTeacherClient, SendError, type CollectManifest, resolvePrice, type PlannedRequest, chunkText } from '../collect/index.js';
import { KdError } from '../core/errors.js';
import type { BitsPerByte } from './bpb.js';
import { listRawShards, readRawColumns } from '../schema/raw.js';
import { percentile } from './metrics.js';
import type { TeacherLatency, CollectionFigures, LiveTeacher } from '../schema/eval-report.js';
export type { TeacherLatency, CollectionFigures, LiveTeacher } from '../schema/eval-report.js';




export function latencyOf(latMs: number[], completionTokens: (number | null)[]): TeacherLatency {
  let ms = 0, toks = 0;
  latMs.forEach((l, i) => {
    const c = completionTokens[i];
    if (c !== null && c !== undefined && c > 0) { ms += l; toks += c; }
  });
  return { n: latMs.length, p50Ms: percentile(latMs, 0.5), p95Ms: percentile(latMs, 0.95), msPerToken: toks > 0 ? ms / toks : null };
}

function readJson(file: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8'));
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A merged raw directory's manifest (kd dataset merge): totals over its collections. */
interface MergeManifest {
  format: 'kd-raw-merge';
  sources?: { dir?: string }[];
  teacher?: { models?: string[] };
  counts?: { requests?: number };
  tokens?: { prompt?: number; completion?: number };
  cost_usd?: number;
}

/**
 * The collection behind a dataset directory: the raw directory it was built from (its manifest's
 * source.dir, else DIR/raw) — a kd collect manifest, or a kd dataset merge one over several — or a
 * collect manifest embedded in the dataset's manifest.json.
 */
function findCollection(dir: string): { file: string; rawDir: string | null; m: CollectManifest } | null {
  const isCollect = (v: unknown): v is CollectManifest => Boolean(v && typeof v === 'object' && (v as { format?: unknown }).format === 'kd-collect-manifest');
  const own = readJson(path.join(dir, 'manifest.json'));
  const source = (own?.source as { dir?: unknown } | undefined)?.dir;
  const rawDirs = [...(typeof source === 'string' ? [source, path.resolve(dir, '..', path.basename(source))] : []), path.join(dir, 'raw')];
  for (const rawDir of rawDirs) {
    const file = path.join(rawDir, 'manifest.json');
    const j = readJson(file);
    if (isCollect(j)) return { file, rawDir, m: j };
    if (j && (j as { format?: unknown }).format === 'kd-raw-merge') {
      const mm = j as unknown as MergeManifest;
      const model = mm.teacher?.models?.[0] ?? null;
      const price = model ? resolvePrice(model) : { input: 0, output: 0, source: 'unknown' };
      const m = {
        format: 'kd-collect-manifest', teacher: { model }, counts: { records: mm.counts?.requests ?? 0 },
        tokens: { prompt: mm.tokens?.prompt ?? 0, completion: mm.tokens?.completion ?? 0 }, cost_usd: mm.cost_usd ?? 0,
        price: { input: price.input, output: price.output, source: price.source },
        teacherFingerprints: (mm.sources ?? []).flatMap((src) => {
          const sm = src.dir ? readJson(path.join(src.dir, 'manifest.json')) : null;
          return ((sm?.teacher as { system_fingerprints?: string[] } | undefined)?.system_fingerprints) ?? [];
        }),
      } as unknown as CollectManifest;
      return { file, rawDir, m };
    }
  }
  if (own && isCollect(own.collect)) return { file: path.join(dir, 'manifest.json'), rawDir: null, m: own.collect };
  return null;
}

/** Collection figures of a dataset directory; null when it has no collection records (e.g. synthetic). */
export function readCollection(dataDir: string): CollectionFigures | null {
  if (!fs.existsSync(dataDir) || !fs.statSync(dataDir).isDirectory()) return null;
  const found = findCollection(dataDir);
  if (!found) return null;
  const { m, file, rawDir } = found;
  let latency: TeacherLatency | null = null;
  if (rawDir && fs.existsSync(rawDir)) {
    const lat: number[] = [], comp: (number | null)[] = [];
    for (const shard of listRawShards(rawDir)) {
      const cols = readRawColumns(fs.readFileSync(shard), shard, ['latency_ms', 'completion_tokens', 'choice_index'] as const);
      // one request may yield several records (n > 1 choices): count the request once, by choice 0
      cols.latency_ms.forEach((l, i) => {
        if (cols.choice_index[i] === 0) { lat.push(l); comp.push(cols.completion_tokens[i]); }
      });
    }
    if (lat.length) latency = latencyOf(lat, comp);
  }
  return {
    manifest: file, model: m.teacher?.model ?? null, requests: m.counts?.records ?? 0,
    promptTokens: m.tokens?.prompt ?? 0, completionTokens: m.tokens?.completion ?? 0, costUsd: m.cost_usd ?? 0,
    price: { input: m.price?.input ?? 0, output: m.price?.output ?? 0, source: m.price?.source ?? 'unknown' },
    latency,
    systemFingerprints: [...new Set([...(m.teacher?.system_fingerprints ?? []), ...((m as unknown as { teacherFingerprints?: string[] }).teacherFingerprints ?? [])])],
  };
}

/** The teacher's price per 1M tokens: the collection's, else the price table's for --model. */
export function teacherPrice(collection: CollectionFigures | null, model: string | undefined): { input: number; output: number; source: string } | null {
  if (collection) return collection.price;
  if (!model) return null;
  const p = resolvePrice(model);
  return p.source === 'unknown' ? null : { input: p.input, output: p.output, source: p.source };
}

function completionRequest(model: string, prompt: string, maxTokens: number, i: number, temperature: number): PlannedRequest {
  return {
    endpoint: 'completions', hash: `kd-eval-${i}-${temperature}`, inputId: `eval-${i}`, row: i, chunkIndex: 0, chunkCount: 1, chunkStart: null, scoreFrom: null, text: prompt,
    // a plain continuation of the prompt text (no chat template): what the students do too
    body: { model, prompt, max_tokens: maxTokens, temperature, ...(temperature > 0 ? { seed: i + 1 } : {}) },
  };
}

/**
 * Asks the teacher to continue each prompt text (legacy /v1/completions, as the students continue
 * it), greedy and sampled at `temperature`, timing every request. The first connection failure or
 * timeout marks the teacher unreachable and stops (no point waiting out a timeout per prompt); an
 * HTTP error marks it 'error'.
 */
export async function probeTeacher(o: { url: string; model: string; prompts: string[]; maxTokens: number; temperature: number; timeoutMs: number; apiKeyEnv?: string }): Promise<LiveTeacher> {
  const live: LiveTeacher = { url: o.url, model: o.model, status: 'ok', latency: null, texts: o.prompts.map(() => null) };
  let client;
  try {
    client = makeTeacherClient({ baseURL: o.url, timeoutMs: o.timeoutMs, apiKeyEnv: o.apiKeyEnv });
  } catch (e) {
    return { ...live, status: 'error', error: (e as Error).message };
  }
  live.url = client.baseURL;
  const lat: number[] = [], comp: (number | null)[] = [];
  const never = new AbortController().signal;
  outer: for (let i = 0; i < o.prompts.length; i++) {
    const got: { greedy: string | null; sampled: string | null } = { greedy: null, sampled: null };
    for (const mode of ['greedy', 'sampled'] as const) {
      try {
        const res = await client.send(completionRequest(o.model, o.prompts[i], o.maxTokens, i, mode === 'greedy' ? 0 : o.temperature), never, false);
        const j = res.json as { choices?: { text?: unknown }[]; usage?: { completion_tokens?: unknown } };
        const text = j.choices?.[0]?.text;
        got[mode] = typeof text === 'string' ? text : null;
        lat.push(res.latencyMs);
        comp.push(typeof j.usage?.completion_tokens === 'number' ? j.usage.completion_tokens : null);
      } catch (e) {
        const kind = e instanceof SendError ? e.kind : 'network';
        live.status = kind === 'network' || kind === 'timeout' ? 'unreachable' : 'error';
        live.error = (e as Error).message;
        break outer;
      }
    }
    live.texts[i] = got;
  }
  if (lat.length) live.latency = latencyOf(lat, comp);
  return live;
}

/**
 * Bits per byte of a plain text under a teacher behind an API that scores given text: legacy
 * `/v1/completions` with `echo: true, logprobs: 1, max_tokens: 0` (kd serve, vLLM, llama-cpp-python;
 * not OpenAI's chat models). Long texts go in overlapping chunks (collect's chunkText, 6,000 characters
 * by default): a chunk counts the tokens that reach into its new text, so every byte is counted once
 * and scored with left context (a token straddling a chunk's start counts its new bytes only). A
 * token's bytes are those of the text between its offset and the next one's, so multi-token
 * characters and byte-fallback tokens count right. The very first token has no log-prob and is not
 * counted (as in bitsPerByte).
 */
export async function teacherBitsPerByte(o: {
  url: string; model: string; text: string; timeoutMs: number; apiKeyEnv?: string; chunkChars?: number; overlapChars?: number;
}): Promise<BitsPerByte> {
  const client = makeTeacherClient({ baseURL: o.url, timeoutMs: o.timeoutMs, apiKeyEnv: o.apiKeyEnv });
  const never = new AbortController().signal;
  const cps = Array.from(o.text);
  let nats = 0, bytes = 0, tokens = 0;
  for (const [i, c] of chunkText(o.text, o.chunkChars ?? 6000, o.overlapChars ?? 1000).entries()) {
    const text = cps.slice(c.start, c.end).join('');
    const res = await client.send({
      endpoint: 'completions', hash: `kd-eval-bpb-${i}`, inputId: 'eval-text', row: 0, chunkIndex: i, chunkCount: 1, chunkStart: c.start, scoreFrom: c.scoreFrom, text,
      body: { model: o.model, prompt: text, echo: true, logprobs: 1, max_tokens: 0, temperature: 0 },
    }, never, false);
    const lp = (res.json as { choices?: { logprobs?: { token_logprobs?: unknown[]; text_offset?: unknown[] } }[] }).choices?.[0]?.logprobs;
    const lps = lp?.token_logprobs, offs = lp?.text_offset;
    if (!Array.isArray(lps) || !Array.isArray(offs) || lps.length !== offs.length || !lps.length) {
      throw new KdError('teacher-cannot-score', `${o.url}: the answer to an echo request has no token_logprobs with text_offset: this teacher cannot score given text`);
    }
    const n = cps.length;
    const at = (k: number) => Math.min(c.end, c.start + (offs[k] as number)); // absolute code-point offset
    for (let k = 0; k < lps.length; k++) {
      if (typeof offs[k] !== 'number') throw new KdError('teacher-cannot-score', `${o.url}: text_offset ${k} is not a number`);
      const from = at(k), to = k + 1 < lps.length ? at(k + 1) : c.end;
      if (from >= c.end && k > 0) break; // a generated position past the prompt
      if (to <= c.scoreFrom || lps[k] === null) continue; // context of this chunk, or the text's first token
      if (typeof lps[k] !== 'number' || !Number.isFinite(lps[k])) throw new KdError('teacher-cannot-score', `${o.url}: token_logprobs ${k} is not a number`);
      nats -= lps[k] as number;
      bytes += Buffer.byteLength(cps.slice(Math.max(from, c.scoreFrom), Math.min(to, n)).join(''), 'utf8');
      tokens++;
    }
  }
  const bits = nats / Math.LN2;
  return { bpb: bytes > 0 ? bits / bytes : NaN, bits, bytes, tokens };
}
