/**
 * The import graph of src/: every relative import, re-export and dynamic import() of every .ts file,
 * read with TypeScript's own pre-processor (no type-checking, so it is fast). Used by
 * test/architecture.test.ts to hold src/ to the layering in ARCHITECTURE.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export interface ImportEdge {
  from: string; // path relative to the root, e.g. 'src/data/open.ts'
  to: string;
  typeOnly: boolean;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Resolves a relative specifier written as NodeNext wants it ('./x.js' for x.ts). */
function resolve(fromFile: string, spec: string): string | null {
  const base = path.resolve(path.dirname(fromFile), spec);
  for (const c of [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, path.join(base, 'index.ts')]) {
    if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  }
  return null;
}

/** All relative imports of the .ts files below `root/dir`; paths in the answer are relative to root. */
export function importGraph(root: string, dir = 'src'): { files: string[]; edges: ImportEdge[]; unresolved: string[] } {
  const files = walk(path.join(root, dir)).sort();
  const edges: ImportEdge[] = [];
  const unresolved: string[] = [];
  const rel = (f: string) => path.relative(root, f).split(path.sep).join('/');
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const src = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
    const add = (spec: string, typeOnly: boolean) => {
      if (!spec.startsWith('.')) return;
      const to = resolve(file, spec);
      if (to === null) unresolved.push(`${rel(file)} → ${spec}`);
      else edges.push({ from: rel(file), to: rel(to), typeOnly });
    };
    const visit = (node: ts.Node) => {
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
        const c = node.importClause;
        const typeOnly = !!c && (c.isTypeOnly || (!c.name && !!c.namedBindings && ts.isNamedImports(c.namedBindings)
          && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)));
        add(node.moduleSpecifier.text, typeOnly);
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        add(node.moduleSpecifier.text, node.isTypeOnly);
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword
        && node.arguments.length === 1 && ts.isStringLiteralLike(node.arguments[0])) {
        add(node.arguments[0].text, false);
      } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
        add(node.argument.literal.text, true);
      }
      ts.forEachChild(node, visit);
    };
    visit(src);
  }
  return { files: files.map(rel), edges, unresolved };
}

/** The strongly connected components with more than one file (or a file importing itself): Tarjan's algorithm. */
export function cycles(files: string[], edges: ImportEdge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) next.get(e.from)?.push(e.to);
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); on.add(v);
    for (const w of next.get(v) ?? []) {
      if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do { w = stack.pop()!; on.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || (next.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const f of files) if (!idx.has(f)) strong(f);
  return out;
}

/** Lowest first. A folder may import its own files and any folder of a lower layer; never a higher one or a sibling. */
export const LAYERS: string[][] = [
  ['core'],
  ['schema'],
  ['backend', 'tokenizer'],
  ['model'],
  ['data'],
  // the stages, in pipeline order: a stage may use an earlier one, through its index.ts only
  ['collect', 'dataset', 'train', 'compress', 'eval', 'serve', 'onpolicy'],
  ['pipeline'],
  ['cli'],
];
const STAGES = LAYERS[5];

/** 'src/train/step.ts' → 'train'; src/cli.ts (the entry point) belongs to the cli layer. */
export const folderOf = (file: string): string => {
  const parts = file.split('/');
  if (parts.length === 2) return parts[1] === 'cli.ts' ? 'cli' : `(src/${parts[1]})`;
  return parts[1];
};

/** Why an import breaks the rule, or null when it keeps it. */
export function violation(e: ImportEdge): string | null {
  const a = folderOf(e.from), b = folderOf(e.to);
  if (a === b) return null;
  const la = LAYERS.findIndex((l) => l.includes(a)), lb = LAYERS.findIndex((l) => l.includes(b));
  if (la < 0) return `${e.from} is in no layer (add src/${a}/ to LAYERS and ARCHITECTURE.md)`;
  if (lb < 0) return `${e.to} is in no layer (add it to LAYERS and ARCHITECTURE.md)`;
  if (lb > la) return `${e.from} imports ${e.to}: upward, from ${a} into ${b}`;
  if (la === lb) {
    if (la !== 5) return `${e.from} imports ${e.to}: sideways, between ${a} and ${b} of one layer`;
    if (STAGES.indexOf(b) > STAGES.indexOf(a)) return `${e.from} imports ${e.to}: stage ${a} uses the later stage ${b}`;
    if (e.to !== `src/${b}/index.ts`) return `${e.from} imports ${e.to}: past src/${b}/index.ts, the stage's public surface`;
  }
  return null;
}

/** Calls that write to stdout, exit or handle signals (`process.stdout.write`, `console.log`, `process.exit`, `process.on('SIG…')`), as file:line. */
export function processCalls(root: string, file: string): string[] {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isCallExpression(node)) {
      const callee = node.expression.getText(src);
      const first = node.arguments[0];
      const signal = /^process\.(on|once|addListener)$/.test(callee) && first && ts.isStringLiteralLike(first) && first.text.startsWith('SIG');
      if (signal || /^(process\.stdout\.write|console\.(log|info)|process\.exit)$/.test(callee)) {
        out.push(`${file}:${src.getLineAndCharacterOfPosition(node.getStart(src)).line + 1}: ${callee}`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}
