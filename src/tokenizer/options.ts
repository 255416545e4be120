/** `kd tokenizer train`'s options, once: the spec its flags, types and pipeline `with:` keys come from. */
import { type OptionsOf, type OptionsSpec, flag } from '../core/options.js';

export const TOKENIZER_DEFAULTS = { vocabSize: 4096 };

export const TOKENIZER_TRAIN_OPTIONS = {
  corpus: { type: 'string', required: true, describe: '"sotu" (built in) or a path' },
  vocabSize: { type: 'number', describe: 'tokens in all, including the 256 bytes', default: TOKENIZER_DEFAULTS.vocabSize },
  out: { type: 'string', required: true, describe: 'tokenizer JSON to write' },
  json: flag('print a JSON summary'),
} as const satisfies OptionsSpec;

export type TokenizerTrainArgs = OptionsOf<typeof TOKENIZER_TRAIN_OPTIONS>;
