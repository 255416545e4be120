import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { KdError } from '../core/errors.js';
import { lockingOut } from '../core/lock.js';
import { TOKENIZER_DEFAULTS, TOKENIZER_TRAIN_OPTIONS } from '../tokenizer/options.js';
import { summaryCommand } from './command.js';

export const tokenizerTrainCommand = summaryCommand({
  command: 'train',
  describe: 'Learn a BPE vocabulary from a corpus ("sotu", a .txt/.jsonl file or a directory of .txt)',
  options: TOKENIZER_TRAIN_OPTIONS,
  run: async (argv) => {
    const a = { ...argv, vocabSize: argv.vocabSize ?? TOKENIZER_DEFAULTS.vocabSize };
    if (!Number.isInteger(a.vocabSize) || a.vocabSize < 256 || a.vocabSize > 65536) throw new KdError('bad-config', `--vocab-size must be an integer in [256, 65536], got ${a.vocabSize}`);
    const { readCorpus, splitDocs } = await import('../data/corpus.js');
    const { trainBpe } = await import('../tokenizer/bpe.js');
    const { writeJsonAtomic } = await import('../core/atomic.js');
    const corpus = readCorpus(a.corpus);
    const docs = splitDocs(corpus, 'train'); // learn the vocabulary on the training documents only
    const tok = trainBpe(docs.map((d) => d.text), { vocabSize: a.vocabSize });
    tok.meta.corpus = corpus.name;
    writeJsonAtomic(a.out, tok.toJSON());
    const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d.text), 0);
    const tokens = docs.reduce((n, d) => n + tok.encode(d.text).length, 0);
    return { out: path.resolve(a.out), vocabSize: tok.vocabSize, corpus: corpus.name, documents: docs.length, bytes, tokens, bytesPerToken: bytes / tokens, hash: tok.hash() };
  },
  format: (s, a) => `tokenizer: ${s.vocabSize} tokens from ${s.documents} documents of ${s.corpus}, ${s.bytesPerToken.toFixed(2)} bytes/token → ${a.out}`,
});

export const tokenizerCommand: CommandModule<object, object> = {
  command: 'tokenizer <action>',
  describe: 'Train a byte-level BPE tokenizer on a text corpus (for plain next-token training, e.g. a teacher)',
  builder: (y: Argv) => y.command(lockingOut('kd tokenizer train', tokenizerTrainCommand)).demandCommand(1),
  handler: () => {},
};
