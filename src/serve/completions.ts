/**
 * POST /v1/completions, the legacy API, shaped like OpenAI's: `prompt` a string, strings, or token
 * ids; `echo` returns the prompt with its teacher-forced log-probs (first position null, nothing
 * precedes it) — with `max_tokens: 0` this is the dense scoring `kd collect --mode score` uses.
 * Each position's `top_logprobs` dict holds the top k, best first, plus the chosen token when it is
 * not among them (OpenAI's "up to logprobs + 1"). Streaming is not offered on this endpoint.
 */
import { badParam } from './api-error.js';
import type { Choice } from './choice.js';
import { type Reply, type ServeContext, type Usage, checkPromptLength, nowSeconds, responseId, usage } from './context.js';
import type { Scores } from './engine.js';
import { generate } from './generate.js';
import { OrderedObject } from './json.js';
import { codePointLength, textOffsets } from './tokens.js';
import { type CompletionRequest, validateCompletion } from './validate.js';

export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (OrderedObject | null)[];
  text_offset: number[];
}

/** The top-k dict of one position, with the chosen token added when it is not in the top k. */
function topDict(ctx: ServeContext, alts: { id: number; logprob: number }[], chosen: number, chosenLp: number): OrderedObject {
  const entries: [string, number][] = alts.map((a) => [ctx.table.strings[a.id]!, a.logprob]);
  if (!alts.some((a) => a.id === chosen)) entries.push([ctx.table.strings[chosen]!, chosenLp]);
  return new OrderedObject(entries);
}

function promptAlts(s: Scores, p: number) {
  return Array.from({ length: s.k }, (_, j) => ({ id: s.topIds[p * s.k + j]!, logprob: s.topLogprobs[p * s.k + j]! }));
}

function legacyLogprobs(ctx: ServeContext, prompt: { text: string; ids: number[] }, scores: Scores | null, ch: Choice): LegacyLogprobs {
  const vocab = ctx.table.tokenizer.tokens;
  const lp: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  const ids: number[] = [];
  if (scores) {
    prompt.ids.forEach((id, p) => {
      ids.push(id);
      lp.tokens.push(ctx.table.strings[id]!);
      lp.token_logprobs.push(p === 0 ? null : scores.logprobs[p]!);
      lp.top_logprobs.push(p === 0 ? null : topDict(ctx, promptAlts(scores, p), id, scores.logprobs[p]!));
    });
  }
  for (const t of ch.tokens) {
    ids.push(t.id);
    lp.tokens.push(ctx.table.strings[t.id]!);
    lp.token_logprobs.push(t.logprob);
    lp.top_logprobs.push(topDict(ctx, t.top, t.id, t.logprob));
  }
  // without echo, offsets count from the start of the prompt, as OpenAI's do
  lp.text_offset = textOffsets(ids.map((id) => vocab[id]!), scores ? 0 : codePointLength(prompt.text));
  return lp;
}

export async function completions(ctx: ServeContext, body: Record<string, unknown>, reply: Reply): Promise<Usage> {
  const req: CompletionRequest = validateCompletion(body, ctx.limits);
  if (req.stream) throw badParam('stream', 'kd serve streams /v1/chat/completions only; send stream: false here', 'unsupported_parameter');
  const tok = ctx.table.tokenizer;
  const prompts = req.prompts.map((p) => (typeof p === 'string' ? { text: p, ids: tok.encode(p) } : { text: tok.decode(p), ids: p }));
  prompts.forEach((p, i) => checkPromptLength(ctx, p.ids, prompts.length > 1 ? `prompt[${i}]` : 'prompt'));
  const choices: unknown[] = [];
  let completionTokens = 0;
  for (const [pi, prompt] of prompts.entries()) {
    const scores = req.echo && req.logprobs !== null ? await ctx.engine.score(prompt.ids, req.logprobs) : null;
    const gen = await generate(ctx.engine, tok.tokens, {
      prompt: prompt.ids, n: req.n, maxTokens: req.maxTokens, temperature: req.temperature, topP: req.topP, seed: req.seed,
      stop: req.stop, topLogprobs: req.logprobs ?? 0, streamBase: pi * req.n, signal: reply.signal,
    });
    gen.forEach((ch, c) => {
      completionTokens += ch.generated;
      choices.push({
        index: pi * req.n + c,
        text: (req.echo ? prompt.text : '') + ch.text,
        logprobs: req.logprobs === null ? null : legacyLogprobs(ctx, prompt, scores, ch),
        finish_reason: ch.finishReason,
      });
    });
  }
  const u = usage(prompts.reduce((s, p) => s + p.ids.length, 0), completionTokens);
  reply.json({
    id: responseId('cmpl'), object: 'text_completion', created: nowSeconds(), model: ctx.served.name,
    system_fingerprint: ctx.served.fingerprint, choices, usage: u,
  });
  return u;
}
