/**
 * krbd mappings as the kernel shows them: `/sys/bus/rbd/devices/<id>/{pool,name,current_snap}`
 * (the rbd sysfs ABI, Documentation/ABI/testing/sysfs-bus-rbd). Read by the RBD connector (to
 * find the device an `rbd map` made) and by `host cleanup` (to judge its journal records).
 *
 * @module
 */
import type { HostContext } from './context.js';
import { listDir, readAttr } from './sysfs.js';

/** One krbd mapping as sysfs shows it. */
export interface RbdMapping {
  /** Device id: the `N` of `/dev/rbdN`. */
  id: string;
  pool: string;
  image: string;
  /** The mapped snapshot, `-` for the image itself. */
  snap: string;
  /** `/dev/rbdN`. */
  device: string;
}

/** The kernel's krbd mappings (`/sys/bus/rbd/devices/*`), by device id. Never throws: none when sysfs shows none. */
export async function listRbdMappings(ctx: Pick<HostContext, 'hostRoot'>): Promise<RbdMapping[]> {
  const base = '/sys/bus/rbd/devices';
  const ids = (await listDir(ctx, base)).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(a) - Number(b));
  const out: RbdMapping[] = [];
  for (const id of ids) {
    const rd = async (f: string) => (await readAttr(ctx, `${base}/${id}/${f}`)) ?? '';
    const [pool, image, snap] = await Promise.all([rd('pool'), rd('name'), rd('current_snap')]);
    out.push({ id, pool, image, snap: snap || '-', device: `/dev/rbd${id}` });
  }
  return out;
}
