/**
 * Target-helper configuration: Cinder's target options, read from a backend's configuration
 * and validated before anything runs.
 *
 * Keys and defaults follow Cinder (`cinder/volume/driver.py` `volume_opts` and
 * `cinder/volume/targets/*`): `target_helper` (`lioadm`, `tgtadm`, `nvmet`), `target_protocol`
 * (`iscsi`, `nvmet_tcp`), `target_prefix`, `target_ip_address`, `target_secondary_ip_addresses`
 * (older name `iscsi_secondary_ip_addresses` accepted), `target_port`, `nvmet_port_id`,
 * `nvmet_ns_id`, `report_discard_supported`. Values may arrive as strings (YAML, INI, CLI
 * flags): numbers, booleans and comma-separated lists are coerced.
 *
 * @module
 */
import { isIP } from 'node:net';
import { InvalidInputError } from '../errors.js';

/** Helper names accepted in `target_helper`. */
export const TARGET_HELPERS = ['lioadm', 'tgtadm', 'nvmet'] as const;
/** A target helper name. */
export type TargetHelperName = (typeof TARGET_HELPERS)[number];
/** Protocols accepted in `target_protocol`. */
export const TARGET_PROTOCOLS = ['iscsi', 'nvmet_tcp'] as const;
/** A target protocol name. */
export type TargetProtocolName = (typeof TARGET_PROTOCOLS)[number];

/** Default IQN prefix of iSCSI targets (Cinder's `target_prefix` default). */
export const DEFAULT_ISCSI_PREFIX = 'iqn.2010-10.org.openstack:';
/** Default NQN prefix of nvmet subsystems (Brick's choice: a valid NQN per volume, `<prefix><volume name>`). */
export const DEFAULT_NVME_PREFIX = 'nqn.2010-10.org.openstack:';

/** Validated target options. */
export interface TargetConfig {
  helper: TargetHelperName;
  protocol: TargetProtocolName;
  /** IQN or NQN prefix; the target name is `prefix + volume.name`. */
  prefix: string;
  /** Primary portal address (IPv4 or IPv6 literal, or a host name). */
  ipAddress: string;
  /** Extra portal addresses (multipath). */
  secondaryIpAddresses: string[];
  /** TCP port of every portal: 3260 for iSCSI, 4420 for NVMe/TCP by default. */
  port: number;
  /** First nvmet port id (one port per address, ids counting up). Default 1. */
  nvmetPortId: number;
  /** Namespace id of each volume's namespace. Default 10 (Cinder's `nvmet_ns_id`). */
  nvmetNsId: number;
  /** Whether connection info says `discard: true` (Cinder's `report_discard_supported`). */
  reportDiscard: boolean;
  /** tgtd management socket (tgt's `TGT_IPC_SOCKET` + `.0`), read under the host root. */
  tgtSocket: string;
}

/** Read a string option. @throws {@link InvalidInputError} naming `key` */
export function optString(cfg: Record<string, unknown>, key: string, dflt: string): string {
  const v = cfg[key];
  if (v === undefined || v === null || v === '') return dflt;
  if (typeof v !== 'string') throw new InvalidInputError(key, `must be a string, got ${typeof v}`);
  return v.trim();
}

/** Read an integer option (number or decimal string) within [min, max]. @throws {@link InvalidInputError} naming `key` */
export function optInt(cfg: Record<string, unknown>, key: string, dflt: number, min: number, max: number): number {
  const v = cfg[key];
  if (v === undefined || v === null || v === '') return dflt;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidInputError(key, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** Read a number option (number or decimal string) of at least `min`. @throws {@link InvalidInputError} naming `key` */
export function optNumber(cfg: Record<string, unknown>, key: string, dflt: number, min: number): number {
  const v = cfg[key];
  if (v === undefined || v === null || v === '') return dflt;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min) throw new InvalidInputError(key, `must be a number of at least ${min}, got ${JSON.stringify(v)}`);
  return n;
}

/** Read a boolean option (`true`/`false`, `yes`/`no`, `1`/`0`, `on`/`off`). @throws {@link InvalidInputError} naming `key` */
export function optBool(cfg: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = cfg[key];
  if (v === undefined || v === null || v === '') return dflt;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (['true', 'yes', '1', 'on'].includes(s)) return true;
    if (['false', 'no', '0', 'off'].includes(s)) return false;
  }
  throw new InvalidInputError(key, `must be a boolean, got ${JSON.stringify(v)}`);
}

