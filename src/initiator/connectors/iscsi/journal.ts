/**
 * The iSCSI connector's side of the host attach journal (`host/journal.ts`): what an earlier,
 * interrupted attach of the volume recorded (node records and sessions on portals the caller no
 * longer names, the multipath map by WWID), and the bookkeeping after a teardown (a record is
 * removed once sysfs shows the thing gone).
 *
 * @module
 */
import type { HostContext } from '../../../host/context.js';
import { parsePortal } from '../../../host/iscsiadm.js';
import type { JournalScope } from '../../../host/journal.js';
import { mapForWwid, type MultipathMap } from '../../../host/multipath.js';
import { pathExists } from '../../../host/sysfs.js';
import type { IscsiTarget } from './properties.js';

/**
 * The targets (`<iqn>,<portal>`) of the node records and sessions the journal holds for this
 * attachment that are not in `known`, with the LUN of `template`: a detach releases them too
 * (an attach through sendtargets discovery may have logged in to portals the properties do not
 * name). Records whose name does not parse are skipped.
 */
export async function journalTargets(scope: JournalScope, template: IscsiTarget, known: readonly IscsiTarget[]): Promise<IscsiTarget[]> {
  const out: IscsiTarget[] = [];
  for (const r of await scope.resources()) {
    if (r.kind !== 'iscsi-node' && r.kind !== 'iscsi-session') continue;
    const comma = r.name.indexOf(',');
    if (comma < 0) continue;
    const iqn = r.name.slice(0, comma);
    let portal;
    try {
      portal = parsePortal(r.name.slice(comma + 1));
    } catch {
      continue;
    }
    const same = (t: IscsiTarget): boolean => t.iqn === iqn && t.portal.text === portal.text;
    if (known.some(same) || out.some(same)) continue;
    out.push({ ...template, iqn, portal });
  }
  return out;
}

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
