/**
 * iSCSI connection properties (os-brick's keys, `connectors/iscsi.py`): validation into the
 * (portal, IQN, LUN) list a connect works through, and the lock names derived from it.
 *
 * @module
 */
import { InvalidInputError } from '../../../errors.js';
import { parsePortal, type Portal } from '../../../host/iscsiadm.js';
import { lunForAddressing } from '../../../host/scsi.js';
import type { AttachmentIdentity } from '../../../host/journal.js';
import type { ConnectionProperties } from '../../connector.js';

/** One (portal, IQN, LUN) a volume is reachable through. */
export interface IscsiTarget {
  portal: Portal;
  iqn: string;
  /** LUN as the target reports it (`target_lun`). */
  lun: number;
  /** LUN number on the Linux side after `addressing_mode` (what sysfs names in H:C:T:L). */
  scsiLun: number;
}

/** CHAP credentials (`auth_*` / `discovery_auth_*`). */
export interface ChapAuth {
  method: 'CHAP';
  username: string;
  password: string;
}

/** Validated iSCSI connection properties. */
export interface IscsiProperties {
  /** Every (portal, IQN, LUN), in the order given. */
  targets: IscsiTarget[];
  /** True when the plural keys (`target_portals`, ...) were given. */
  plural: boolean;
  auth: ChapAuth | undefined;
  discoveryAuth: ChapAuth | undefined;
  accessMode: 'rw' | 'ro';
  encrypted: boolean;
  volumeId: string | undefined;
  addressingMode: string;
  targetDiscovered: boolean;
}

const IQN_RE = /^(iqn\.\d{4}-\d{2}\.[^\s,]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}(?:[0-9A-Fa-f]{16})?)$/;

function checkIqn(v: unknown, field: string): string {
  if (typeof v !== 'string' || !IQN_RE.test(v)) throw new InvalidInputError(field, `must be an iSCSI name (iqn.YYYY-MM.domain[:id], eui.<16 hex>, naa.<hex>), got ${JSON.stringify(typeof v === 'string' ? v : typeof v)}`);
  return v;
}

function checkLun(v: unknown, field: string): number {
  if (typeof v === 'string' && /^\d+$/.test(v)) v = Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw new InvalidInputError(field, `must be an integer from 0 to 65535, got ${JSON.stringify(v)}`);
  return v;
}

function checkAuth(props: ConnectionProperties, prefix: '' | 'discovery_'): ChapAuth | undefined {
  const method = props[`${prefix}auth_method`];
  if (method === undefined || method === null || method === '' || (typeof method === 'string' && method.toLowerCase() === 'none')) return undefined;
  if (typeof method !== 'string' || method.toUpperCase() !== 'CHAP') throw new InvalidInputError(`${prefix}auth_method`, `must be "CHAP" when given, got ${JSON.stringify(typeof method === 'string' ? method : typeof method)}`);
  const username = props[`${prefix}auth_username`];
  const password = props[`${prefix}auth_password`];
  if (typeof username !== 'string' || username === '') throw new InvalidInputError(`${prefix}auth_username`, 'is required with CHAP and must be a non-empty string');
  if (/[\n\r]/.test(username)) throw new InvalidInputError(`${prefix}auth_username`, 'must not contain line breaks');
  if (typeof password !== 'string' || password === '') throw new InvalidInputError(`${prefix}auth_password`, 'is required with CHAP and must be a non-empty string');
  if (/[\n\r]/.test(password)) throw new InvalidInputError(`${prefix}auth_password`, 'must not contain line breaks');
  return { method: 'CHAP', username, password };
}

/**
 * Validate iSCSI connection properties (os-brick's keys) and resolve the (portal, IQN, LUN)
 * list. Plural keys (`target_portals`, `target_iqns`, `target_luns`) must be arrays of the
 * same length; a missing `target_iqns` / `target_luns` repeats the singular value (as os-brick's
 * `_get_all_targets`). `target_lun` defaults to 0.
 * @throws {@link InvalidInputError} naming the first bad field
 */
