// Run by student-module.test.ts with plain `node`: kd-student.js as a user's Node script uses it.
// argv: the export's kd-student.js, a JSON file of {texts, prompt, longIds}; prints one JSON line.
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const { loadStudent, sample } = await import(pathToFileURL(process.argv[2]).href);
const input = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const student = await loadStudent();
const tok = student.tokenizer;
const pieces = [];
const sampled = (seed, topK) => student.generate(input.prompt, { maxTokens: 6, temperature: 1, topK, seed });
const error = async (f) => { try { await f(); return null; } catch (e) { return e.message; } };
const out = {
  vocabSize: tok.vocabSize,
  ids: input.texts.map((t) => tok.encode(t)),
  roundTrip: input.texts.map((t) => tok.decode(tok.encode(t)) === t),
  logits: Array.from(await student.logits(tok.encode(input.prompt))),
  longLogits: Array.from(await student.logits(input.longIds)),
  greedy: await student.generate(input.prompt, { maxTokens: 8, temperature: 0, onToken: (t) => pieces.push(t) }),
  longGreedy: (await student.generate(input.longIds, { maxTokens: 4, temperature: 0 })).ids,
  seeded: [(await sampled(7, 0)).ids, (await sampled(7, 0)).ids, (await sampled(8, 0)).ids],
  top1: (await sampled(9, 1)).ids,
  sampleTop2: Array.from({ length: 200 }, (_, i) => sample(Float32Array.of(0, 5, 1, 4), { temperature: 1, topK: 2 }, () => i / 200)),
  errors: [
    await error(() => student.generate(input.prompt, { maxTokens: -1 })),
    await error(() => student.generate('', {})),
    await error(() => tok.decode([tok.vocabSize])),
  ],
};
out.pieces = pieces;
process.stdout.write(JSON.stringify(out) + '\n');
