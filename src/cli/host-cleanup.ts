/**
 * `brick host cleanup [--dry-run] [--include-unowned] [--json]`: list what attaches and detaches
 * left on this host and remove Brick's part of it (issue #16; the library's `hostCleanup`, the
 * host layer's `cleanupHost`).
 *
 * Prints a table (kind, name, owned, action, reason) and a summary line, or with `--json` exactly
 * `{ "leftovers": [{ "kind", "name", "owned", "action", "reason" }], "removed": N }`. Exit status
 * 0 when no owned leftover remains; {@link LEFTOVERS_REMAIN} (10) when some do: skipped because
 * open, mounted or held, failed to go, or only listed by `--dry-run` (so a dry run doubles as a
 * check that the host is clean). Unowned leftovers do not change the status. Errors exit as
 * every command's do.
 *
 * @module
 */
import type { Command } from 'commander';
import { exitCodeFor } from '../errors.js';
import type { Backend } from '../library/backend.js';
import { printError, printRows } from './output.js';
import { requireRootHelper } from './privilege.js';
import type { GlobalFlags, Runtime } from './runtime.js';

/** Exit status of `brick host cleanup` when owned leftovers remain (listed in the top-level help). */
export const LEFTOVERS_REMAIN = 10;

/** The backends that set up; one that cannot (an array out of reach) adds no claim and stops nothing. */
async function readyBackends(rt: Runtime): Promise<Backend[]> {
  const settled = await Promise.allSettled(rt.config.backends.map((b) => rt.backend(b.volume_backend_name)));
  for (const s of settled) if (s.status === 'rejected') rt.logger.debug({ err: (s.reason as Error).message }, 'host cleanup: a backend did not set up; its exports are not counted');
  return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
}

/**
 * Add `cleanup` to the `host` command group.
 * @param host the `brick host` command
 * @param flags the global flags, read when the command runs
 * @param setExitCode sets the process's exit status
 */
export function registerHostCleanupCommand(host: Command, flags: () => GlobalFlags, setExitCode: (code: number) => void): void {
  host
    .command('cleanup')
    .description(
      'list what interrupted or failed attaches and detaches left on this host (sessions, node records, SCSI devices, multipath maps, NVMe-oF controllers, loop devices, mounts) and remove what Brick made, in the safe order; anything open, mounted or held is never touched (needs root or a working root helper). Exit 10 while owned leftovers remain',
    )
    .option('--dry-run', 'list only: change nothing')
    .option('--include-unowned', 'also remove sessions, maps and controllers that no journal or connection record accounts for')
    .action(async (o: { dryRun?: boolean; includeUnowned?: boolean }) => {
      const json = Boolean(flags().json);
      let rt: Runtime | undefined;
      try {
        // Loaded here, not at start-up: `brick --help` stays small (issue 18).
        const [{ createRuntime }, { hostCleanup }] = await Promise.all([import('./runtime.js'), import('../library/host-cleanup.js')]);
        rt = await createRuntime(flags(), process.env);
        const task = o.dryRun ? 'brick host cleanup --dry-run reads device-mapper, iSCSI and process state' : 'brick host cleanup removes leftover devices, sessions and maps from this host';
        await requireRootHelper(rt.context.executor, process.getuid?.() ?? 0, task, 'iscsiadm, multipath, dmsetup, nvme, losetup, umount, blockdev');
        const r = await hostCleanup(rt.context, { dryRun: o.dryRun, includeUnowned: o.includeUnowned, backends: await readyBackends(rt) });
        if (json) process.stdout.write(`${JSON.stringify({ leftovers: r.leftovers, removed: r.removed }, null, 2)}\n`);
        else {
          if (r.leftovers.length > 0) printRows(false, ['kind', 'name', 'owned', 'action', 'reason'], r.leftovers.map((l) => ({ ...l, owned: l.owned ? 'yes' : 'no' })));
          const unowned = r.leftovers.filter((l) => !l.owned && l.action !== 'removed').length;
          process.stdout.write(
            `${r.leftovers.length === 0 ? 'no leftovers' : `${r.leftovers.length} leftover(s)`}${r.dryRun ? ' (dry run: nothing changed)' : `, ${r.removed} removed`}; ${r.ownedRemaining} owned remain, ${unowned} unowned left alone; ${r.pruned} journal record(s) ${r.dryRun ? 'would be ' : ''}pruned\n`,
          );
        }
        if (r.ownedRemaining > 0) setExitCode(LEFTOVERS_REMAIN);
      } catch (err) {
        printError(json, err);
        setExitCode(exitCodeFor(err));
      } finally {
        await rt?.close().catch(() => undefined);
      }
    });
}