export function validateIscsiProperties(props: ConnectionProperties): IscsiProperties {
  if (props === null || typeof props !== 'object' || Array.isArray(props)) throw new InvalidInputError('connection_properties', 'must be an object');
  const addressingMode = props.addressing_mode === undefined || props.addressing_mode === null ? 'SAM' : props.addressing_mode;
  if (typeof addressingMode !== 'string') throw new InvalidInputError('addressing_mode', 'must be a string');
  lunForAddressing(0, addressingMode);
  const targets: IscsiTarget[] = [];
  const plural = props.target_portals !== undefined && props.target_portals !== null;
  const mk = (portal: Portal, iqn: string, lun: number): IscsiTarget => ({ portal, iqn, lun, scsiLun: lunForAddressing(lun, addressingMode) });
  if (plural) {
    const portals = props.target_portals;
    if (!Array.isArray(portals) || portals.length === 0) throw new InvalidInputError('target_portals', 'must be a non-empty array of portals');
    const iqns = props.target_iqns ?? (props.target_iqn !== undefined ? portals.map(() => props.target_iqn) : undefined);
    if (!Array.isArray(iqns)) throw new InvalidInputError('target_iqns', 'is required with target_portals (an array of IQNs of the same length)');
    if (iqns.length !== portals.length) throw new InvalidInputError('target_iqns', `must have as many entries as target_portals (${portals.length}), has ${iqns.length}`);
    const luns = props.target_luns ?? portals.map(() => props.target_lun ?? 0);
    if (!Array.isArray(luns)) throw new InvalidInputError('target_luns', 'must be an array of LUNs');
    if (luns.length !== portals.length) throw new InvalidInputError('target_luns', `must have as many entries as target_portals (${portals.length}), has ${luns.length}`);
    portals.forEach((p, i) => targets.push(mk(parsePortal(p, `target_portals[${i}]`), checkIqn(iqns[i], `target_iqns[${i}]`), checkLun(luns[i], `target_luns[${i}]`))));
    if (props.target_portal !== undefined && props.target_portal !== null) parsePortal(props.target_portal, 'target_portal');
  } else {
    if (props.target_portal === undefined || props.target_portal === null) throw new InvalidInputError('target_portal', 'is required (or target_portals)');
    const portal = parsePortal(props.target_portal, 'target_portal');
    if (props.target_iqn === undefined || props.target_iqn === null) throw new InvalidInputError('target_iqn', 'is required (or target_iqns)');
    targets.push(mk(portal, checkIqn(props.target_iqn, 'target_iqn'), checkLun(props.target_lun ?? 0, 'target_lun')));
  }
  const accessMode = props.access_mode ?? 'rw';
  if (accessMode !== 'rw' && accessMode !== 'ro') throw new InvalidInputError('access_mode', `must be "rw" or "ro", got ${JSON.stringify(accessMode)}`);
  for (const key of ['encrypted', 'target_discovered'] as const) {
    if (props[key] !== undefined && props[key] !== null && typeof props[key] !== 'boolean') throw new InvalidInputError(key, 'must be a boolean');
  }
  const volumeId = props.volume_id;
  if (volumeId !== undefined && volumeId !== null && typeof volumeId !== 'string') throw new InvalidInputError('volume_id', 'must be a string');
  return {
    targets,
    plural,
    auth: checkAuth(props, ''),
    discoveryAuth: checkAuth(props, 'discovery_'),
    accessMode,
    encrypted: props.encrypted === true,
    volumeId: typeof volumeId === 'string' ? volumeId : undefined,
    addressingMode,
    targetDiscovered: props.target_discovered === true,
  };
}

/** The portal lock of `t` (`iscsi-<iqn>-<portal>`): node record, login, logout decisions and targeted scans run under it. */
export function portalLockName(t: IscsiTarget): string {
  return `iscsi-${t.iqn}-${t.portal.text}`;
}

/** The volume lock of `p` (`iscsi-<iqn>-lun-<lun>` of the first target): serialises operations on one LUN. */
export function volumeLockName(p: IscsiProperties): string {
  const t = p.targets[0]!;
  return `iscsi-${t.iqn}-lun-${t.lun}`;
}

/** The journal name of `t`'s node record and session (`<iqn>,<portal>`, see `ResourceEntry.name` in `host/journal.ts`). */
export function targetName(t: Pick<IscsiTarget, 'iqn' | 'portal'>): string {
  return `${t.iqn},${t.portal.text}`;
}

/**
 * The attach journal identity of the volume (`host/journal.ts`): one `<iqn>,<portal>` per given
 * target and the LUN. When the targets name different LUNs (plural keys with per-portal LUNs),
 * each target string carries its own (`<iqn>,<portal>,<lun>`) and the identity has no `lun`.
 * Derived from the properties alone (no discovery), so a detach with the same properties finds
 * the entry its attach left.
 */
export function iscsiIdentity(p: IscsiProperties): AttachmentIdentity {
  const lun = p.targets[0]!.lun;
  if (p.targets.every((t) => t.lun === lun)) return { targets: p.targets.map(targetName), lun };
  return { targets: p.targets.map((t) => `${targetName(t)},${t.lun}`) };
}
