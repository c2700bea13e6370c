/**
 * The shapes of `brick host doctor` (see `doctor.ts`) and the small readers its checks share.
 *
 * @module
 */
import type { HostContext } from './context.js';
import { listDir, readAttr } from './sysfs.js';

/**
 * How bad a failed check is: `error` when an attach would fail, `warning` when an attach would
 * work but not as it should (or only a protocol this host does not use would fail), `info` for
 * a passed check, or for a failed one nothing this host uses needs (`scsi_transport_fc` without
 * Fibre Channel).
 */
export type DoctorSeverity = 'error' | 'warning' | 'info';

/** One check of `brick host doctor`: its wire shape (`--json`) as well. */
export interface DoctorCheck {
  /** What was checked, e.g. `iscsid`, `multipath skip_kpartx`, `module nvme_tcp`, `lock_path`. */
  name: string;
  /** True when the check passed. */
  ok: boolean;
  /** `info` when it passed; otherwise how bad it is (see {@link DoctorSeverity}). */
  severity: DoctorSeverity;
  /** What was found, in a sentence. */
  message: string;
  /** How to fix it (a command or the lines of a file), or null when nothing needs fixing. */
  fix: string | null;
}

/** The doctor's verdict: `ok` is false when any check failed with severity `error`. */
export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

/**
 * True when a Unix socket bound to `path` is listening on the host: an entry in
 * `/proc/net/unix` (read under the host root) with that path (`@name` for an abstract socket, as
 * the kernel prints it) and the `__SO_ACCEPTCON` flag (0x10000). This is how a daemon started by
 * systemd's socket activation is seen before its first client. Never throws.
 */
export async function listeningUnixSocket(ctx: Pick<HostContext, 'hostRoot'>, path: string): Promise<boolean> {
  const table = await readAttr(ctx, '/proc/net/unix');
  if (!table) return false;
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[7] !== path) continue;
    if ((parseInt(f[3] ?? '0', 16) & 0x10000) !== 0) return true;
  }
  return false;
}

/**
 * True when a live process named `comm` runs: the pid in `pidFile` names it, or, without a
 * usable pid file, some `/proc/N/comm` says `comm` (host-root reads, nothing spawned; the way
 * `isMultipathdRunning` in `multipath.ts` looks for multipathd). Never throws.
 */
export async function daemonRunning(ctx: Pick<HostContext, 'hostRoot'>, comm: string, pidFile: string): Promise<boolean> {
  const pid = await readAttr(ctx, pidFile);
  if (pid && /^\d+$/.test(pid) && (await readAttr(ctx, `/proc/${pid}/comm`)) === comm) return true;
  for (const entry of await listDir(ctx, '/proc')) {
    if (/^\d+$/.test(entry) && (await readAttr(ctx, `/proc/${entry}/comm`)) === comm) return true;
  }
  return false;
}
