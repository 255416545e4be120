// Run by student-module.test.ts with plain `node`: kd-student.js as a user's Node script uses it.
// argv: the export's kd-student.js, a JSON file of {texts, prompt, longIds}; prints one JSON line.
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const { loadStudent, sample, tf } = await import(pathToFileURL(process.argv[2]).href);
const input = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const student = await loadStudent();
const tok = student.tokenizer;
const pieces = [];
const sampled = (seed, topK) => student.generate(input.prompt, { maxTokens: 6, temperature: 1, topK, seed });
const error = async (f) => { try { await f(); return null; } catch (e) { return e.message; } };
// The KV-cached decoder against the graph run on the whole context: a prompt of 100 tokens, then one token
// at a time to seqLen + 2 (past seqLen it runs the last seqLen again); the graph compared at seqLen and seqLen + 2.
const kv = { diffs: [], lengths: [], at: [] };
{
  const S = student.seqLen, seq = input.longIds.slice(0, S + 2), dec = student.decoder();
  let n = 100, logits = await dec.next(seq.slice(0, n));
  for (;;) {
    kv.lengths.push(dec.length);
    if (n === S || n === S + 2) {
      const ref = await student.logits(seq.slice(0, n));
      kv.diffs.push(ref.reduce((m, v, i) => Math.max(m, Math.abs(v - logits[i])), 0));
      kv.at.push(n);
    }
    if (n === seq.length) break;
    logits = await dec.next([seq[n++]]);
  }
  kv.last = Array.from(logits);
  dec.dispose();
}
// generate() never runs the graph (every step goes through the cache)
const execute = student.model.execute.bind(student.model);
let graphCalls = 0;
student.model.execute = (...a) => { graphCalls++; return execute(...a); };
const tensorsBefore = tf.memory().numTensors;
const kvGreedy = (await student.generate(input.prompt, { maxTokens: 8, temperature: 0 })).ids;
const tensorsAfter = tf.memory().numTensors;
student.model.execute = execute;
const out = {
  kv, kvGreedy, graphCalls, leakedTensors: tensorsAfter - tensorsBefore,
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
