/**
 * The volume condition of an NVMe-oF attachment ({@link nvmeofVolumeCondition}): one expected
 * path per portal of the connection properties, in the state of the subsystem's controller on it
 * (`/sys/class/nvme/nvmeX/state`: `live`; `connecting` / `resetting` while the kernel reconnects;
 * `deleting` on the way out; no controller: `missing`). With native NVMe multipath the paths are
 * the namespace's path entries (`nvme1c1n1`) below the head the volume was attached at
 * (`nvme1n1`); with dm-multipath, the namespace devices in the map, whose `A`/`F` state the
 * shared base (`host/condition.ts`) reads with the read test.
 *
 * @module
 */
import { basename } from 'node:path';
import type { HostContext } from '../../host/context.js';
import { blockVolumeCondition, kernelPathState, worsePathState, type ExpectedPath, type VolumeCondition } from '../../host/condition.js';
import { controllerMatches, listNvmeControllers, namespaceHeadName, type NvmePortal } from '../../host/nvme.js';
import { listDir, resolvePath } from '../../host/sysfs.js';
import type { DeviceInfo } from '../connector.js';

/**
 * The condition of the NVMe-oF volume of subsystem `nqn` attached at `deviceInfo.path` over
 * `portals`: see `Connector.checkVolumeCondition`. Without `multipath` only the portal whose
 * controller carries the device is looked at. Never throws.
 */
export async function nvmeofVolumeCondition(ctx: HostContext, nqn: string, portals: readonly NvmePortal[], deviceInfo: DeviceInfo, multipath: boolean): Promise<VolumeCondition> {
  const real = basename((await resolvePath(ctx, deviceInfo.path)) ?? deviceInfo.path);
  const slaves = /^dm-\d+$/.test(real) ? await listDir(ctx, `/sys/block/${real}/slaves`) : [];
  const controllers = await listNvmeControllers(ctx);
  const carries = (entries: readonly string[]): string | undefined => entries.find((e) => (slaves.length > 0 ? slaves.includes(e) : e === real || namespaceHeadName(e) === real));
  const expected: ExpectedPath[] = [];
  for (const p of portals) {
    const portal = `${p.address}:${p.port}`;
    const c = controllers.find((x) => controllerMatches(x, nqn, p));
    if (!c) {
      if (multipath) expected.push({ portal, state: 'missing', detail: 'no controller' });
      continue;
    }
    const entry = carries(c.paths);
    if (!multipath && !entry) continue;
    const state = kernelPathState(c.state);
    const detail = state === 'active' ? {} : { detail: `controller ${c.name} ${c.state}` };
    if (slaves.length > 0) {
      // dm-multipath: the base reads the map; the controller's state joins the path's.
      if (entry) expected.push({ portal, device: entry, ...(state === 'active' ? {} : { state }), ...detail });
      else expected.push({ portal, name: c.name, state: worsePathState(state, 'missing'), detail: `controller ${c.name} ${c.state}, no namespace device in the map` });
    } else if (entry) {
      expected.push({ portal, name: entry, state, ...detail });
    } else {
      expected.push({ portal, name: c.name, state: worsePathState(state, 'missing'), detail: `controller ${c.name} ${c.state}, no path of ${real}` });
    }
  }
  return blockVolumeCondition(ctx, deviceInfo.path, { expected });
}
