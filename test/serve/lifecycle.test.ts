/** Server lifecycle: real-time streaming, client disconnects, close() with requests in flight. */
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { serve } from '../../src/serve/serve.js';
import { makeCheckpoint } from './fixture.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('closing', () => {
  it('close() during a long stream ends it and frees the server; a second close() is harmless', async () => {
    const h = await serve({ checkpoint: await makeCheckpoint(), port: 0, quiet: true, backend: 'cpu' });
    const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4096, stream: true, seed: 1 });
    let chunks = 0;
    let closing: Promise<void> | undefined;
    const consume = (async () => {
      for await (const c of stream) {
        chunks++;
        if (c.choices[0]?.finish_reason) return 'finished';
        if (chunks === 3) closing = h.close();
      }
      return 'ended';
    })();
    // the stream ends early with an in-band error event, which the SDK throws
    const outcome = await consume.catch((e: Error) => `error: ${e.message}`);
    expect(outcome).toMatch(/^error: The server is shutting down/);
    await closing;
    await h.close();
    expect(chunks).toBeLessThan(4096);
    await expect(fetch(`${h.url}/v1/models`)).rejects.toThrow();
  });
});

describe('streaming', () => {
  it('sends chunks as tokens are made, and stops generating when the client goes away', async () => {
    const lines: string[] = [];
    const h = await serve({ checkpoint: await makeCheckpoint(), port: 0, backend: 'cpu', log: (l) => lines.push(l) });
    try {
      const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const stop = new AbortController();
      const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4096, stream: true, seed: 1 }, { signal: stop.signal });
      let chunks = 0;
      // the SDK ends the iteration quietly on abort
      for await (const c of stream) {
        expect(c.choices[0]?.finish_reason ?? null).toBeNull();
        if (++chunks === 3) stop.abort();
      }
      // the server notices at its next step: later requests are served and the aborted one logs no usage
      const r = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
      expect(r.choices).toHaveLength(1);
      const streamed = lines.find((l) => l.startsWith('POST /v1/chat/completions') && !/tokens$/.test(l));
      expect(streamed, lines.join('\n')).toBeDefined();
      expect(lines.join('\n')).not.toMatch(/\+4096 tokens/);
    } finally {
      await h.close();
    }
  });
});
