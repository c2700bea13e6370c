/**
 * The `ISCSI` and `ISER` connectors: attach SCSI LUNs exported over iSCSI (TCP or iSER).
 *
 * Contract and connection properties are os-brick's `ISCSIConnector` (`connectors/iscsi.py`);
 * behaviour is that of its 2017 sysfs rewrite, with these differences:
 *
 * - **Locks per target portal and IQN**, not one host-wide `connect_volume` lock: node record,
 *   login and the targeted scan of a LUN run under `iscsi-<iqn>-<portal>`; the wait for the
 *   device, the multipath map and the read test run outside it, so LUNs of the same target
 *   attach in parallel. A per-volume lock (`iscsi-<iqn>-lun-<lun>`) serialises operations on the
 *   same LUN. Both are file locks, so they hold across processes. Logout decisions take the
 *   portal lock, and a connect's scan happens under it, so a disconnect of one LUN never logs
 *   out a session another attach has just scanned a LUN on. Concurrent connects in one process
 *   share a hold of the portal lock: one record write and session lookup, then their scans back
 *   to back, each portal first taking the LUNs no other portal has picked.
 * - **No device-scan retries stand in for login retries**: a portal that refuses the login fails
 *   at once (iscsid's own `initial_login_retry_max`, set low in the record, bounds it).
 * - **Multipath returns as soon as one path works and its map exists**; logins to slower
 *   portals carry on in the background and join the map; a later connect or extend of the same
 *   volume in this process waits for them, a disconnect stops them and removes what they made.
 * - **The map is built directly when multipathd is slow to**: multipathd makes a map only after
 *   udev has finished with a path (about a second per map in the lab, several under load). When
 *   multipathd runs and the map is not there once the paths have settled, the connector loads it
 *   with device-mapper ({@link createMap}); multipathd adopts it and reloads it with its own
 *   configuration. os-brick instead waits, then forces multipathd (`multipath -a` + `multipathd
 *   add path`); that remains the fallback, and the behaviour with `directMap: false`.
 * - **CHAP secrets never appear in a process argument** (the node record file is edited
 *   directly, see `host/iscsiadm.ts`), nor in logs or errors.
 * - A connect that fails removes exactly what it created (devices it scanned in, a map made
 *   only of them, sessions it logged in that carry no other LUN, node records it created).
 * - Node records are created with `node.startup = manual` (os-brick switches them to automatic
 *   after login): a host reboot does not log in to volumes nobody re-attached.
 * - `encrypted`, `access_mode`, `volume_id` and `target_discovered` are validated and logged but
 *   change nothing here: os-brick's `encrypted` symlink (`/dev/disk/by-id/os-brick+...`) belongs
 *   to the encryptor layer above the connector, and Brick does not run os-brick's `wait_for_rw`.
 *
 * The code is split by concept: `properties.ts` (validation, lock names), `portal-queue.ts` (the
 * per-portal session phase), `multipath.ts` (map assembly), `connector.ts` (the connector), and
 * the host side's shared SCSI teardown in `host/scsi-teardown.ts`.
 *
 * @module
 */
import type { HostContext } from '../../../host/context.js';
import { resolvePath } from '../../../host/sysfs.js';
import { registerConnector } from '../../factory.js';
import { IscsiConnector } from './connector.js';

export { IscsiConnector, type IscsiConnectorTunables } from './connector.js';
export { validateIscsiProperties, portalLockName, volumeLockName, type ChapAuth, type IscsiProperties, type IscsiTarget } from './properties.js';

/** The device behind a `/dev/disk/by-*` link or `/dev/X` path (for callers that hold a link). */
export async function realDevice(ctx: HostContext, path: string): Promise<string | undefined> {
  return resolvePath(ctx, path);
}

registerConnector('ISCSI', (ctx, options) => new IscsiConnector(ctx, options));
registerConnector('ISER', (ctx, options) => new IscsiConnector(ctx, { ...options, protocol: 'ISER' }));
