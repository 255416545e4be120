/**
 * References in a pipeline file's strings, resolved when it is loaded:
 *   ${env.NAME}             the environment variable NAME (an error when it is unset or empty)
 *   ${env.NAME:-DEFAULT}    NAME, or DEFAULT when it is unset or empty (as in the shell)
 *   ${teacher.url}, ${teacher.model}, ${teacher.api_key_env}   the top-level `teacher:` block
 * `teacher:` may itself use ${env.…}, so a pipeline's teacher is set in one place. ${services.NAME.url}
 * is left for kd run, which knows it only once the service has started.
 */
import type { PipelineFile } from '../schema/pipeline.js';

const REF = /\$\{(env|teacher)\.([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

type Where = (string | number)[];

function substitute(s: string, where: Where, vars: { env: NodeJS.ProcessEnv; teacher?: Record<string, string | undefined> }, fail: (where: Where, msg: string) => never): string {
  return s.replace(REF, (ref, scope: string, name: string, dflt: string | undefined) => {
    if (scope === 'env') {
      const v = vars.env[name];
      if (v !== undefined && v !== '') return v;
      if (dflt !== undefined) return dflt;
      return fail(where, `${ref}: the environment variable ${name} is not set (set it, or give a default: \${env.${name}:-VALUE})`);
    }
    if (dflt !== undefined) return fail(where, `${ref}: a default is for \${env.…} only`);
    if (!vars.teacher) return fail(where, `${ref}: this pipeline has no top-level "teacher:" block`);
    const v = vars.teacher[name];
    if (v === undefined) return fail(where, `${ref}: teacher has no "${name}" (it has ${Object.keys(vars.teacher).filter((k) => vars.teacher![k] !== undefined).join(', ')})`);
    return v;
  });
}

function walk(v: unknown, where: Where, f: (s: string, where: Where) => string): unknown {
  if (typeof v === 'string') return f(v, where);
  if (Array.isArray(v)) return v.map((x, i) => walk(x, [...where, i], f));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...where, k], f)]));
  return v;
}

/** The pipeline with its ${env.…} and ${teacher.…} references resolved; `fail` throws the error naming the field. */
export function resolveReferences(p: PipelineFile, fail: (where: Where, msg: string) => never, env: NodeJS.ProcessEnv = process.env): PipelineFile {
  const noTeacher = (s: string, where: Where) => {
    if (/\$\{teacher\./.test(s)) fail(where, 'teacher: cannot refer to itself');
    return substitute(s, where, { env }, fail);
  };
  const teacher = p.teacher ? walk(p.teacher, ['teacher'], noTeacher) as NonNullable<PipelineFile['teacher']> : undefined;
  const vars = { env, teacher: teacher as Record<string, string | undefined> | undefined };
  const sub = (s: string, where: Where) => substitute(s, where, vars, fail);
  return {
    ...p,
    ...(teacher ? { teacher } : {}),
    ...(p.services ? { services: walk(p.services, ['services'], sub) as PipelineFile['services'] } : {}),
    stages: p.stages.map((s, i) => ({ ...s, with: walk(s.with, ['stages', i, 'with'], sub) as Record<string, unknown> })),
  };
}
