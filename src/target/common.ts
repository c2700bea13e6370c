/**
 * Pieces shared by the target helpers: Cinder's `provider_location` / `provider_auth` formats,
 * CHAP credential generation, iSCSI connection properties, and the small on-disk record of
 * which hosts each export is mapped to (so that `ensure_export` after a target reboot can
 * recreate the ACLs, the role of `cinder-rtstool save/restore` and tgt's `volumes_dir`).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidInputError, InvalidStateError } from '../errors.js';
import type { DriverVolume } from '../drivers/driver.js';
import type { ConnectorProperties } from '../initiator/properties.js';
import { portalString, type TargetConfig } from './config.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A random string of `length` characters from [A-Za-z0-9], drawn from `crypto.randomBytes`
 * without modulo bias (Cinder's `volume_utils.generate_password` / `generate_username`).
 */
export function randomAlnum(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 248 && out.length < length) out += ALNUM[b % 62];
    }
  }
  return out;
}

/** CHAP credentials of one export. */
export interface ChapCredentials {
  username: string;
  password: string;
}

/**
 * Whether a CHAP name starts with what the Linux LIO target reads as an encoding prefix: `0x`/`0X`
 * (hex) or `0b`/`0B` (base64). LIO parses the initiator's `CHAP_N` with the same
 * `extract_param()` as the binary keys (drivers/target/iscsi/iscsi_target_nego.c): a hex-marked
 * name is refused outright, a base64-marked one loses its first two characters and then no longer
 * matches the ACL's `auth/userid` (`chap_server_compute_hash()` in iscsi_target_auth.c). Either
 * way every login to that ACL fails with an authorization error (iscsiadm status 24). RFC 3720
 * 11.1.4 makes N a plain text string. Shown against Debian 12's 6.1 kernel by the lab test
 * `test/lab/lvm.test.ts` (names starting `0x` and `0b` refused, an `x0` control accepted).
 */
export function hasChapEncodingPrefix(name: string): boolean {
  return /^0[xXbB]/.test(name);
}

/**
 * New per-volume CHAP credentials: a 20-character user name and a 16-character secret (Cinder's
 * lengths; 16 is the most initiators accept), alphanumerics from `draw` (default
 * {@link randomAlnum}; tests inject their own). A user name with an encoding prefix
 * ({@link hasChapEncodingPrefix}: about 1 in 961 draws) is drawn again: LIO would refuse every
 * login with it. Cinder's `generate_username` does not exclude them. The secret needs no such
 * care: open-iscsi (`acl_set_passwd`) and LIO (`auth/password`) both use its bytes as written.
 */
export function generateChap(draw: (length: number) => string = randomAlnum): ChapCredentials {
  let username = draw(20);
  while (hasChapEncodingPrefix(username)) username = draw(20);
  return { username, password: draw(16) };
}

/**
 * Parse Cinder's `provider_auth` (`<method> <username> <secret>`).
 * @throws {@link InvalidInputError} (field `provider_auth`) for another shape (the value itself is never shown)
 */
export function parseProviderAuth(auth: string | null | undefined): ChapCredentials | undefined {
  if (!auth) return undefined;
  const parts = auth.trim().split(/\s+/);
  if (parts.length !== 3 || parts[0] !== 'CHAP') throw new InvalidInputError('provider_auth', 'must be "CHAP <username> <password>"');
  return { username: parts[1]!, password: parts[2]! };
}

/** Cinder's `provider_auth` for CHAP credentials. */
export function formatProviderAuth(chap: ChapCredentials): string {
  return `CHAP ${chap.username} ${chap.password}`;
}

/** An iSCSI export as Cinder's `provider_location` records it. */
export interface IscsiLocation {
  /** `ip:port` of each portal, primary first. */
  portals: string[];
  /** Target number (`tid` for tgt, TPG tag for LIO). */
  tid: number;
  iqn: string;
  lun: number;
}

/** Cinder's iSCSI `provider_location`: `ip:port[;ip2:port],<tid> <iqn> <lun>` (`ISCSITarget._iscsi_location`). */
export function formatIscsiLocation(loc: IscsiLocation): string {
  return `${loc.portals.join(';')},${loc.tid} ${loc.iqn} ${loc.lun}`;
}

/**
 * Parse an iSCSI `provider_location` (the inverse of {@link formatIscsiLocation}; a missing LUN is 0, as in Cinder).
 * @throws {@link InvalidInputError} (field `provider_location`) for another shape
 */
export function parseIscsiLocation(location: string): IscsiLocation {
  const parts = location.trim().split(/\s+/);
  if (parts.length < 2 || !parts[0]) throw new InvalidInputError('provider_location', `${JSON.stringify(location)} is not "<portals>,<tid> <iqn> <lun>"`);
  const [portalPart, tidPart] = parts[0].split(',');
  const portals = (portalPart ?? '').split(';').filter(Boolean);
  if (portals.length === 0) throw new InvalidInputError('provider_location', `${JSON.stringify(location)} names no portal`);
  const lun = parts[2] !== undefined && /^\d+$/.test(parts[2]) ? Number(parts[2]) : 0;
  const tid = tidPart !== undefined && /^-?\d+$/.test(tidPart) ? Number(tidPart) : 0;
  return { portals, tid, iqn: parts[1]!, lun };
}

