/**
 * POST /v1/responses with the official openai SDK's responses.create: the text and log-probs are
 * checked against the model's forward pass computed directly, and the stream against the whole answer.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/model/gpt.js';
import { tokenBytesOf } from '../../src/serve/tokens.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { SEQ_LEN, type TinyServer, logProbsOf, serveTiny } from './fixture.js';

let client: OpenAI;
let ref: Model;
let tok: Tokenizer;
let tiny: TinyServer | undefined;

beforeAll(async () => {
  tiny = await serveTiny();
  ({ client, ref, tok } = tiny);
});

afterAll(async () => {
  await tiny?.close();
});

describe('kd serve: the Responses API', () => {
  it('responses.create: output_text, usage, and with include logprobs the model\'s own log-probs and top_logprobs', async () => {
    const r = await client.responses.create({
      model: 'm', instructions: 'be brief', input: 'hello the world', max_output_tokens: 6, temperature: 1,
      include: ['message.output_text.logprobs'], top_logprobs: 3,
    });
    expect(r.object).toBe('response');
    expect(r.id).toMatch(/^resp/);
    expect(['completed', 'incomplete']).toContain(r.status);
    const prompt = tok.encode('system: be brief\nuser: hello the world\nassistant: ');
    expect(r.usage?.input_tokens).toBe(prompt.length);
    const msg = r.output[0]!;
    expect(msg.type).toBe('message');
    const part = (msg as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText;
    expect(part.type).toBe('output_text');
    expect(r.output_text).toBe(part.text); // the SDK's own convenience field
    const lps = part.logprobs!;
    expect(lps.length).toBeGreaterThan(0);
    const gen = lps.map((item) => tok.idOf(Uint8Array.from(item.bytes))!);
    lps.forEach((item, i) => {
      expect(Buffer.from(item.bytes).equals(Buffer.from(tokenBytesOf(item.token)))).toBe(true);
      expect(item.top_logprobs).toHaveLength(3);
      const vals = item.top_logprobs.map((a) => a.logprob);
      expect(vals).toEqual([...vals].sort((a, b) => b - a));
      const row = logProbsOf(ref, [...prompt, ...gen.slice(0, i)].slice(-SEQ_LEN)).at(-1)!;
      expect(item.logprob).toBeCloseTo(row[gen[i]!]!, 4);
      expect(vals[0]).toBeCloseTo(Math.max(...row), 4);
    });
    if (r.status === 'incomplete') {
      expect(r.incomplete_details).toEqual({ reason: 'max_output_tokens' });
      expect(r.usage?.output_tokens).toBe(6);
      expect(part.text).toBe(tok.decode(gen));
    }
  });

  it('without include there are no log-probs; message items with input_text parts are input too', async () => {
    const a = await client.responses.create({ model: 'm', input: 'the', max_output_tokens: 4, temperature: 0 });
    expect(((a.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText).logprobs).toBeUndefined();
    const b = await client.responses.create({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_text', text: 'the' }] }], max_output_tokens: 4, temperature: 0 });
    expect(b.output_text).toBe(a.output_text); // greedy, the same rendered prompt
    expect(b.usage).toEqual(a.usage);
  });

  it('streams the Responses events, whose deltas add up to the whole answer', async () => {
    const body = { model: 'm', input: 'hello', max_output_tokens: 8, temperature: 0, include: ['message.output_text.logprobs' as const], top_logprobs: 2 };
    const whole = await client.responses.create(body);
    const stream = await client.responses.create({ ...body, stream: true });
    const types: string[] = [];
    let text = '';
    const tokens: string[] = [];
    let last: OpenAI.Responses.Response | undefined;
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'response.output_text.delta') {
        text += e.delta;
        tokens.push(...e.logprobs.map((l) => l.token));
      }
      if (e.type === 'response.completed' || e.type === 'response.incomplete') last = e.response;
    }
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types.slice(-4)).toEqual(['response.output_text.done', 'response.content_part.done', 'response.output_item.done', whole.status === 'completed' ? 'response.completed' : 'response.incomplete']);
    expect(text).toBe(whole.output_text);
    const wholePart = (whole.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText;
    expect(tokens).toEqual(wholePart.logprobs!.map((l) => l.token));
    expect(last!.output_text ?? (last!.output[0] as OpenAI.Responses.ResponseOutputMessage).content.map((c) => (c as OpenAI.Responses.ResponseOutputText).text).join('')).toBe(whole.output_text);
    expect(last!.usage).toEqual(whole.usage);
  });

  it('what it cannot honour is a 400 naming the parameter', async () => {
    await expect(client.responses.create({ model: 'm', input: 'x', tools: [{ type: 'web_search_preview' }] })).rejects.toMatchObject({ status: 400, param: 'tools' });
    await expect(client.responses.create({ model: 'm', input: 'x', include: ['reasoning.encrypted_content'] })).rejects.toMatchObject({ status: 400, param: 'include' });
    await expect(client.responses.create({ model: 'm', input: [{ type: 'function_call_output', call_id: 'c', output: 'o' }] })).rejects.toMatchObject({ status: 400, param: 'input[0].type' });
    await expect(client.responses.create({ model: 'm', input: 'x', top_logprobs: 21 })).rejects.toMatchObject({ status: 400, param: 'top_logprobs' });
  });
});
