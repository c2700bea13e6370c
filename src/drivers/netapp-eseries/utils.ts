/**
 * Pure helpers of the E-Series driver: Cinder-UUID <-> E-Series label conversion, the Web
 * Services version gate, the host-type alias table, the pool-name pattern and extra-spec
 * parsing. Behaviour follows Cinder's `netapp/eseries/utils.py` and `library.py` (Rocky, the
 * last release with the driver), with the fixes noted on each function.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { InvalidConfigError, InvalidInputError } from '../../errors.js';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** The 40-zero reference the array uses for "no object" (Cinder's `NULL_REF`). */
export const NULL_REF = '0000000000000000000000000000000000000000';
/** Label of the host group used for multi-attach (Cinder's `MULTI_ATTACH_HOST_GROUP_NAME`). */
export const MULTI_ATTACH_HOST_GROUP_NAME = 'cinder-multi-attach';
/** LUN ids usable for a host or host group: 0..255, 0 being reserved by the driver. */
export const MAX_LUNS_PER_HOST = 256;
/** Images per snapshot group, groups per volume (one reserved for clones). */
export const MAX_SNAPSHOT_COUNT = 32;
export const MAX_SNAPSHOT_GROUP_COUNT = 4;
export const RESERVED_SNAPSHOT_GROUP_COUNT = 1;
/** Label suffix of the snapshot group reserved for clones. */
export const SNAPSHOT_CLONE_GROUP_SUFFIX = 'SGCV';
/** Minimum Web Services version: REST API 1.4 (`01.54.9000.1`); older proxies are refused at setup. */
export const MIN_REST_VERSION = '01.54.9000.1';
/** Minimum Web Services version with array-wide target CHAP. */
export const MIN_CHAP_VERSION = '01.53.9010.15';

function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(buffer << (5 - bits)) & 31];
  return out;
}

/**
 * The E-Series label for a Cinder UUID: its 16 bytes in RFC 4648 base32 without padding
 * (26 upper-case characters), as Cinder's `convert_uuid_to_es_fmt`.
 * @throws {@link InvalidInputError} (field `field`) when `uuid` is not a UUID
 */
export function uuidToLabel(uuid: string, field = 'volume.id'): string {
  if (typeof uuid !== 'string' || !UUID_RE.test(uuid)) throw new InvalidInputError(field, `${JSON.stringify(uuid)} is not a UUID`);
  return base32(Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

/**
 * The UUID a label encodes (an optional `tmp-` prefix is ignored), or undefined when the
 * label is not one the driver made. Cinder's `convert_es_fmt_to_uuid`.
 */
export function labelToUuid(label: string): string | undefined {
  const l = label.startsWith('tmp-') ? label.slice(4) : label;
  if (!/^[A-Z2-7]{26}$/.test(l)) return undefined;
  let buffer = 0;
  let bits = 0;
  const bytes: number[] = [];
  for (const c of l) {
    buffer = ((buffer << 5) | B32.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((buffer >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  const hex = Buffer.from(bytes.slice(0, 16)).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A fresh random label (26 characters), for hosts, host ports, snapshot groups and views. */
export function randomLabel(): string {
  return uuidToLabel(randomUUID());
}

/**
 * Parse a Web Services version `AA.BB.CCCC.DDDD` into a comparable tuple `[A, B, 10000-C, D]`:
 * a smaller third part is newer (9000 release, 9010 pre-release, 9090 integration build).
 * Returns undefined for text that is not such a version.
 */
export function parseWsVersion(version: string): number[] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(String(version).trim());
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), 10000 - Number(m[3]), Number(m[4])];
}

/** True when version `v` is at least `min` (both `AA.BB.CCCC.DDDD`); false when `v` does not parse. */
export function wsVersionAtLeast(v: string, min: string): boolean {
  const a = parseWsVersion(v);
  const b = parseWsVersion(min)!;
  if (!a) return false;
  for (let i = 0; i < 4; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return true;
}

/** Cinder's `netapp_host_type` aliases -> array host-type codes. Unknown keys pass through. */
export const HOST_TYPE_ALIASES: Readonly<Record<string, string>> = {
  factoryDefault: 'FactoryDefault',
  linux_atto: 'LnxTPGSALUA',
  linux_dm_mp: 'LnxALUA',
  linux_mpp_rdac: 'LNX',
  linux_pathmanager: 'LnxTPGSALUA_PM',
  linux_sf: 'LnxTPGSALUA_SF',
  ontap: 'ONTAP_ALUA',
  ontap_rdac: 'ONTAP_RDAC',
  vmware: 'VmwTPGSALUA',
  windows: 'W2KNETNCL',
  windows_atto: 'WinTPGSALUA',
  windows_clustered: 'W2KNETCL',
};

/**
 * Compile `netapp_pool_name_search_pattern`: a comma-separated list of regular expressions,
 * each trimmed of `^`, `$`, spaces and tabs, anchored, and ORed.
 * @throws {@link InvalidConfigError} (field `field`) for an empty list or an invalid expression
 */
export function compilePoolPattern(pattern: string, field = 'netapp_pool_name_search_pattern'): RegExp {
  const parts = pattern
    .split(',')
    .map((p) => p.replace(/^[\s^]+|[\s$]+$/g, ''))
    .filter((p) => p !== '');
  if (parts.length === 0) throw new InvalidConfigError(`invalid ${field}: no pattern given`, { field });
  try {
    return new RegExp(parts.map((p) => `^(?:${p})$`).join('|'));
  } catch (err) {
    throw new InvalidConfigError(`invalid ${field}: ${(err as Error).message}`, { field });
  }
}

/**
 * An extra-spec boolean: true / y / yes / enabled / 1 -> true, anything else false, absent ->
 * null (the array default), as Cinder's `_get_boolean_spec`.
 */
export function specBool(value: unknown): boolean | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean') return value;
  return ['true', 'y', 'yes', 'enabled', '1'].includes(String(value).trim().toLowerCase());
}

/** Compare two numeric strings (sequence numbers, timestamps) as numbers, not as text (upstream sorted them as text). */
export function compareNumeric(a: string | number, b: string | number): number {
  const x = BigInt(String(a));
  const y = BigInt(String(b));
  return x < y ? -1 : x > y ? 1 : 0;
}

/** An initiator IQN normalised for comparison: lower case, `:` removed (as upstream compares host ports). */
export function normaliseIqn(iqn: string): string {
  return iqn.toLowerCase().replace(/:/g, '');
}
