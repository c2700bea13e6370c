/**
 * Target-helper configuration: Cinder's target options, read from a backend's configuration
 * and validated before anything runs.
 *
 * Keys and defaults follow Cinder (`cinder/volume/driver.py` `volume_opts` and
 * `cinder/volume/targets/*`): `target_helper` (`lioadm`, `tgtadm`, `nvmet`), `target_protocol`
 * (`iscsi`, `nvmet_tcp`), `target_prefix`, `target_ip_address`, `target_secondary_ip_addresses`
 * (older name `iscsi_secondary_ip_addresses` accepted), `target_port`, `nvmet_port_id`,
 * `nvmet_ns_id`, `report_discard_supported`. Values may arrive as strings (YAML, INI, CLI
 * flags): numbers, booleans and comma-separated lists are coerced ({@link readOption}). Every
 * refusal is an `InvalidConfigError` naming the key.
 *
 * @module
 */
import { isIP } from 'node:net';
import { configError, defineOption, readOption, type DriverOption } from '../options.js';

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

/** The target-helper options (Cinder's names), shared by every driver that exports through a target helper. */
export const TARGET_OPT = {
  helper: defineOption({ name: 'target_helper', type: 'enum', choices: TARGET_HELPERS, default: 'lioadm', help: 'Export helper: `lioadm` (LIO configfs), `tgtadm` (tgtd) or `nvmet` (NVMe-oF target).' }),
  protocol: defineOption({ name: 'target_protocol', type: 'enum', choices: TARGET_PROTOCOLS, defaultText: '`iscsi` (`nvmet_tcp` with `nvmet`)', help: 'Transport of the exports; must suit the helper.' }),
  prefix: defineOption({ name: 'target_prefix', type: 'string', defaultText: '`iqn.2010-10.org.openstack:` (`nqn.2010-10.org.openstack:` with `nvmet`)', help: 'IQN or NQN prefix; the target name is the prefix plus the volume name.' }),
  ipAddress: defineOption({ name: 'target_ip_address', type: 'string', default: '127.0.0.1', help: 'Address of the primary portal (IP literal or host name).' }),
  secondaryIpAddresses: defineOption({ name: 'target_secondary_ip_addresses', aliases: ['iscsi_secondary_ip_addresses'], type: 'list', default: [], help: 'Further portal addresses, for multipath.' }),
  port: defineOption({ name: 'target_port', type: 'int', min: 1, max: 65535, defaultText: '`3260` (`4420` with `nvmet`)', help: 'TCP port of every portal.' }),
  nvmetPortId: defineOption({ name: 'nvmet_port_id', type: 'int', min: 1, max: 65535, default: 1, help: 'First nvmet port id (one port per address, counting up).' }),
  nvmetNsId: defineOption({ name: 'nvmet_ns_id', type: 'int', min: 1, max: 0xfffffffe, default: 10, help: 'Namespace id of each volume in its subsystem.' }),
  reportDiscard: defineOption({ name: 'report_discard_supported', type: 'bool', default: false, help: 'Say `discard: true` in the connection info.' }),
  tgtSocket: defineOption({ name: 'tgt_ipc_socket', type: 'string', default: '/var/run/tgtd/socket.0', help: 'tgtd management socket (absolute path, read under the host root).' }),
} as const;

/** Every target-helper option, in documentation order. */
export const TARGET_OPTIONS: readonly DriverOption[] = Object.values(TARGET_OPT);

function checkAddress(key: string, addr: string): void {
  const bad = addr.includes('/') || /\s/.test(addr) || addr === '' || (isIP(addr) === 0 && !/^[A-Za-z0-9.-]+$/.test(addr));
  if (bad) throw configError(key, `${JSON.stringify(addr)} is not an IP address or host name`);
}

/**
 * Parse and validate the target options of a backend configuration ({@link TARGET_OPTIONS}).
 * `target_helper` defaults to `lioadm` (Brick needs no tgtd by default), `target_protocol` to
 * `iscsi` for the iSCSI helpers and `nvmet_tcp` for `nvmet`.
 * @throws {@link InvalidConfigError} naming the offending key (bad value, or a helper/protocol mismatch)
 */
export function parseTargetConfig(cfg: Record<string, unknown>): TargetConfig {
  const o = TARGET_OPT;
  const helper = readOption(cfg, o.helper);
  const nvmet = helper === 'nvmet';
  const protocol = readOption(cfg, o.protocol) ?? (nvmet ? 'nvmet_tcp' : 'iscsi');
  if (nvmet && protocol !== 'nvmet_tcp') throw configError('target_protocol', `target_helper nvmet needs target_protocol nvmet_tcp, got ${protocol}`);
  if (!nvmet && protocol !== 'iscsi') throw configError('target_protocol', `target_helper ${helper} needs target_protocol iscsi, got ${protocol}`);
  const prefix = readOption(cfg, o.prefix) ?? (nvmet ? DEFAULT_NVME_PREFIX : DEFAULT_ISCSI_PREFIX);
  if (nvmet ? !/^nqn\./.test(prefix) : !/^(iqn\.|eui\.|naa\.)/.test(prefix)) {
    throw configError('target_prefix', `${JSON.stringify(prefix)} does not start a valid ${nvmet ? 'NQN (nqn.)' : 'iSCSI name (iqn.)'}`);
  }
  if (/\s/.test(prefix)) throw configError('target_prefix', 'must not contain white space');
  const ipAddress = readOption(cfg, o.ipAddress);
  checkAddress('target_ip_address', ipAddress);
  const secondaryKey = cfg.target_secondary_ip_addresses !== undefined ? 'target_secondary_ip_addresses' : 'iscsi_secondary_ip_addresses';
  const secondaryIpAddresses = readOption(cfg, o.secondaryIpAddresses);
  for (const a of secondaryIpAddresses) checkAddress(secondaryKey, a);
  if (new Set([ipAddress, ...secondaryIpAddresses]).size !== secondaryIpAddresses.length + 1) throw configError(secondaryKey, 'repeats an address');
  const port = readOption(cfg, o.port) ?? (nvmet ? 4420 : 3260);
  const tgtSocket = readOption(cfg, o.tgtSocket);
  if (!tgtSocket.startsWith('/')) throw configError('tgt_ipc_socket', 'must be an absolute path');
  const rest = { nvmetPortId: readOption(cfg, o.nvmetPortId), nvmetNsId: readOption(cfg, o.nvmetNsId), reportDiscard: readOption(cfg, o.reportDiscard) };
  return { helper, protocol, prefix, ipAddress, secondaryIpAddresses, port, ...rest, tgtSocket };
}

/** `addr:port`, with IPv6 literals in brackets (Cinder's `sanitize_host`). */
export function portalString(addr: string, port: number): string {
  return isIP(addr) === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}
