/** What the endpoint handlers share: the model, its engine and token table, limits, and a reply channel. */
import { randomBytes } from 'node:crypto';
import { badParam } from './api-error.js';
import type { Engine } from './engine.js';
import type { ServedModel } from './model.js';
import type { TokenTable } from './tokens.js';
import type { Limits } from './validate.js';

export interface ServeContext {
  served: ServedModel;
  engine: Engine;
  table: TokenTable;
  limits: Limits;
  /** most tokens in one prompt (longer prompts are scored with sliding windows up to this) */
  maxPromptTokens: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Server-sent events: `data: <json>\n\n` per chunk, then `data: [DONE]`. */
export interface SseWriter {
  send(chunk: unknown): void;
  end(): void;
}

export interface Reply {
  json(body: unknown): void;
  stream(): SseWriter;
  /** aborted when the client goes away or the server closes */
  signal: AbortSignal;
}

export const usage = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

export const responseId = (prefix: string) => `${prefix}-${randomBytes(12).toString('hex')}`;

export const nowSeconds = () => Math.floor(Date.now() / 1000);

export function checkPromptLength(ctx: ServeContext, ids: number[], param: string): void {
  if (ids.length > ctx.maxPromptTokens) {
    throw badParam(param, `${param} has ${ids.length} tokens; this server accepts at most ${ctx.maxPromptTokens} (--max-prompt-tokens)`, 'context_length_exceeded');
  }
}
