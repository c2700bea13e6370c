/**
 * Fixture trees for unit tests of code that reads the host through a {@link HostContext}: a
 * scratch directory that plays the host root (`/sys`, `/dev`, `/etc`, `/run` under it), built
 * from a plain description or copied from a directory of files captured on a real kernel.
 *
 * Brick's own connector tests use trees copied from the lab's kernel (`test/fixtures/`); this
 * module gives users of `brick/testing` the same means for their own connectors and drivers.
 *
 * @module
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { InvalidInputError } from '../errors.js';
import type { Executor } from '../exec/executor.js';
import { RecordingExecutor } from '../exec/recording.js';
import { createHostContext, type HostContext } from '../host/context.js';
import { LockManager } from '../host/lock.js';

/**
 * What one path of a fixture tree holds: a string is a file's content (sysfs attributes end in
 * a newline, as the kernel writes them), `{ link }` a symbolic link to that target (relative or
 * absolute, as in sysfs), `{ dir: true }` an empty directory.
 */
export type FixtureEntry = string | { link: string } | { dir: true };

/** A fixture tree: a scratch host root, and the means to change it as the kernel would. */
export interface FixtureTree {
  /** The absolute path that plays `/` (pass it as `hostRoot`). */
  readonly root: string;
  /** Add or replace entries (paths are host paths: `/sys/class/...`). */
  write(entries: Readonly<Record<string, FixtureEntry>>): void;
  /** Remove a host path and everything under it, as the kernel removes a device. */
  remove(hostPathName: string): void;
  /** Delete the whole tree. */
  cleanup(): void;
}

function place(root: string, hostPathName: string, entry: FixtureEntry): void {
  if (!hostPathName.startsWith('/') || hostPathName.split('/').includes('..')) {
    throw new InvalidInputError('path', `fixture paths are absolute host paths without "..", got ${JSON.stringify(hostPathName)}`);
  }
  const p = join(root, hostPathName);
  rmSync(p, { recursive: true, force: true });
  if (typeof entry === 'string') {
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, entry);
  } else if ('link' in entry) {
    mkdirSync(dirname(p), { recursive: true });
    symlinkSync(entry.link, p);
  } else {
    mkdirSync(p, { recursive: true });
  }
}

/**
 * A new fixture tree in a scratch directory.
 * @param entries host paths and what they hold, e.g.
 *   `{ '/sys/class/scsi_host/host2/proc_name': 'iscsi_tcp\n', '/dev/disk/by-id/wwn-0x5': { link: '../../sdb' } }`
 * @param options.copyFrom a directory of captured files to start from (copied with its symlinks
 *   as they are; `.gitkeep` files, which stand for empty directories in git, are left out)
 * @throws {@link InvalidInputError} (field `path`) for a path that is not absolute or holds `..`
 */
export function createFixtureTree(entries: Readonly<Record<string, FixtureEntry>> = {}, options: { copyFrom?: string } = {}): FixtureTree {
  const base = mkdtempSync(join(tmpdir(), 'brick-fixture-'));
  const root = join(base, 'root');
  if (options.copyFrom) {
    cpSync(options.copyFrom, root, { recursive: true, verbatimSymlinks: true });
    for (const f of readdirSync(root, { recursive: true, encoding: 'utf8' })) if (basename(f) === '.gitkeep') rmSync(join(root, f), { force: true });
  } else {
    mkdirSync(root);
  }
  const tree: FixtureTree = {
    root,
    write: (more) => {
      for (const [p, e] of Object.entries(more)) place(root, p, e);
    },
    remove: (hostPathName) => rmSync(join(root, hostPathName), { recursive: true, force: true }),
    cleanup: () => rmSync(base, { recursive: true, force: true }),
  };
  tree.write(entries);
  return tree;
}

/**
 * A {@link HostContext} over a fixture root: a {@link RecordingExecutor} (or the executor
 * given), and a private lock directory, so tests never touch the real host.
 * @param root the host root, usually {@link FixtureTree.root}
 */
export function fixtureContext<E extends Executor = RecordingExecutor>(root: string, executor?: E): { ctx: HostContext; executor: E } {
  const ex = executor ?? (new RecordingExecutor() as unknown as E);
  const locks = new LockManager(mkdtempSync(join(tmpdir(), 'brick-locks-')), 3_000);
  return { ctx: createHostContext({ executor: ex, hostRoot: root, locks }), executor: ex };
}
