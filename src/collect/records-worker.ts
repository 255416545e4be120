/** The worker thread of {@link workerSink} (records.ts): runs a RecordPipeline on the answers it is sent. */
import { parentPort, workerData } from 'node:worker_threads';
import { isKdError } from '../core/errors.js';
import { Batcher, RecordPipeline, type FromWorker, type JobOutcome, type RecordPipelineOptions, type ToWorker } from './records.js';

const port = parentPort!;
const pipeline = new RecordPipeline(workerData as RecordPipelineOptions);
const post = (m: FromWorker) => port.postMessage(m);
const outcomes = new Batcher<JobOutcome>((batch) => post({ type: 'results', outcomes: batch }));

port.on('message', (m: ToWorker) => {
  if (m.type === 'jobs') {
    for (const { id, job } of m.jobs) {
      pipeline.process(job).then(
        (result) => outcomes.push({ id, result }),
        (e: Error) => outcomes.push({ id, failed: e.message }),
      );
    }
    return;
  }
  // close: every job before it has been taken in (messages arrive in order); flush and close.
  try {
    const shards = pipeline.close();
    outcomes.flush();
    post({ type: 'closed', shards });
  } catch (e) {
    post({ type: 'close_failed', code: isKdError(e) ? e.code : null, message: (e as Error).message });
  }
});
post({ type: 'ready' });
