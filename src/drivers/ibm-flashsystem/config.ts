/**
 * Configuration of the `ibm_flashsystem` driver: Cinder's option names for
 * `FlashSystemISCSIDriver` (`san_*`, `ssh_*`, `flashsystem_*`, `target_*`), validated up front
 * with errors that name the offending key.
 *
 * Differences from Cinder, each deliberate:
 * - `flashsystem_connection_protocol` is compared case-insensitively and normalised to `iSCSI`
 *   (Cinder accepted `iscsi` and then found no node at attach time);
 * - host-key checking: `san_ssh_host_key` (OpenSSH public key lines or `SHA256:` fingerprints)
 *   and/or `ssh_hosts_key_file` (a known_hosts file) must name the array's key, unless
 *   `san_ssh_allow_unknown_host_key` is true;
 * - `san_private_key` may be a path (as in Cinder) or the key text itself;
 * - `flashsystem_iscsi_portid` is only matched when given (Cinder's default 0 matched no port);
 * - `target_ip_address` is optional: without it every configured iSCSI port with the port id
 *   serves;
 * - `flashsystem_mdiskgrp` and `flashsystem_iogrp` make Cinder's hard-coded `mdiskgrp0` and
 *   I/O group 0 configurable; `flashsystem_copy_method` picks FlashCopy or the host-side copy.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import { configError, defineOption, pickOption, readOption, requireConfigObject, type DriverOption } from '../../options.js';
import { sshFingerprint } from './ssh.js';
import { validateObjectName } from './cli.js';

/** The validated configuration. Times in ms, sizes in bytes. */
export interface FlashSystemConfig {
  sanIp: string;
  sanSshPort: number;
  sanLogin: string;
  sanPassword?: string;
  /** Private key text (read from the file when `san_private_key` is a path). */
  sanPrivateKey?: string;
  sanPrivateKeyPassphrase?: string;
  /** Trusted host-key fingerprints (`SHA256:...`). */
  trustedHostKeys: string[];
  allowUnknownHostKey: boolean;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  maxPoolConnections: number;
  /** Always `iSCSI`. */
  protocol: 'iSCSI';
  multiHostMapEnabled: boolean;
  /** `lsportip` `id` to use, when configured. */
  iscsiPortId?: number;
  targetIpAddress?: string;
  targetPort: number;
  pool: string;
  ioGroup: number;
  reservedPercentage: number;
  volumeBackendName?: string;
  useMultipath: boolean;
  copyMethod: 'auto' | 'flashcopy' | 'host';
  /** FlashCopy background copy rate (0-150; 100 = 64 MiB/s on the array). */
  copyRate: number;
  copyTimeoutMs: number;
  /** Block size of the host-side copy, bytes. */
  copyBlockSize: number;
  /** Bound on waiting for a per-volume or per-host lock, ms (`flashsystem_lock_timeout`, seconds; default: the copy timeout plus a minute). */
  lockTimeoutMs?: number;
}

const bad = configError;

/** `volume_dd_blocksize`: `1M`, `4096K`, `1048576`... to bytes, a multiple of 512 from 512 to 64 MiB. */
function blockSize(text: string): number {
  const m = /^\s*(\d+)\s*([KMG]?)i?B?\s*$/i.exec(text);
  if (!m) throw bad('volume_dd_blocksize', 'must be a size such as 1M, 4096K or 1048576');
  const n = Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[(m[2] ?? '').toUpperCase()]!;
  if (!Number.isInteger(n) || n < 512 || n > 64 * 1024 ** 2 || n % 512 !== 0) throw bad('volume_dd_blocksize', 'must be a multiple of 512 bytes between 512 and 64M');
  return n;
}

const int = (name: string, min: number, max: number, dflt: number, help: string) => defineOption({ name, type: 'int' as const, min, max, default: dflt, help });
const bool = (name: string, dflt: boolean, help: string) => defineOption({ name, type: 'bool' as const, default: dflt, help });

