/**
 * The array's iSCSI side as a host sees it: the configured portals (from the hardware
 * inventory, the owning controller's first), the array-wide target CHAP and the connection
 * properties built from them. Cinder's `NetAppESeriesLibrary.initialize_connection_iscsi`,
 * `_get_iscsi_portal_for_vol` and `_get_iscsi_service_details`, listing every portal
 * (`target_portals`, `target_iqns`, `target_luns`) so the host can use multipath without a
 * discovery, and keeping the CHAP secret stable instead of generating one per attach.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BackendError } from '../../errors.js';
import type { EseriesArray } from './array.js';
import type { EsPortal, EsVolume } from './types.js';

/** An iSCSI port as `hardware-inventory` reports it (the fields used here). */
interface InventoryPort {
  controllerId: string;
  iqn?: string;
  tcpListenPort?: number;
  ipv4Enabled?: boolean;
  ipv4Data?: { ipv4AddressData?: { ipv4Address?: string; configState?: string } };
}

/**
 * The configured IPv4 iSCSI portals of the array, those of `vol`'s owning controller first.
 * @throws {@link BackendError} when the array reports none
 */
export async function targetPortals(array: EseriesArray, vol: EsVolume): Promise<EsPortal[]> {
  const inv = await array.client.get<{ iscsiPorts?: InventoryPort[] }>('/hardware-inventory');
  const good: EsPortal[] = [];
  for (const p of inv.iscsiPorts ?? []) {
    const addr = p.ipv4Data?.ipv4AddressData;
    if (!p.ipv4Enabled || !p.iqn || !addr?.ipv4Address || addr.configState !== 'configured') continue;
    good.push({ ip: addr.ipv4Address, port: p.tcpListenPort ?? 3260, iqn: p.iqn, controller: p.controllerId });
  }
  if (good.length === 0) throw new BackendError('the array reports no configured iSCSI portal (hardware-inventory iscsiPorts)');
  const owner = good.filter((p) => p.controller === vol.currentManager);
  return [...owner, ...good.filter((p) => p.controller !== vol.currentManager)];
}

/**
 * The target CHAP secret: `chap_password` when configured, else one generated once per array
 * (32 hex digits) and kept in the driver's state directory (mode 0600).
 */
export function chapSecret(array: EseriesArray): string {
  if (array.config.chapPassword) return array.config.chapPassword;
  const { stateDir } = array.ctx;
  const file = join(stateDir, `eseries-${(array.client.systemId ?? 'system').replace(/[^\w.-]/g, '_')}-chap`);
  try {
    const s = readFileSync(file, 'utf8').trim();
    if (s.length >= 12) return s;
  } catch {
    /* not generated yet */
  }
  const secret = randomBytes(16).toString('hex');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}

/** `ip:port`, with brackets around an IPv6 address. */
function portalAddress(p: EsPortal): string {
  return p.ip.includes(':') ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`;
}

/**
 * os-brick's iSCSI connection properties for `lun` on `portals` (the first is the primary):
 * `target_discovered`, `target_portal`, `target_iqn`, `target_lun`, the plural multipath keys
 * and `volume_id`.
 */
export function iscsiProperties(portals: EsPortal[], lun: number, volumeId: string): Record<string, unknown> {
  return {
    target_discovered: false,
    target_portal: portalAddress(portals[0]!),
    target_iqn: portals[0]!.iqn,
    target_lun: lun,
    target_portals: portals.map(portalAddress),
    target_iqns: portals.map((p) => p.iqn),
    target_luns: portals.map(() => lun),
    volume_id: volumeId,
  };
}

/**
 * Enable the array-wide target CHAP on `targetIqn` with a stable secret (see {@link chapSecret}).
 * @returns the `auth_*` and `discovery_auth_*` connection properties
 */
export async function enableTargetChap(array: EseriesArray, targetIqn: string): Promise<Record<string, unknown>> {
  const secret = chapSecret(array);
  const username = array.config.chapUsername;
  await array.client.post('/iscsi/target-settings/', {
    iqn: targetIqn,
    enableChapAuthentication: true,
    alias: username,
    authMethod: 'chap',
    chapSecret: secret,
  });
  return {
    auth_method: 'CHAP',
    auth_username: username,
    auth_password: secret,
    discovery_auth_method: 'CHAP',
    discovery_auth_username: username,
    discovery_auth_password: secret,
  };
}
