/**
 * The volume condition of an iSCSI attachment ({@link iscsiVolumeCondition}): the shared base
 * (`host/condition.ts`: device, dm-multipath paths and their `A`/`F` state, SCSI device states,
 * read test) with what only iSCSI knows: one expected path per portal of the connection
 * properties, the state of each portal's session (`/sys/class/iscsi_session/sessionN/state`:
 * `LOGGED_IN`, or `FAILED` / `FREE` while the connection is lost) and the LUN's disk below it.
 *
 * @module
 */
import type { HostContext } from '../../../host/context.js';
import { blockVolumeCondition, kernelPathState, type ExpectedPath, type VolumeCondition } from '../../../host/condition.js';
import { listSessions, sessionsFor } from '../../../host/iscsiadm.js';
import { scsiDevicesUnder } from '../../../host/scsi.js';
import type { DeviceInfo } from '../../connector.js';
import type { IscsiTarget } from './properties.js';

/**
 * What the host has for each of `targets` (portal, IQN, LUN): no session → `missing`; a session
 * that is not `LOGGED_IN` → `failed` (`session FAILED`); a session without the LUN's disk →
 * `missing` (`no device for LUN n`); else the disk, whose own state the base reads. Never throws.
 */
export async function expectedIscsiPaths(ctx: HostContext, targets: readonly IscsiTarget[]): Promise<ExpectedPath[]> {
  const sessions = await listSessions(ctx);
  const out: ExpectedPath[] = [];
  for (const t of targets) {
    const portal = t.portal.text;
    const found = sessionsFor(sessions, t.iqn, t.portal);
    if (found.length === 0) {
      out.push({ portal, state: 'missing', detail: 'no session' });
      continue;
    }
    // Several sessions to one portal can exist (os-brick bug 2116553): prefer one logged in.
    const s = found.find((x) => x.state === 'LOGGED_IN') ?? found[0]!;
    const sessionState = s.state === undefined ? 'active' : kernelPathState(s.state);
    const bad = sessionState === 'active' ? {} : { state: sessionState, detail: `session ${s.state}` };
    const disk = (await scsiDevicesUnder(ctx, s.deviceDir)).find((d) => d.hctl.lun === t.scsiLun && d.device);
    if (disk?.device) out.push({ portal, device: disk.device, ...bad });
    else out.push({ portal, state: 'missing', detail: [bad.detail, `no device for LUN ${t.lun}`].filter(Boolean).join(', ') });
  }
  return out;
}

/**
 * The condition of the iSCSI volume attached at `deviceInfo.path` over `targets` (the portals of
 * the properties, or the discovered ones): see `Connector.checkVolumeCondition`. With
 * `multipath` false only the portal whose disk is the attached device is looked at. Never throws.
 */
export async function iscsiVolumeCondition(ctx: HostContext, deviceInfo: DeviceInfo, targets: readonly IscsiTarget[], multipath: boolean): Promise<VolumeCondition> {
  return blockVolumeCondition(ctx, deviceInfo.path, { expected: await expectedIscsiPaths(ctx, targets), singlePath: !multipath });
}
