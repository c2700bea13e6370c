/**
 * Documentation check run by `npm run lint`: every exported function, and every public method of
 * an exported class, whose own body contains a `throw` statement must say what it throws with a
 * `@throws` tag in its TSDoc (docs/architecture.md, "Errors"). A throw inside a nested function
 * or callback belongs to that function, not to the outer one, and `throw err` that only
 * re-throws a caught error (a `catch` clause's parameter) does not count.
 *
 * Usage: `node dist/tools/check-docs.js [root]` (default `src`). Prints one line per function
 * that lacks the tag and exits 1 when there is any.
 *
 * @module
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

/** One function that throws without saying so. */
export interface MissingThrows {
  file: string;
  line: number;
  name: string;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function isExported(node: ts.Node): boolean {
  const mods = ts.canHaveModifiers(node) ? ts.getModifiers(node) : undefined;
  return mods?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword) ?? false;
}

function isPublicMember(node: ts.ClassElement): boolean {
  const mods = ts.canHaveModifiers(node) ? ts.getModifiers(node) : undefined;
  if (mods?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword)) return false;
  if (node.name && ts.isPrivateIdentifier(node.name)) return false;
  const docs = ts.getJSDocTags(node);
  return !docs.some((t) => t.tagName.text === 'internal');
}

/** Names bound by the `catch` clauses around `node` (re-throwing those is not a new throw). */
function caughtNames(node: ts.Node): Set<string> {
  const names = new Set<string>();
  for (let p: ts.Node | undefined = node.parent; p; p = p.parent) {
    if (ts.isCatchClause(p) && p.variableDeclaration && ts.isIdentifier(p.variableDeclaration.name)) names.add(p.variableDeclaration.name.text);
    if (ts.isFunctionLike(p)) break;
  }
  return names;
}

/** Whether `body` itself (not a nested function) throws a new error. */
export function throwsDirectly(body: ts.Node): boolean {
  let found = false;
  const visit = (n: ts.Node): void => {
    if (found) return;
    if (n !== body && ts.isFunctionLike(n)) return;
    if (ts.isThrowStatement(n)) {
      const e = n.expression;
      if (!(e && ts.isIdentifier(e) && caughtNames(n).has(e.text))) {
        found = true;
        return;
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(body);
  return found;
}

function hasThrowsTag(node: ts.Node): boolean {
  return ts.getJSDocTags(node).some((t) => t.tagName.text === 'throws');
}

/** Every exported function / public method under `root` that throws without a `@throws` tag. */
export function findMissingThrows(root: string): MissingThrows[] {
  const missing: MissingThrows[] = [];
  for (const file of tsFiles(root)) {
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const report = (node: ts.Node, name: string): void => {
      missing.push({ file: relative(process.cwd(), file), line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1, name });
    };
    for (const stmt of sf.statements) {
      if (ts.isFunctionDeclaration(stmt) && isExported(stmt) && stmt.body && throwsDirectly(stmt.body) && !hasThrowsTag(stmt)) {
        report(stmt, stmt.name?.text ?? 'default');
      }
      if (ts.isClassDeclaration(stmt) && isExported(stmt)) {
        for (const m of stmt.members) {
          if (!(ts.isMethodDeclaration(m) || ts.isConstructorDeclaration(m) || ts.isGetAccessor(m)) || !m.body || !isPublicMember(m)) continue;
          if (throwsDirectly(m.body) && !hasThrowsTag(m)) {
            const member = ts.isConstructorDeclaration(m) ? 'constructor' : m.name.getText(sf);
            report(m, `${stmt.name?.text ?? 'default'}.${member}`);
          }
        }
      }
    }
  }
  return missing;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const missing = findMissingThrows(process.argv[2] ?? 'src');
  for (const m of missing) process.stdout.write(`${m.file}:${m.line} ${m.name} throws but its TSDoc has no @throws\n`);
  if (missing.length > 0) {
    process.stdout.write(`${missing.length} public function(s) throw without saying what (add a @throws tag)\n`);
    process.exit(1);
  }
}
