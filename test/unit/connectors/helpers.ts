/**
 * Shared test helpers for the connector unit tests: fixture trees copied to a scratch
 * directory (so a fake kernel can change them), and host contexts over them.
 */
import { cpSync, mkdtempSync, rmSync, existsSync, renameSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHostContext, type HostContext } from '../../../src/host/context.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import type { Executor } from '../../../src/exec/executor.js';
import { LockManager } from '../../../src/host/lock.js';

/** The source tree's test/fixtures directory (tests run from dist/test/unit/connectors). */
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'test', 'fixtures');

/** A scratch copy of fixture tree `test/fixtures/<rel>`; `cleanup()` removes it. */
export function fixtureCopy(rel: string): { root: string; stash: string; cleanup(): void } {
  const base = mkdtempSync(join(tmpdir(), 'brick-fx-'));
  const root = join(base, 'root');
  const stash = join(base, 'stash');
  cpSync(join(FIXTURES, rel), root, { recursive: true, verbatimSymlinks: true });
  // Git keeps no empty directories, yet sysfs trees are full of them (holders/, slaves/): the
  // fixtures mark them with .gitkeep files, which must not appear in the tree a test sees.
  for (const f of readdirSync(root, { recursive: true, encoding: 'utf8' })) if (basename(f) === '.gitkeep') rmSync(join(root, f), { force: true }); // reached twice through symlinked dirs
  mkdirSync(stash);
  return { root, stash, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

/** Move `rel` (a path inside `root`) into the stash, as if the kernel had not created it yet. */
export function hide(root: string, stash: string, rel: string): void {
  const from = join(root, rel);
  if (!existsSync(from)) return;
  const to = join(stash, rel);
  mkdirSync(dirname(to), { recursive: true });
  renameSync(from, to);
}

/** Move `rel` back from the stash into `root` (the kernel creates it). */
export function reveal(root: string, stash: string, rel: string): void {
  const from = join(stash, rel);
  if (!existsSync(from)) return;
  const to = join(root, rel);
  mkdirSync(dirname(to), { recursive: true });
  renameSync(from, to);
}

/** A host context over fixture root `root` with a recording executor and a private lock dir. */
export function fixtureContext<E extends Executor = RecordingExecutor>(root: string, ex: E = new RecordingExecutor() as unknown as E): { ctx: HostContext; ex: E } {
  const locks = new LockManager(mkdtempSync(join(tmpdir(), "brick-locks-")), 3_000);
  return { ctx: createHostContext({ executor: ex, hostRoot: root, locks }), ex };
}

/** {@link fixtureContext} under its former name and field, for the FC fake kernel (fc-kernel.ts) until it moves to `ctx`. */
export function fixtureHost<E extends Executor = RecordingExecutor>(root: string, ex: E = new RecordingExecutor() as unknown as E): { host: HostContext; ex: E } {
  const { ctx } = fixtureContext(root, ex);
  return { host: ctx, ex };
}
