/**
 * POST /v1/chat/completions: messages rendered with the chat template (chat-template.ts), n choices,
 * `logprobs` / `top_logprobs` as `choices[i].logprobs.content[] = {token, logprob, bytes,
 * top_logprobs}`, and `stream: true` as server-sent `chat.completion.chunk`s ending in `[DONE]`, with
 * a last usage chunk (empty choices) when `stream_options.include_usage` is set.
 */
import { CHAT_STOP, renderChat } from './chat-template.js';
import type { GenToken } from './choice.js';
import { type Reply, type ServeContext, type Usage, checkPromptLength, nowSeconds, responseId, usage } from './context.js';
import { generate } from './generate.js';
import { validateChat } from './validate.js';

export interface ChatLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export function contentItem(ctx: ServeContext, t: GenToken): ChatLogprob {
  const { strings, bytes } = ctx.table;
  return {
    token: strings[t.id]!, logprob: t.logprob, bytes: bytes[t.id]!,
    top_logprobs: t.top.map((a) => ({ token: strings[a.id]!, logprob: a.logprob, bytes: bytes[a.id]! })),
  };
}

export async function chat(ctx: ServeContext, body: Record<string, unknown>, reply: Reply): Promise<Usage> {
  const req = validateChat(body, ctx.limits);
  const ids = ctx.table.tokenizer.encode(renderChat(req.messages));
  checkPromptLength(ctx, ids, 'messages');
  const head = { id: responseId('chatcmpl'), created: nowSeconds(), model: ctx.served.name, system_fingerprint: ctx.served.fingerprint };
  const opts = {
    prompt: ids, n: req.n, maxTokens: req.maxTokens, temperature: req.temperature, topP: req.topP, seed: req.seed,
    stop: [CHAT_STOP, ...req.stop], topLogprobs: req.logprobs ? req.topLogprobs : 0, signal: reply.signal,
  };
  if (!req.stream) {
    const choices = await generate(ctx.engine, ctx.table.tokenizer.tokens, opts);
    const u = usage(ids.length, choices.reduce((s, c) => s + c.generated, 0));
    reply.json({
      ...head, object: 'chat.completion',
      choices: choices.map((ch, index) => ({
        index,
        message: { role: 'assistant', content: ch.text, refusal: null },
        logprobs: req.logprobs ? { content: ch.tokens.map((t) => contentItem(ctx, t)), refusal: null } : null,
        finish_reason: ch.finishReason,
      })),
      usage: u,
    });
    return u;
  }

  const sse = reply.stream();
  // with include_usage every chunk carries "usage": null and one last chunk holds the figures (OpenAI)
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    sse.send({ ...head, object: 'chat.completion.chunk', choices, ...(req.includeUsage ? { usage: null } : {}), ...extra });
  for (let index = 0; index < req.n; index++) chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
  const choices = await generate(ctx.engine, ctx.table.tokenizer.tokens, {
    ...opts,
    onEmit: (index, e) => {
      if (e.text || e.tokens.length) {
        const logprobs = req.logprobs ? { content: e.tokens.map((t) => contentItem(ctx, t)), refusal: null } : null;
        chunk([{ index, delta: { content: e.text }, logprobs, finish_reason: null }]);
      }
      if (e.finish) chunk([{ index, delta: {}, logprobs: null, finish_reason: e.finish }]);
    },
  });
  const u = usage(ids.length, choices.reduce((s, c) => s + c.generated, 0));
  if (req.includeUsage) chunk([], { usage: u });
  sse.end();
  return u;
}