/** The FlashSystem driver's options (Cinder's names; the `flashsystem_*` extras are Brick's, see the module notes). */
export const FLASHSYSTEM_OPT = {
  sanIp: defineOption({ name: 'san_ip', type: 'string', required: true, help: 'Management IP or host name of the FlashSystem.' }),
  sanSshPort: int('san_ssh_port', 1, 65535, 22, 'SSH port of the management address.'),
  sanLogin: defineOption({ name: 'san_login', type: 'string', default: 'admin', help: 'SSH user.' }),
  sanPassword: defineOption({ name: 'san_password', type: 'string', secret: true, help: 'SSH password (this or `san_private_key` is required).' }),
  sanPrivateKey: defineOption({ name: 'san_private_key', type: 'string', secret: true, help: 'SSH private key: a file path or the key text.' }),
  sanPrivateKeyPassphrase: defineOption({ name: 'san_private_key_passphrase', type: 'string', secret: true, help: 'Passphrase of the private key.' }),
  sanSshHostKey: defineOption({ name: 'san_ssh_host_key', type: 'list', separator: /\n|,(?=\s*(?:ssh-|ecdsa-|SHA256:))/, default: [], help: 'Trusted host keys: OpenSSH public key lines or `SHA256:` fingerprints.' }),
  sshHostsKeyFile: defineOption({ name: 'ssh_hosts_key_file', type: 'string', help: 'A known_hosts file naming the array\'s key.' }),
  allowUnknownHostKey: bool('san_ssh_allow_unknown_host_key', false, 'Brick: accept any host key (tests only).'),
  connectionProtocol: defineOption({ name: 'flashsystem_connection_protocol', type: 'enum', choices: ['iSCSI'], ignoreCase: true, default: 'iSCSI', help: 'Only iSCSI is supported.' }),
  targetIpAddress: defineOption({ name: 'target_ip_address', aliases: ['iscsi_ip_address'], type: 'string', help: 'The iSCSI address to serve from (default: every configured port with the port id).' }),
  targetPort: int('target_port', 1, 65535, 3260, 'iSCSI port of the portals.'),
  iscsiPort: int('iscsi_port', 1, 65535, 3260, 'Older name of `target_port`.'),
  pool: defineOption({ name: 'flashsystem_mdiskgrp', type: 'string', default: 'mdiskgrp0', help: 'Brick: the storage pool (Cinder hard-codes `mdiskgrp0`).' }),
  copyMethod: defineOption({ name: 'flashsystem_copy_method', type: 'enum', choices: ['auto', 'flashcopy', 'host'], ignoreCase: true, default: 'auto', help: 'Brick: FlashCopy, the host-side copy, or FlashCopy when the array has it.' }),
  minPool: int('ssh_min_pool_conn', 1, 64, 1, 'Fewest SSH connections kept.'),
  maxPool: int('ssh_max_pool_conn', 1, 64, 5, 'Most SSH connections at once.'),
  connTimeout: int('ssh_conn_timeout', 1, 3600, 30, 'SSH connect bound (seconds).'),
  commandTimeout: int('ssh_command_timeout', 1, 86400, 60, 'Bound on one CLI command (seconds).'),
  multiHostMap: bool('flashsystem_multihostmap_enabled', true, 'Allow mapping a volume to a second host.'),
  ioGroup: int('flashsystem_iogrp', 0, 3, 0, 'Brick: I/O group of new vdisks (Cinder hard-codes 0).'),
  reservedPercentage: int('reserved_percentage', 0, 100, 0, 'Reported in the stats.'),
  useMultipath: bool('use_multipath_for_image_xfer', false, 'Attaches (and the host-side copy) use multipath.'),
  copyRate: int('flashsystem_copy_rate', 1, 150, 100, 'Brick: FlashCopy background copy rate (100 = 64 MiB/s).'),
  copyTimeout: int('flashsystem_copy_timeout', 1, 7 * 86400, 3600, 'Brick: bound on one copy (seconds).'),
  ddBlockSize: defineOption({ name: 'volume_dd_blocksize', type: 'string', default: '1M', help: 'Block size of the host-side copy (`512` to `64M`).' }),
  iscsiPortId: defineOption({ name: 'flashsystem_iscsi_portid', type: 'int', min: 0, max: 64, help: 'The `lsportip` id of the iSCSI port (only matched when given).' }),
  lockTimeout: defineOption({ name: 'flashsystem_lock_timeout', type: 'int', min: 1, max: 7 * 86400, help: 'Brick: bound on a per-volume or per-host lock (seconds; default: the copy timeout plus a minute).' }),
  volumeBackendName: defineOption({ name: 'volume_backend_name', type: 'string', help: 'Backend name reported in the stats.' }),
} as const;

