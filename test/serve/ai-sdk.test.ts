/**
 * kd serve with the Vercel AI SDK's default call: `provider(model)` is OpenAI's Responses API
 * (POST /v1/responses). Checked against the openai SDK's answer to the same request.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TinyServer, serveTiny } from './fixture.js';

let tiny: TinyServer | undefined;
const requests: string[] = [];

beforeAll(async () => {
  tiny = await serveTiny((l) => requests.push(l));
});

afterAll(async () => {
  await tiny?.close();
});

describe('kd serve with the AI SDK (ai, @ai-sdk/openai)', () => {
  it('generateText and streamText on provider(model) answer through /v1/responses, with log-probs', async () => {
    const provider = createOpenAI({ baseURL: `${tiny!.h.url}/v1`, apiKey: 'unused' });
    const model = provider('tiny-student');
    const want = await tiny!.client.responses.create({ model: 'tiny-student', input: 'hello the world', max_output_tokens: 6, temperature: 0, include: ['message.output_text.logprobs'], top_logprobs: 2 });
    const wantLogprobs = ((want.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText).logprobs!;

    requests.length = 0;
    const r = await generateText({ model, prompt: 'hello the world', maxOutputTokens: 6, temperature: 0, providerOptions: { openai: { logprobs: 2 } } });
    expect(requests.some((l) => /POST \/v1\/responses 200/.test(l))).toBe(true);
    expect(r.text).toBe(want.output_text);
    expect(r.usage.inputTokens).toBe(want.usage!.input_tokens);
    expect(r.usage.outputTokens).toBe(want.usage!.output_tokens);
    const got = (r.providerMetadata?.openai?.logprobs as { token: string; logprob: number; top_logprobs: unknown[] }[][] | undefined)?.flat();
    expect(got?.map((l) => l.token)).toEqual(wantLogprobs.map((l) => l.token));
    expect(got?.map((l) => l.top_logprobs.length)).toEqual(wantLogprobs.map(() => 2));

    const s = streamText({ model, prompt: 'hello the world', maxOutputTokens: 6, temperature: 0 });
    let text = '';
    for await (const d of s.textStream) text += d;
    expect(text).toBe(want.output_text);
  });
});
