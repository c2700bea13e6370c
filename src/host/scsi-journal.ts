/**
 * The attach journal (`journal.ts`) for SCSI volumes, shared by the iSCSI and Fibre Channel
 * connectors: the multipath maps a scope recorded (by WWID) that exist now, and the bookkeeping
 * after a teardown (a record is removed once sysfs shows the thing gone).
 *
 * @module
 */
import type { HostContext } from './context.js';
import type { JournalScope } from './journal.js';
import { mapForWwid, type MultipathMap } from './multipath.js';
import { pathExists } from './sysfs.js';

/** The multipath maps the journal recorded for this attachment (by WWID) that exist now. */
export async function journalMaps(ctx: HostContext, scope: JournalScope): Promise<MultipathMap[]> {
  const out: MultipathMap[] = [];
  for (const r of await scope.resources()) {
    if (r.kind !== 'multipath-map') continue;
    const m = await mapForWwid(ctx, r.name);
    if (m) out.push(m);
  }
  return out;
}

/**
 * After a teardown: record as removed each SCSI device (`H:C:T:L`) in `hctls` or in the
 * scope's records that sysfs no longer shows, and each map (WWID) in `wwids` or in the scope's
 * records that no longer exists. What is still there keeps its record.
 */
export async function recordScsiRemovals(ctx: HostContext, scope: JournalScope, hctls: readonly string[], wwids: readonly string[]): Promise<void> {
  if (scope.key === '') return;
  const recs = await scope.resources();
  const devices = new Set([...hctls, ...recs.filter((r) => r.kind === 'scsi-device').map((r) => r.name)]);
  const maps = new Set([...wwids, ...recs.filter((r) => r.kind === 'multipath-map').map((r) => r.name)]);
  for (const h of devices) if (!(await pathExists(ctx, `/sys/bus/scsi/devices/${h}`))) await scope.removed('scsi-device', h);
  for (const w of maps) if (!(await mapForWwid(ctx, w))) await scope.removed('multipath-map', w);
}