/** Every option of the `ibm_flashsystem` driver. */
export const FLASHSYSTEM_OPTIONS: readonly DriverOption[] = Object.values(FLASHSYSTEM_OPT);

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function isIp(s: string): boolean {
  return IPV4.test(s) || (s.includes(':') && /^[0-9A-Fa-f:.]+$/.test(s));
}

/**
 * The fingerprint of an OpenSSH public key line (`type base64 [comment]`) or a `SHA256:` fingerprint as given.
 * @throws {@link InvalidConfigError} naming `field` when `key` is neither, or its key cannot be parsed
 */
export function hostKeyFingerprint(key: string, field: string): string {
  const t = key.trim();
  if (/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(t)) return t.replace(/=$/, '');
  const parts = t.split(/\s+/);
  const b64 = parts.find((p, i) => i > 0 && /^AAAA[A-Za-z0-9+/]+=*$/.test(p)) ?? (parts.length === 1 && /^AAAA/.test(parts[0]!) ? parts[0] : undefined);
  if (!b64) throw bad(field, `${JSON.stringify(t.slice(0, 40))} is neither an OpenSSH public key line nor a SHA256: fingerprint`);
  const parsed = ssh2.utils.parseKey(`${parts.length > 1 ? parts[parts.indexOf(b64) - 1] : 'ssh-ed25519'} ${b64}`);
  if (parsed instanceof Error) throw bad(field, `public key cannot be parsed: ${parsed.message}`);
  return sshFingerprint(Buffer.from(b64, 'base64'));
}

/**
 * Fingerprints of the known_hosts lines in `text` whose host field names `host` (or `[host]:port`). Hashed entries are not supported.
 * @throws {@link InvalidConfigError} naming `field` when a matching line's key cannot be parsed ({@link hostKeyFingerprint})
 */
export function knownHostsFingerprints(text: string, host: string, port: number, field: string): string[] {
  const names = new Set([host, `[${host}]:${port}`]);
  if (port === 22) names.add(`[${host}]:22`);
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    const hostsField = parts[0]!.startsWith('@') ? parts[1] : parts[0];
    const rest = parts[0]!.startsWith('@') ? parts.slice(2) : parts.slice(1);
    if (parts[0] === '@revoked') continue;
    if (!hostsField || !hostsField.split(',').some((h) => names.has(h))) continue;
    out.push(hostKeyFingerprint(rest.join(' '), field));
  }
  return out;
}

function readPrivateKey(value: string): string {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value)) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (err) {
    // Name the value only when it looks like a path: mangled key text must not reach the message.
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (/^[~./][^\s]{0,1023}$/.test(value) && !value.includes('PRIVATE')) throw bad('san_private_key', `cannot read the key file ${JSON.stringify(value)}: ${code}`);
    throw bad('san_private_key', `is neither private key text nor a readable key file (${code})`);
  }
}

/** The SSH credentials: a password and/or a usable private key (read from the file when a path). */
function credentials(raw: Record<string, unknown>): Pick<FlashSystemConfig, 'sanPassword' | 'sanPrivateKey' | 'sanPrivateKeyPassphrase'> {
  const o = FLASHSYSTEM_OPT;
  const sanPassword = readOption(raw, o.sanPassword);
  const keyValue = readOption(raw, o.sanPrivateKey);
  if (sanPassword === undefined && keyValue === undefined) throw bad('san_password', 'san_password or san_private_key must be set');
  const out: Pick<FlashSystemConfig, 'sanPassword' | 'sanPrivateKey' | 'sanPrivateKeyPassphrase'> = {};
  if (sanPassword !== undefined) out.sanPassword = sanPassword;
  const passphrase = readOption(raw, o.sanPrivateKeyPassphrase);
  if (passphrase !== undefined) out.sanPrivateKeyPassphrase = passphrase;
  if (keyValue !== undefined) {
    out.sanPrivateKey = readPrivateKey(keyValue);
    if (ssh2.utils.parseKey(out.sanPrivateKey, passphrase) instanceof Error) throw bad('san_private_key', 'is not a usable private key (wrong format or passphrase)');
  }
  return out;
}

