import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { KdError } from '../core/errors.js';
import { lockingOut } from '../core/lock.js';

interface TokenizerTrainArgs { corpus: string; vocabSize: number; out: string; json?: boolean }

export const tokenizerTrainCommand: CommandModule<object, TokenizerTrainArgs> = {
      command: 'train',
      describe: 'Learn a BPE vocabulary from a corpus ("sotu", a .txt/.jsonl file or a directory of .txt)',
      builder: (yy) => yy
        .option('corpus', { type: 'string', demandOption: true, describe: '"sotu" (built in) or a path' })
        .option('vocab-size', { type: 'number', default: 4096, describe: 'tokens in all, including the 256 bytes' })
        .option('out', { type: 'string', demandOption: true, describe: 'tokenizer JSON to write' })
        .option('json', { type: 'boolean', describe: 'print a JSON summary' }) as unknown as Argv<TokenizerTrainArgs>,
      handler: async (a) => {
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
        const summary = { out: path.resolve(a.out), vocabSize: tok.vocabSize, corpus: corpus.name, documents: docs.length, bytes, tokens, bytesPerToken: bytes / tokens, hash: tok.hash() };
        process.stdout.write(a.json ? JSON.stringify(summary) + '\n' : `tokenizer: ${tok.vocabSize} tokens from ${docs.length} documents of ${corpus.name}, ${(bytes / tokens).toFixed(2)} bytes/token → ${a.out}\n`);
      },
};

export const tokenizerCommand: CommandModule<object, object> = {
  command: 'tokenizer <action>',
  describe: 'Train a byte-level BPE tokenizer on a text corpus (for plain next-token training, e.g. a teacher)',
  builder: (y: Argv) => y.command(lockingOut('kd tokenizer train', tokenizerTrainCommand)).demandCommand(1),
  handler: () => {},
};
