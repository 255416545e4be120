/**
 * The selection pass of `kd collect --budget-tokens/--max-cost --select …` (see select.ts for the
 * rules): reads every input row, estimates its teacher tokens, drops near-duplicates and rows already
 * answered, scores the rest with the student when the strategy needs it, and picks what fits the
 * budget left in --out. The pick is stored in --out/selection.json and reused by a rerun of the same
 * command, so a resumed collection sends exactly the rows the first run chose.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KdError } from '../core/errors.js';
import { readInput } from './input.js';
import type { LedgerScan } from './ledger.js';
import { hashFile } from './manifest.js';
import type { CollectOptions } from './options.js';
import { inShard } from './partition.js';
import { boundRequest, estimateRequest, type ResolvedPrice, type TokenCounter } from './pricing.js';
import { planRequests, type RequestParams } from './request.js';
import {
  nearDuplicates, pickCandidates, readSelection, selectionKey, writeSelection, type Candidate, type SelectionRound,
} from './select.js';

export interface SelectionSummary {
  strategy: CollectOptions['select'];
  /** The round was stored by an earlier run of the same command and reused. */
  reused: boolean;
  candidates: number;
  nearDuplicates: number;
  alreadyDone: number;
  selected: number;
  byStrategy: number;
  byRandom: number;
  /** Estimated teacher tokens of the selected rows, and of what --out held before. */
  selectedTokens: number;
  spentTokensBefore: number;
  budgetTokens: number | null;
  selectedCostUsd: number;
}

/** Ids of the rows this run may send (selected now or answered before) and what was decided. */
export async function selectRows(
  o: CollectOptions, p: RequestParams, ledger: LedgerScan, counter: TokenCounter, price: ResolvedPrice, priorCost: number, out: string,
  log: (line: string) => void,
): Promise<{ ids: Set<string>; summary: SelectionSummary }> {
  const strategy = o.select!;
  const students = o.student ?? [];
  if (strategy !== 'random' && students.length === 0) throw new KdError('bad-option', `--select ${strategy}: give --student CKPT (the checkpoint whose uncertainty picks the rows), or use --select random`);
  const studentFiles = students.map((st) => {
    if (!existsSync(st)) throw new KdError('bad-option', `--student ${st}: no such checkpoint`);
    const f = statSync(st).isDirectory() ? join(st, 'checkpoint.kdc') : st;
    if (!existsSync(f)) throw new KdError('bad-option', `--student ${st}: holds no checkpoint.kdc`);
    return f;
  });

  const rows: (Candidate & { done: boolean })[] = [];
  for await (const row of readInput({ file: o.input, mode: o.mode, format: o.format, column: o.column, idColumn: o.idColumn, systemColumn: o.systemColumn, system: o.system })) {
    if (!inShard(row.id, o.shard) || row.reject) continue;
    const reqs = planRequests(row, p);
    let tokens = 0, cost = 0;
    for (const r of reqs) {
      const e = estimateRequest(r, counter, price);
      tokens += e.promptTokens + e.completionTokens;
      cost += boundRequest(r, counter, price).costUsd; // what --max-cost admits by: so every picked row is sent
    }
    rows.push({ id: row.id, text: row.text ?? row.messages!.map((m) => m.content).join('\n'), tokens, costUsd: cost, done: reqs.every((r) => ledger.done.has(r.hash)) });
  }
  const doneIds = rows.filter((r) => r.done).map((r) => r.id);
  const spentTokens = ledger.usage.promptTokens + ledger.usage.completionTokens;
  const key = selectionKey({
    input: (await hashFile(o.input)).sha256, strategy, budgetTokens: o.budgetTokens ?? null, maxCost: o.maxCost ?? null,
    randomShare: o.randomShare, seed: o.selectSeed, shard: o.shard ?? null,
    // one student: its hash (as stored before disagreement existed, so such rounds are still reused)
    student: studentFiles.length === 0 ? null : studentFiles.length === 1 ? (await hashFile(studentFiles[0]!)).sha256 : await Promise.all(studentFiles.map(async (f) => (await hashFile(f)).sha256)),
  });
  const file = readSelection(out);
  const last = file.rounds.at(-1);
  let round: SelectionRound;
  let reused = false;
  if (last && last.key === key) {
    round = last;
    reused = true;
    log(`selection: reusing the round stored in ${join(out, 'selection.json')} (${round.selected} rows)`);
  } else {
    const dup = nearDuplicates(rows.map((r) => r.text));
    const cands = rows.filter((r, i) => !r.done && !dup.has(i));
    const dupDropped = [...dup.keys()].filter((i) => !rows[i]!.done).length;
    let scores = null;
    if (strategy !== 'random' && cands.length > 0) {
      const { studentDisagreement, studentUncertainty } = await import('./uncertainty.js');
      const textsOf = cands.map((c) => c.text);
      if (strategy === 'disagreement') {
        log(`selection: scoring ${cands.length} candidates by the disagreement of ${students.join(', ')}`);
        scores = await studentDisagreement(students, textsOf);
      } else {
        log(`selection: scoring ${cands.length} candidates with the student ${students[0]}`);
        scores = await studentUncertainty(students[0]!, textsOf);
      }
    }
    const pick = pickCandidates(cands, scores, {
      strategy,
      budgetTokens: o.budgetTokens === undefined ? Infinity : Math.max(0, o.budgetTokens - spentTokens),
      budgetUsd: o.maxCost === undefined ? Infinity : Math.max(0, o.maxCost - priorCost),
      randomShare: o.randomShare, seed: o.selectSeed,
    });
    round = {
      key, strategy, budget_tokens: o.budgetTokens ?? null, max_cost: o.maxCost ?? null, random_share: o.randomShare, seed: o.selectSeed,
      student: students[0] ?? null, ...(students.length > 1 ? { students } : {}), created_at: new Date().toISOString(), candidates: cands.length, near_duplicates: dupDropped,
      already_done: doneIds.length, spent_tokens_before: spentTokens, selected: pick.ids.length, selected_tokens: pick.tokens,
      selected_cost_usd: pick.costUsd, ids: pick.ids, by: pick.by,
    };
    if (!o.dryRun) {
      mkdirSync(out, { recursive: true });
      writeSelection(out, { ...file, rounds: [...file.rounds, round] });
    }
  }
  const byRandom = round.by.filter((b) => b === 'random').length;
  const summary: SelectionSummary = {
    strategy, reused, candidates: round.candidates, nearDuplicates: round.near_duplicates, alreadyDone: round.already_done,
    selected: round.selected, byStrategy: round.selected - byRandom, byRandom, selectedTokens: round.selected_tokens,
    spentTokensBefore: round.spent_tokens_before, budgetTokens: round.budget_tokens, selectedCostUsd: round.selected_cost_usd,
  };
  if (!reused) log(`selection: ${round.selected} of ${round.candidates} candidate rows (${round.near_duplicates} near-duplicates dropped, ${doneIds.length} answered before), ~${round.selected_tokens} teacher tokens`);
  return { ids: new Set([...doneIds, ...round.ids]), summary };
}
