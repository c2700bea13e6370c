/**
 * Lookups the iSCSI connector's detach and extend share: the SCSI devices of a volume's LUN
 * below the sessions of its targets, and the volume's multipath map. They read sysfs only.
 *
 * @module
 */
import type { HostContext } from '../../../host/context.js';
import { listSessions, sessionsFor } from '../../../host/iscsiadm.js';
import { formatHctl, scsiDevicesUnder, type Hctl } from '../../../host/scsi.js';
import { mapForDevice, mapForPath, mapForWwid, type MultipathMap } from '../../../host/multipath.js';
import type { DeviceInfo } from '../../connector.js';
import type { IscsiTarget } from './properties.js';

/**
 * Every SCSI device of the volume's LUN below sessions of `targets`, including ones the kernel
 * has not given a block device (yet): `[{ target, hctl, device? }]`, one per H:C:T:L.
 */
export async function lunScsiDevices(ctx: HostContext, targets: IscsiTarget[]): Promise<{ target: IscsiTarget; hctl: Hctl; device?: string }[]> {
  const sessions = await listSessions(ctx);
  const out: { target: IscsiTarget; hctl: Hctl; device?: string }[] = [];
  for (const t of targets) {
    for (const s of sessionsFor(sessions, t.iqn, t.portal)) {
      for (const d of await scsiDevicesUnder(ctx, s.deviceDir)) {
        if (d.hctl.lun !== t.scsiLun || out.some((o) => formatHctl(o.hctl) === formatHctl(d.hctl))) continue;
        out.push(d.device ? { target: t, hctl: d.hctl, device: d.device } : { target: t, hctl: d.hctl });
      }
    }
  }
  return out;
}

/**
 * The volume's multipath map: from the returned device (`/dev/dm-N`, `multipath_id`), else a
 * holder of one of its block devices (`['sdb', 'sdc']`); undefined when there is none.
 */
export async function volumeMap(ctx: HostContext, deviceInfo: DeviceInfo | null, devices: string[]): Promise<MultipathMap | undefined> {
  let map: MultipathMap | undefined;
  if (deviceInfo?.path && /\/dm-\d+$/.test(deviceInfo.path)) map = await mapForPath(ctx, deviceInfo.path);
  if (!map && typeof deviceInfo?.multipath_id === 'string') map = await mapForWwid(ctx, deviceInfo.multipath_id);
  for (const d of devices) {
    if (map) break;
    map = await mapForDevice(ctx, d);
  }
  return map;
}
