/** A tiny real checkpoint for serve tests: a few training steps, a tokenizer with multi-byte tokens. */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveModelConfig } from '../../src/model/config.js';
import OpenAI from 'openai';
import { initBackend } from '../../src/backend/index.js';
import { type Model, disposeModel, forwardLogits } from '../../src/model/gpt.js';
import { loadServedModel } from '../../src/serve/model.js';
import { type ServeHandle, serve } from '../../src/serve/serve.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { syntheticTeacher } from '../../src/data/synthetic.js';
import { train } from '../../src/train/trainer.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';

/** Extra tokens past the 256 bytes: words, a 2-byte character, a cut 3-byte character, a "bytes:" look-alike. */
export const EXTRA_TOKENS: Uint8Array[] = [
  ...['th', 'the', ' the', 'é', 'hello', ' world', 'user', ': ', 'bytes:', 'ab', '€'].map((s) => Uint8Array.from(Buffer.from(s, 'utf8'))),
  Uint8Array.of(0xe2, 0x82), // the first two bytes of "€": not valid UTF-8 on its own
];

export function testTokenizer(): Tokenizer {
  return new Tokenizer([...Tokenizer.bytes().tokens, ...EXTRA_TOKENS], { purpose: 'serve tests' });
}

export const SEQ_LEN = 16;

/** Train a tiny model for a few steps and return its run directory (named "tiny-student"); `seed`: of the initial weights. */
export async function makeCheckpoint(seed = 0): Promise<string> {
  const tok = testTokenizer();
  const V = tok.vocabSize;
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kd-serve-')), 'tiny-student');
  const model = resolveModelConfig({ vocabSize: V, seqLen: SEQ_LEN, dModel: 16, nLayers: 1, nHeads: 2 });
  // a fixed loss (the one the fixture was made with), so what the tiny model generates does not move with kd train's defaults
  const config = resolveTrainConfig({ steps: 6, batchSize: 4, seqLen: SEQ_LEN, lr: 2e-2, warmupSteps: 1, logEvery: 6, evalEvery: 0, checkpointEvery: 0, seed, loss: { temperature: 2, alpha: 0, missingMass: 'renormalize' } });
  await train({ model, config, data: syntheticTeacher({ vocabSize: V, seqLen: SEQ_LEN, batchSize: 4, topK: 8, seed: 3, sharpness: 6 }), outDir: dir, tokenizer: tok.toJSON() });
  return dir;
}

/** log-softmax of the model's forward pass over one sequence (≤ seqLen): [T][V], computed directly, not by the server. */
export function logProbsOf(model: Model, ids: number[]): number[][] {
  return tf.tidy(() => (tf.logSoftmax(forwardLogits(model, tf.tensor2d([ids], [1, ids.length], 'int32'))).arraySync() as number[][][])[0]!);
}

export interface TinyServer {
  dir: string;
  h: ServeHandle;
  /** the openai SDK pointed at it */
  client: OpenAI;
  /** the same checkpoint loaded apart from the server, to check its numbers */
  ref: Model;
  tok: Tokenizer;
  close(): Promise<void>;
}

/** kd serve on the tiny checkpoint (cpu backend, a free port), with the SDK client and a reference copy of the model. */
export async function serveTiny(log: (line: string) => void = () => {}): Promise<TinyServer> {
  await initBackend({ backend: 'cpu' });
  const dir = await makeCheckpoint();
  const h = await serve({ checkpoint: dir, port: 0, backend: 'cpu', log });
  const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const { model: ref, tokenizer: tok } = loadServedModel(dir);
  return { dir, h, client, ref, tok, close: async () => { await h.close(); disposeModel(ref); } };
}
