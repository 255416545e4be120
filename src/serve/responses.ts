/**
 * POST /v1/responses (OpenAI's Responses API, what current SDKs call by default): text input — a string
 * or message items — with `instructions` as the system message, rendered with the chat template; one
 * message of `output_text` out, with its tokens' log-probs and `top_logprobs` alternatives when
 * `include: ["message.output_text.logprobs"]`; `stream: true` as the Responses event sequence
 * (response.created … response.output_text.delta … response.completed).
 */
import { CHAT_STOP, renderChat } from './chat-template.js';
import { type ChatLogprob, contentItem } from './chat.js';
import type { Choice } from './choice.js';
import { type Reply, type ServeContext, type Usage, checkPromptLength, nowSeconds, responseId, usage } from './context.js';
import { generate } from './generate.js';
import { validateResponses } from './validate.js';

export async function responses(ctx: ServeContext, body: Record<string, unknown>, reply: Reply): Promise<Usage> {
  const req = validateResponses(body, ctx.limits);
  const ids = ctx.table.tokenizer.encode(renderChat(req.messages));
  checkPromptLength(ctx, ids, 'input');
  const id = responseId('resp');
  const itemId = responseId('msg');
  const createdAt = nowSeconds();
  const opts = {
    prompt: ids, n: 1, maxTokens: req.maxTokens, temperature: req.temperature, topP: req.topP, seed: null,
    stop: [CHAT_STOP], topLogprobs: req.logprobs ? req.topLogprobs : 0, signal: reply.signal,
  };
  const part = (text: string, logprobs: ChatLogprob[]) => ({ type: 'output_text', text, annotations: [], ...(req.logprobs ? { logprobs } : {}) });
  const item = (status: string, content: unknown[]) => ({ type: 'message', id: itemId, status, role: 'assistant', content });
  const response = (status: 'in_progress' | 'completed' | 'incomplete', ch?: Choice) => {
    const u = ch ? usage(ids.length, ch.generated) : undefined;
    return {
      id, object: 'response', created_at: createdAt, status, model: ctx.served.name,
      output: ch ? [item('completed', [part(ch.text, ch.tokens.map((t) => contentItem(ctx, t)))])] : [],
      incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
      instructions: req.instructions, max_output_tokens: req.maxTokens, temperature: req.temperature, top_p: req.topP,
      top_logprobs: req.topLogprobs, parallel_tool_calls: false, tool_choice: 'none', tools: [], text: { format: { type: 'text' } },
      error: null, truncation: 'disabled', store: false, metadata: {},
      usage: u ? {
        input_tokens: u.prompt_tokens, input_tokens_details: { cached_tokens: 0 },
        output_tokens: u.completion_tokens, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: u.total_tokens,
      } : null,
    };
  };
  const finished = (ch: Choice) => (ch.finishReason === 'length' ? 'incomplete' : 'completed');

  if (!req.stream) {
    const [ch] = await generate(ctx.engine, ctx.table.tokenizer.tokens, opts);
    reply.json(response(finished(ch!), ch));
    return usage(ids.length, ch!.generated);
  }

  const sse = reply.stream();
  let seq = 0;
  const event = (type: string, fields: Record<string, unknown>) => sse.send({ type, sequence_number: seq++, ...fields });
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  event('response.created', { response: response('in_progress') });
  event('response.in_progress', { response: response('in_progress') });
  event('response.output_item.added', { output_index: 0, item: item('in_progress', []) });
  event('response.content_part.added', { ...at, part: part('', []) });
  const [ch] = await generate(ctx.engine, ctx.table.tokenizer.tokens, {
    ...opts,
    onEmit: (_index, e) => {
      if (e.text || e.tokens.length) event('response.output_text.delta', { ...at, delta: e.text, logprobs: req.logprobs ? e.tokens.map((t) => contentItem(ctx, t)) : [] });
    },
  });
  const done = response(finished(ch!), ch);
  const donePart = (done.output[0] as { content: unknown[] }).content[0] as { text: string; logprobs?: ChatLogprob[] };
  event('response.output_text.done', { ...at, text: donePart.text, logprobs: donePart.logprobs ?? [] });
  event('response.content_part.done', { ...at, part: donePart });
  event('response.output_item.done', { output_index: 0, item: done.output[0] });
  event(done.status === 'completed' ? 'response.completed' : 'response.incomplete', { response: done });
  sse.end();
  return usage(ids.length, ch!.generated);
}
