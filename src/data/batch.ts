/**
 * What the trainer consumes: batches of B sequences of T tokens with the teacher's top-k soft
 * labels per position. Sources are deterministic given their cursor, so a checkpoint that stores the
 * cursor resumes at exactly the next batch.
 */
export interface Batch {
  B: number;
  T: number;
  K: number;
  /** [B·T] student token ids */
  inputIds: Int32Array;
  /** [B·T·K] teacher top-k student ids for the next token */
  topIds: Int32Array;
  /** [B·T·K] teacher log-probs of those ids */
  topLogprobs: Float32Array;
  /** [B·T] 1 where the teacher labelled the position */
  mask: Float32Array;
  /** [B·T] actual next token (hard label), −1 where none */
  targets: Int32Array;
}

export type Cursor = unknown;

export interface BatchSource {
  /** the next batch; sources used for training cycle over their data and never run dry */
  next(): Batch;
  /** JSON-serialisable position: `open(cursor)` continues right after the last batch returned */
  cursor(): Cursor;
}

export interface BatchSourceFactory {
  /** start at the beginning, or at `cursor` */
  open(cursor?: Cursor): BatchSource;
  /** a short description for logs and manifests */
  describe(): Record<string, unknown>;
}
