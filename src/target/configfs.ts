/**
 * configfs access for the kernel targets (LIO under `/sys/kernel/config/target`, nvmet under
 * `/sys/kernel/config/nvmet`), always through {@link hostPath} so unit tests can point the
 * helpers at a fixture tree.
 *
 * configfs rules the code follows: objects are created with `mkdir` (the kernel fills in the
 * attribute files and default groups) and removed with `rmdir` / `unlink` (never recursive
 * removal: attribute files cannot be deleted); links between objects are symlinks to the
 * absolute configfs path; attribute values are written without a trailing newline (LIO keeps
 * CHAP `userid` / `password` bytes as written, so a newline breaks every login).
 *
 * @module
 */
import { mkdir, readFile, readdir, readlink, rmdir, symlink, unlink, writeFile, lstat } from 'node:fs/promises';
import { BackendError } from '../errors.js';
import { hostPath } from '../host/context.js';

/** Operations on a configfs tree rooted at a host root. Paths are absolute host paths (`/sys/kernel/config/...`). */
export class Configfs {
  constructor(readonly hostRoot: string) {}

  /** The path under the host root. */
  p(path: string): string {
    return hostPath(this.hostRoot, path);
  }

  /** True when `path` exists (a directory, attribute or link). */
  async exists(path: string): Promise<boolean> {
    try {
      await lstat(this.p(path));
      return true;
    } catch {
      return false;
    }
  }

  /** Create the object directory `path` unless it exists (its parent must exist). @throws {@link BackendError} */
  async mkdir(path: string): Promise<void> {
    try {
      await mkdir(this.p(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw this.fail('create', path, e);
    }
  }

  /** Remove the object directory `path`; a missing one is fine. @throws {@link BackendError} */
  async rmdir(path: string): Promise<void> {
    try {
      await rmdir(this.p(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw this.fail('remove', path, e);
    }
  }

  /** Link `path` to the object at absolute configfs path `target`, unless a link is already there. @throws {@link BackendError} */
  async link(target: string, path: string): Promise<void> {
    try {
      await symlink(this.p(target), this.p(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw this.fail('link', path, e);
    }
  }

  /** Remove the link `path`; a missing one is fine. @throws {@link BackendError} */
  async unlink(path: string): Promise<void> {
    try {
      await unlink(this.p(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw this.fail('unlink', path, e);
    }
  }

  /** The absolute host path a link points to, with the host root stripped; undefined when not a link. */
  async linkTarget(path: string): Promise<string | undefined> {
    try {
      const t = await readlink(this.p(path));
      const root = this.hostRoot === '/' || this.hostRoot === '' ? '' : this.hostRoot.replace(/\/+$/, '');
      return root && t.startsWith(root + '/') ? t.slice(root.length) : t;
    } catch {
      return undefined;
    }
  }

  /**
   * Write attribute `path` with `value` exactly (no newline). `secret` keeps the value out of the error message.
   * @throws {@link BackendError} naming the attribute
   */
  async write(path: string, value: string, secret = false): Promise<void> {
    try {
      await writeFile(this.p(path), value);
    } catch (e) {
      throw this.fail(secret ? 'write (secret value)' : `write ${JSON.stringify(value)} to`, path, e);
    }
  }

  /** Attribute `path` trimmed, or undefined when it cannot be read. */
  async read(path: string): Promise<string | undefined> {
    try {
      return (await readFile(this.p(path), 'utf8')).trim();
    } catch {
      return undefined;
    }
  }

  /** Entries of directory `path` (empty when missing), sorted. */
  async list(path: string): Promise<string[]> {
    try {
      return (await readdir(this.p(path))).sort();
    } catch {
      return [];
    }
  }

  private fail(what: string, path: string, e: unknown): BackendError {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    return new BackendError(`configfs: cannot ${what} ${path}: ${code}`, { details: { path, errno: code } });
  }
}
