/** The test teacher's fast serializer gives exactly the answer it stands for. */
import { describe, expect, it } from 'vitest';
import { chatAnswer, chatAnswerJson, type TeacherServerOptions } from './teacher-server.js';

describe('chatAnswerJson', () => {
  const bodies: Record<string, unknown>[] = [
    { model: 'm', messages: [{ role: 'user', content: 'hello there' }], logprobs: true, top_logprobs: 20, max_tokens: 16 },
    { model: 'm', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'héllo "quoted"\n' }], logprobs: true, top_logprobs: 5, max_tokens: 3, n: 2 },
    { messages: [{ role: 'user', content: 'no model' }], logprobs: true, top_logprobs: 0, max_completion_tokens: 8 },
  ];
  const options: TeacherServerOptions[] = [{}, { genTokens: 16 }, { noBytes: true, sentinel: true, altsPerPosition: 3 }];
  it('is JSON.stringify(chatAnswer(...)) with positions from the cache, also on a warm cache', () => {
    for (const o of options) {
      const cache = new Map<string, string>();
      for (const body of [...bodies, ...bodies]) {
        expect(chatAnswerJson(body, o, cache)).toBe(JSON.stringify(chatAnswer(body, o)));
        const none = chatAnswer(body, o);
        for (const c of none.choices) c.logprobs = null;
        expect(chatAnswerJson(body, o, cache, true)).toBe(JSON.stringify(none));
      }
      expect(cache.size).toBeGreaterThan(0);
    }
  });
});