/** The portals of the configuration, primary first, as `ip:port`. */
export function configuredPortals(cfg: TargetConfig): string[] {
  return [cfg.ipAddress, ...cfg.secondaryIpAddresses].map((a) => portalString(a, cfg.port));
}

/** The location of `volume`'s export, or an error saying it has none. @throws {@link InvalidStateError} */
export function requireLocation(volume: DriverVolume): string {
  if (!volume.provider_location) throw new InvalidStateError(`volume ${volume.id} is not exported (no provider_location): create the export first`, { field: 'provider_location' });
  return volume.provider_location;
}

/**
 * Cinder's iSCSI connection properties (`ISCSITarget._get_iscsi_properties`): singular keys
 * always, plural `target_portals`/`target_iqns`/`target_luns` when there are several portals
 * or the connector asks for multipath; CHAP keys when `provider_auth` is set.
 */
export function iscsiConnectionData(volume: DriverVolume, connector: ConnectorProperties, discard: boolean): Record<string, unknown> {
  const loc = parseIscsiLocation(requireLocation(volume));
  const data: Record<string, unknown> = { target_discovered: false };
  if (loc.portals.length > 1 || connector.multipath === true) {
    data.target_portals = [...loc.portals];
    data.target_iqns = loc.portals.map(() => loc.iqn);
    data.target_luns = loc.portals.map(() => loc.lun);
  }
  data.target_portal = loc.portals[0];
  data.target_iqn = loc.iqn;
  data.target_lun = loc.lun;
  data.volume_id = volume.id;
  const chap = parseProviderAuth(volume.provider_auth);
  if (chap) {
    data.auth_method = 'CHAP';
    data.auth_username = chap.username;
    data.auth_password = chap.password;
  }
  data.encrypted = false;
  data.discard = discard;
  return data;
}

/** @throws {@link InvalidInputError} (field `connector.initiator`) when the connector has no usable IQN */
export function requireInitiator(connector: ConnectorProperties): string {
  const i = connector.initiator;
  if (typeof i !== 'string' || !/^(iqn\.|eui\.|naa\.)\S+$/.test(i)) throw new InvalidInputError('connector.initiator', 'the iSCSI initiator name (IQN) is required');
  return i;
}

/** @throws {@link InvalidInputError} (field `connector.nqn`) when the connector has no usable host NQN */
export function requireHostNqn(connector: ConnectorProperties): string {
  const n = connector.nqn;
  if (typeof n !== 'string' || !/^nqn\.\S+$/.test(n) || n.includes('/')) throw new InvalidInputError('connector.nqn', 'the NVMe host NQN is required');
  return n;
}

/**
 * The hosts each export is mapped to, one JSON file per volume under
 * `<stateDir>/<helper>/<volume name>.json` (mode 0600, written atomically). It is what
 * `ensure_export` replays after the target forgot its configuration.
 */
export class MappingStore {
  private readonly dir: string;

  constructor(stateDir: string, helper: string) {
    this.dir = join(stateDir, helper);
  }

  private file(volume: DriverVolume): string {
    return join(this.dir, `${volume.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
  }

  /** The hosts (initiator IQNs or host NQNs) recorded for `volume`. */
  async hosts(volume: DriverVolume): Promise<string[]> {
    try {
      const parsed = JSON.parse(await readFile(this.file(volume), 'utf8')) as { hosts?: unknown };
      return Array.isArray(parsed.hosts) ? parsed.hosts.filter((h): h is string => typeof h === 'string') : [];
    } catch {
      return [];
    }
  }

  /** Replace the recorded hosts of `volume` (an empty list removes the file). */
  async setHosts(volume: DriverVolume, hosts: string[]): Promise<void> {
    const f = this.file(volume);
    if (hosts.length === 0) {
      await rm(f, { force: true });
      return;
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${f}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ hosts: [...new Set(hosts)].sort() }), { mode: 0o600 });
    await rename(tmp, f);
  }

  /** Record one more host. */
  async add(volume: DriverVolume, host: string): Promise<void> {
    const hs = await this.hosts(volume);
    if (!hs.includes(host)) await this.setHosts(volume, [...hs, host]);
  }

  /** Forget one host (or all when `host` is null). */
  async remove(volume: DriverVolume, host: string | null): Promise<void> {
    if (host === null) return this.setHosts(volume, []);
    const hs = await this.hosts(volume);
    if (hs.includes(host)) await this.setHosts(volume, hs.filter((h) => h !== host));
  }
}
