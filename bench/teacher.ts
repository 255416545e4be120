/**
 * The embedded teacher against a unigram baseline on the held-out SOTU documents (every 10th
 * speech), as one JSON line: validation perplexity of checkpoints/teacher vs an add-one-smoothed
 * unigram model fitted on the training documents with the same tokenizer.
 *
 *   npx tsx bench/teacher.ts [--checkpoint checkpoints/teacher] [--windows 64]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { forwardLogits, disposeModel } from '../src/model/gpt.js';
import { loadModel } from '../src/model/load.js';
import { encodeDocs, readCorpus, splitDocs } from '../src/data/corpus.js';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => { const i = args.indexOf(`--${n}`); return i >= 0 ? args[i + 1] : d; };

await initBackend({});
const { model, tokenizer, file } = loadModel(arg('checkpoint', 'checkpoints/teacher'));
if (!tokenizer) throw new Error(`${file} has no tokenizer`);
const corpus = readCorpus('sotu');
const train = encodeDocs(splitDocs(corpus, 'train'), tokenizer);
const val = encodeDocs(splitDocs(corpus, 'val'), tokenizer);
const V = tokenizer.vocabSize;

// unigram with add-one smoothing, fitted on the training split
const counts = new Float64Array(V).fill(1);
for (const t of train) counts[t]++;
const total = counts.reduce((a, b) => a + b, 0);
let uniNll = 0;
for (const t of val) uniNll -= Math.log(counts[t] / total);
const unigramPpl = Math.exp(uniNll / val.length);

// the teacher on non-overlapping windows of seqLen + 1 tokens spread over the validation split
const T = model.config.seqLen;
const windows = Math.min(Number(arg('windows', '64')), Math.floor((val.length - 1) / (T + 1)));
const stride = Math.floor((val.length - T - 1) / windows);
let nll = 0, n = 0;
for (let w = 0; w < windows; w++) {
  const start = w * stride;
  const ids = tf.tensor2d(val.subarray(start, start + T), [1, T], 'int32');
  const logp = tf.tidy(() => tf.logSoftmax(forwardLogits(model, ids)).arraySync() as number[][][]);
  ids.dispose();
  for (let t = 0; t < T; t++) { nll -= logp[0][t][val[start + t + 1]]; n++; }
}
disposeModel(model);
const ppl = Math.exp(nll / n);
process.stdout.write(JSON.stringify({
  bench: 'teacher', checkpoint: file, vocab: V, valTokens: val.length, scoredTokens: n,
  teacher_val_perplexity: Math.round(ppl * 10) / 10, unigram_val_perplexity: Math.round(unigramPpl * 10) / 10,
  ratio: Math.round((unigramPpl / ppl) * 100) / 100,
}) + '\n');
