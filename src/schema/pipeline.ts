/**
 * The pipeline file (`kd run pipelines/NAME.yaml`), version 1. Closed and typed: unknown keys are
 * errors, reported with the file, line and field. A pipeline lists stages in order; each names its
 * kind and its parameters (the same names as the stage's CLI flags, in snake_case or camelCase). The
 * keys and values of `with:` are checked against the kind's option spec by the pipeline layer
 * (src/pipeline/stages.ts, withProblem), which knows the stages; this file, below them, does not.
 *
 *   version: 1
 *   name: demo
 *   services:
 *     teacher: { serve: { checkpoint: checkpoints/teacher } }   # kd serve on loopback during the run
 *   stages:
 *     - { name: train, stage: train, with: { data: synthetic, out: checkpoints/demo, steps: 100 } }
 * Strings may use ${services.NAME.url} (the base URL of a started service), ${env.NAME} or
 * ${env.NAME:-DEFAULT}, and ${teacher.url} / ${teacher.model} / ${teacher.api_key_env} from the top-level
 * `teacher:` block (src/pipeline/substitute.ts):
 *   teacher: { url: "${env.KD_TEACHER_URL:-https://api.openai.com/v1}", model: gpt-4o-mini }
 */
import { z } from 'zod';

export const PIPELINE_VERSION = 1;
export const STAGE_KINDS = ['tokenizer', 'collect', 'merge', 'dataset', 'train', 'prune', 'quantize', 'export', 'eval'] as const;
export type StageKind = (typeof STAGE_KINDS)[number];

const serviceSchema = z.strictObject({
  serve: z.strictObject({
    checkpoint: z.string().min(1),
    host: z.string().optional(),
    port: z.number().int().min(0).max(65535).optional(),
    model_name: z.string().optional(),
  }),
});

export const stageSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only').optional(),
  stage: z.enum(STAGE_KINDS),
  with: z.record(z.string(), z.unknown()).default({}),
});

/** The teacher of the pipeline's collect and eval stages, set once and referred to as ${teacher.url} etc. */
const teacherSchema = z.strictObject({
  url: z.string().min(1),
  model: z.string().min(1),
  api_key_env: z.string().min(1).optional(),
});

export const pipelineSchema = z.strictObject({
  version: z.literal(PIPELINE_VERSION),
  name: z.string().min(1),
  description: z.string().optional(),
  teacher: teacherSchema.optional(),
  services: z.record(z.string(), serviceSchema).optional(),
  stages: z.array(stageSchema).min(1),
});

export type PipelineFile = z.infer<typeof pipelineSchema>;
export type StageEntry = z.infer<typeof stageSchema>;
