/**
 * The CLI's one privilege check: a command that will run host-side work as root (loop devices,
 * iSCSI logins, device removal) first makes sure it can, so that a user without root and
 * without a working root helper is told so before anything is written or exported, instead of
 * half-way through (a record left in `error`, an export left behind).
 *
 * os-brick leaves this to the deployment (its callers pass `sudo` or `privsep-helper` and the
 * first privileged command fails); Brick checks up front because its CLI writes records.
 *
 * @module
 */
import { PrivilegeError } from '../errors.js';
import type { Executor } from '../exec/executor.js';

/**
 * Make sure root work is possible: the process runs as root (`uid` 0), or `executor` has a root
 * helper and that helper runs `true` without asking for a password (e.g. `sudo -n true`). Runs
 * nothing as root when `uid` is 0. Changes nothing.
 *
 * @param executor the executor the command will use (its `rootHelper` is the prefix checked)
 * @param uid the effective user id of this process
 * @param task what needs root, as the start of a sentence, e.g. `brick volume attach sets up a loop device`
 * @param tools the programs a sudoers rule should allow, named in the hint (e.g. `losetup, blockdev, dd`)
 * @throws {@link PrivilegeError} saying plainly what is missing and that nothing was changed
 */
export async function requireRootHelper(executor: Executor, uid: number, task: string, tools: string): Promise<void> {
  if (uid === 0) return;
  if (executor.rootHelper.length === 0) {
    throw new PrivilegeError(`${task}, which needs root: run it as root or give a root helper (--root-helper "sudo -n"). Nothing was changed.`);
  }
  try {
    await executor.run(['true'], { timeoutMs: 15_000 });
  } catch {
    throw new PrivilegeError(
      `${task}, which needs root, and the root helper "${executor.rootHelper.join(' ')}" does not work without a password here: run it as root, or allow it (e.g. sudoers NOPASSWD for ${tools}). Nothing was changed.`,
    );
  }
}
