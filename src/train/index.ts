/** `kd train`: what later stages use (compress fine-tunes and evaluates with the same step and loop). */
export { DEFAULT_TRAIN, type TrainConfig, defaultWorkers, resolveTrainConfig } from './config.js';
export { type WeightMasks, computeGradients, evaluate, stepCounts } from './step.js';
export { type StepProgress, type TrainSummary, train } from './trainer.js';
export { type KdLossOptions, newRowGrad, rowDivergence } from './kd-kernel.js';
// kd train's option spec and its resolution into a run
export { TRAIN_OPTIONS, type TrainArgs, resolveTrainArgs } from './options.js';