/** Read a list option (array of strings, or a comma-separated string). @throws {@link InvalidInputError} naming `key` */
export function optList(cfg: Record<string, unknown>, key: string): string[] {
  const v = cfg[key];
  if (v === undefined || v === null || v === '') return [];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return (v as string[]).map((s) => s.trim()).filter(Boolean);
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  throw new InvalidInputError(key, 'must be a list of strings or a comma-separated string');
}

/** Read an enumerated option. @throws {@link InvalidInputError} naming `key` and the allowed values */
export function optChoice<T extends string>(cfg: Record<string, unknown>, key: string, choices: readonly T[], dflt: T): T {
  const v = optString(cfg, key, dflt);
  if (!(choices as readonly string[]).includes(v)) throw new InvalidInputError(key, `must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function checkAddress(key: string, addr: string): void {
  if (addr.includes('/') || /\s/.test(addr) || addr === '') throw new InvalidInputError(key, `${JSON.stringify(addr)} is not an IP address or host name`);
  if (isIP(addr) === 0 && !/^[A-Za-z0-9.-]+$/.test(addr)) throw new InvalidInputError(key, `${JSON.stringify(addr)} is not an IP address or host name`);
}

/**
 * Parse and validate the target options of a backend configuration.
 * `target_helper` defaults to `lioadm` (Brick needs no tgtd by default), `target_protocol` to
 * `iscsi` for the iSCSI helpers and `nvmet_tcp` for `nvmet`.
 * @throws {@link InvalidInputError} naming the offending key (bad value, or a helper/protocol mismatch)
 */
export function parseTargetConfig(cfg: Record<string, unknown>): TargetConfig {
  const helper = optChoice(cfg, 'target_helper', TARGET_HELPERS, 'lioadm');
  const defaultProtocol: TargetProtocolName = helper === 'nvmet' ? 'nvmet_tcp' : 'iscsi';
  const protocol = optChoice(cfg, 'target_protocol', TARGET_PROTOCOLS, defaultProtocol);
  if (helper === 'nvmet' && protocol !== 'nvmet_tcp') throw new InvalidInputError('target_protocol', `target_helper nvmet needs target_protocol nvmet_tcp, got ${protocol}`);
  if (helper !== 'nvmet' && protocol !== 'iscsi') throw new InvalidInputError('target_protocol', `target_helper ${helper} needs target_protocol iscsi, got ${protocol}`);
  const prefix = optString(cfg, 'target_prefix', helper === 'nvmet' ? DEFAULT_NVME_PREFIX : DEFAULT_ISCSI_PREFIX);
  if (helper === 'nvmet' ? !/^nqn\./.test(prefix) : !/^(iqn\.|eui\.|naa\.)/.test(prefix)) {
    throw new InvalidInputError('target_prefix', `${JSON.stringify(prefix)} does not start a valid ${helper === 'nvmet' ? 'NQN (nqn.)' : 'iSCSI name (iqn.)'}`);
  }
  if (/\s/.test(prefix)) throw new InvalidInputError('target_prefix', 'must not contain white space');
  const ipAddress = optString(cfg, 'target_ip_address', '127.0.0.1');
  checkAddress('target_ip_address', ipAddress);
  const secondaryKey = cfg.target_secondary_ip_addresses !== undefined ? 'target_secondary_ip_addresses' : 'iscsi_secondary_ip_addresses';
  const secondaryIpAddresses = optList(cfg, secondaryKey);
  for (const a of secondaryIpAddresses) checkAddress(secondaryKey, a);
  if (new Set([ipAddress, ...secondaryIpAddresses]).size !== secondaryIpAddresses.length + 1) throw new InvalidInputError(secondaryKey, 'repeats an address');
  const port = optInt(cfg, 'target_port', helper === 'nvmet' ? 4420 : 3260, 1, 65535);
  const nvmetPortId = optInt(cfg, 'nvmet_port_id', 1, 1, 65535);
  const nvmetNsId = optInt(cfg, 'nvmet_ns_id', 10, 1, 0xfffffffe);
  const reportDiscard = optBool(cfg, 'report_discard_supported', false);
  const tgtSocket = optString(cfg, 'tgt_ipc_socket', '/var/run/tgtd/socket.0');
  if (!tgtSocket.startsWith('/')) throw new InvalidInputError('tgt_ipc_socket', 'must be an absolute path');
  return { helper, protocol, prefix, ipAddress, secondaryIpAddresses, port, nvmetPortId, nvmetNsId, reportDiscard, tgtSocket };
}

/** `addr:port`, with IPv6 literals in brackets (Cinder's `sanitize_host`). */
export function portalString(addr: string, port: number): string {
  return isIP(addr) === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}
