/**
 * The iSCSI connector's side of the host attach journal (`host/journal.ts`): the node records
 * and sessions an earlier, interrupted attach of the volume recorded on portals the caller does
 * not name. Maps and SCSI devices: `host/scsi-journal.ts`.
 *
 * @module
 */
import { parsePortal } from '../../../host/iscsiadm.js';
import type { JournalScope } from '../../../host/journal.js';
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