/** Fingerprints of the trusted host keys: `san_ssh_host_key` and the `ssh_hosts_key_file` entries for the array. */
function trustedHostKeys(raw: Record<string, unknown>, sanIp: string, sanSshPort: number): string[] {
  const trusted = readOption(raw, FLASHSYSTEM_OPT.sanSshHostKey).map((k) => hostKeyFingerprint(k, 'san_ssh_host_key'));
  const khFile = readOption(raw, FLASHSYSTEM_OPT.sshHostsKeyFile);
  if (khFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(khFile, 'utf8');
    } catch (err) {
      throw bad('ssh_hosts_key_file', `cannot read ${JSON.stringify(khFile)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    trusted.push(...knownHostsFingerprints(text, sanIp, sanSshPort, 'ssh_hosts_key_file'));
  }
  return trusted;
}

/** The iSCSI address and port: `target_ip_address` (or `iscsi_ip_address`) and `target_port` (or `iscsi_port`). */
function iscsiTarget(raw: Record<string, unknown>): { targetIpAddress?: string; targetPort: number } {
  const o = FLASHSYSTEM_OPT;
  const picked = pickOption(raw, o.targetIpAddress);
  const targetIp = readOption(raw, o.targetIpAddress);
  if (targetIp !== undefined && !isIp(targetIp)) throw bad(picked!.key, `${JSON.stringify(targetIp)} is not an IP address`);
  const targetPort = pickOption(raw, o.targetPort) ? readOption(raw, o.targetPort) : readOption(raw, o.iscsiPort);
  return { ...(targetIp !== undefined ? { targetIpAddress: targetIp } : {}), targetPort };
}

function poolName(raw: Record<string, unknown>): string {
  const pool = readOption(raw, FLASHSYSTEM_OPT.pool);
  try {
    validateObjectName('flashsystem_mdiskgrp', pool);
  } catch (err) {
    throw bad('flashsystem_mdiskgrp', (err as Error).message);
  }
  return pool;
}

/**
 * Validate a backend configuration ({@link FLASHSYSTEM_OPTIONS}; `volume_driver` may be present
 * and is ignored).
 * @throws {@link InvalidConfigError} whose `field` is the offending key (secrets never appear in the message)
 */
export function parseFlashSystemConfig(raw: Record<string, unknown>): FlashSystemConfig {
  requireConfigObject(raw);
  const o = FLASHSYSTEM_OPT;
  const sanIp = readOption(raw, o.sanIp);
  if (!isIp(sanIp) && !HOSTNAME.test(sanIp)) throw bad('san_ip', `${JSON.stringify(sanIp)} is not an IP address or host name`);
  const sanSshPort = readOption(raw, o.sanSshPort);
  const sanLogin = readOption(raw, o.sanLogin);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}$/.test(sanLogin)) throw bad('san_login', 'is not a valid user name');
  const creds = credentials(raw);
  const trustedHosts = trustedHostKeys(raw, sanIp, sanSshPort);
  readOption(raw, o.connectionProtocol);
  const maxPool = readOption(raw, o.maxPool);
  if (readOption(raw, o.minPool) > maxPool) throw bad('ssh_min_pool_conn', 'must not exceed ssh_max_pool_conn');
  const cfg: FlashSystemConfig = {
    sanIp,
    sanSshPort,
    sanLogin,
    ...creds,
    trustedHostKeys: trustedHosts,
    allowUnknownHostKey: readOption(raw, o.allowUnknownHostKey),
    connectTimeoutMs: readOption(raw, o.connTimeout) * 1000,
    commandTimeoutMs: readOption(raw, o.commandTimeout) * 1000,
    maxPoolConnections: maxPool,
    protocol: 'iSCSI',
    multiHostMapEnabled: readOption(raw, o.multiHostMap),
    ...iscsiTarget(raw),
    pool: poolName(raw),
    ioGroup: readOption(raw, o.ioGroup),
    reservedPercentage: readOption(raw, o.reservedPercentage),
    useMultipath: readOption(raw, o.useMultipath),
    copyMethod: readOption(raw, o.copyMethod),
    copyRate: readOption(raw, o.copyRate),
    copyTimeoutMs: readOption(raw, o.copyTimeout) * 1000,
    copyBlockSize: blockSize(readOption(raw, o.ddBlockSize)),
  };
  const portId = readOption(raw, o.iscsiPortId);
  if (portId !== undefined) cfg.iscsiPortId = portId;
  const lockTimeout = readOption(raw, o.lockTimeout);
  if (lockTimeout !== undefined) cfg.lockTimeoutMs = lockTimeout * 1000;
  const vbn = readOption(raw, o.volumeBackendName);
  if (vbn !== undefined) cfg.volumeBackendName = vbn;
  return cfg;
}
