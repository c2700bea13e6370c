/**
 * The README's driver option tables are generated from the drivers' option declarations
 * (`FILE_OPTIONS`, `LVM_OPTIONS`, `ESERIES_OPTIONS`, `FLASHSYSTEM_OPTIONS`), so they cannot
 * drift from what the code accepts. Each table sits between the markers
 * `<!-- options:NAME -->` and `<!-- /options:NAME -->`.
 *
 * Usage: `node dist/tools/readme-options.js` rewrites README.md; `--check` exits 1 (and says
 * which table) when README.md differs from the declarations. The unit test
 * test/unit/api/readme-options.test.ts runs the check.
 *
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FILE_OPTIONS, LVM_OPTIONS, ESERIES_OPTIONS, FLASHSYSTEM_OPTIONS, renderOptionsTable, type DriverOption } from '../src/drivers/public.js';

/** The tables, by marker name. */
export const OPTION_TABLES: Readonly<Record<string, readonly DriverOption[]>> = {
  file: FILE_OPTIONS,
  lvm: LVM_OPTIONS,
  eseries: ESERIES_OPTIONS,
  flashsystem: FLASHSYSTEM_OPTIONS,
};

/** The README path of this checkout (tools run from dist/tools). */
export const README = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');

/**
 * `text` with every marked table replaced by the one generated from the declarations.
 * @returns the new text and the names of the tables that changed
 * @throws Error naming a table whose markers are missing from `text`
 */
export function renderReadmeTables(text: string): { text: string; changed: string[] } {
  const changed: string[] = [];
  let out = text;
  for (const [name, options] of Object.entries(OPTION_TABLES)) {
    const open = `<!-- options:${name} -->`;
    const close = `<!-- /options:${name} -->`;
    const start = out.indexOf(open);
    const end = out.indexOf(close);
    if (start < 0 || end < start) throw new Error(`README.md has no ${open} ... ${close} markers`);
    const table = `${open}\n${renderOptionsTable(options).trimEnd()}\n${close}`;
    if (out.slice(start, end + close.length) !== table) changed.push(name);
    out = out.slice(0, start) + table + out.slice(end + close.length);
  }
  return { text: out, changed };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const before = readFileSync(README, 'utf8');
  const { text, changed } = renderReadmeTables(before);
  if (process.argv.includes('--check')) {
    if (changed.length > 0) {
      process.stdout.write(`README.md option tables out of date: ${changed.join(', ')} (run node dist/tools/readme-options.js)\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(README, text);
    process.stdout.write(changed.length > 0 ? `rewrote ${changed.join(', ')}\n` : 'README.md option tables already current\n');
  }
}
