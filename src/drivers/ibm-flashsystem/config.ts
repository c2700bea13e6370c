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
import { InvalidConfigError } from '../../errors.js';
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

function bad(key: string, problem: string): InvalidConfigError {
  return new InvalidConfigError(`invalid ${key}: ${problem}`, { field: key });
}

function present(raw: Record<string, unknown>, key: string): boolean {
  const v = raw[key];
  return v !== undefined && v !== null && v !== '';
}

function str(raw: Record<string, unknown>, key: string): string | undefined {
  if (!present(raw, key)) return undefined;
  const v = raw[key];
  if (typeof v !== 'string') throw bad(key, 'must be a string');
  return v;
}

function int(raw: Record<string, unknown>, key: string, dflt: number, min: number, max: number): number {
  if (!present(raw, key)) return dflt;
  const v = raw[key];
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw bad(key, `must be an integer from ${min} to ${max}`);
  return n;
}

function bool(raw: Record<string, unknown>, key: string, dflt: boolean): boolean {
  if (!present(raw, key)) return dflt;
  const v = raw[key];
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    if (/^(true|yes|on|1)$/i.test(v)) return true;
    if (/^(false|no|off|0)$/i.test(v)) return false;
  }
  throw bad(key, 'must be true or false');
}

function size(raw: Record<string, unknown>, key: string, dflt: number): number {
  if (!present(raw, key)) return dflt;
  const v = raw[key];
  const m = typeof v === 'number' ? [String(v), String(v), ''] : typeof v === 'string' ? /^\s*(\d+)\s*([KMG]?)i?B?\s*$/i.exec(v) : null;
  if (!m) throw bad(key, 'must be a size such as 1M, 4096K or 1048576');
  const n = Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[(m[2] ?? '').toUpperCase()]!;
  if (!Number.isInteger(n) || n < 512 || n > 64 * 1024 ** 2 || n % 512 !== 0) throw bad(key, 'must be a multiple of 512 bytes between 512 and 64M');
  return n;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function isIp(s: string): boolean {
  return IPV4.test(s) || (s.includes(':') && /^[0-9A-Fa-f:.]+$/.test(s));
}

/** The fingerprint of an OpenSSH public key line (`type base64 [comment]`) or a `SHA256:` fingerprint as given. */
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

/** Fingerprints of the known_hosts lines in `text` whose host field names `host` (or `[host]:port`). Hashed entries are not supported. */
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
    // The value is a path here (key text was handled above), so naming it leaks nothing.
    throw bad('san_private_key', `cannot read the key file ${JSON.stringify(value)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/**
 * Validate a backend configuration (`volume_driver` and `volume_backend_name` may be present and
 * are ignored except the latter for stats).
 * @throws {@link InvalidConfigError} whose `field` is the offending key
 */
export function parseFlashSystemConfig(raw: Record<string, unknown>): FlashSystemConfig {
  const sanIp = str(raw, 'san_ip');
  if (!sanIp) throw bad('san_ip', 'is required (the management IP or host name of the FlashSystem)');
  if (!isIp(sanIp) && !HOSTNAME.test(sanIp)) throw bad('san_ip', `${JSON.stringify(sanIp)} is not an IP address or host name`);
  const sanSshPort = int(raw, 'san_ssh_port', 22, 1, 65535);
  const sanLogin = str(raw, 'san_login') ?? 'admin';
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}$/.test(sanLogin)) throw bad('san_login', 'is not a valid user name');
  const sanPassword = str(raw, 'san_password');
  const keyValue = str(raw, 'san_private_key');
  if (sanPassword === undefined && keyValue === undefined) throw bad('san_password', 'san_password or san_private_key must be set');
  const sanPrivateKey = keyValue !== undefined ? readPrivateKey(keyValue) : undefined;
  if (sanPrivateKey !== undefined) {
    const passphrase = str(raw, 'san_private_key_passphrase');
    const parsed = ssh2.utils.parseKey(sanPrivateKey, passphrase);
    if (parsed instanceof Error) throw bad('san_private_key', 'is not a usable private key (wrong format or passphrase)');
  }

  const trusted: string[] = [];
  const hk = raw.san_ssh_host_key;
  if (present(raw, 'san_ssh_host_key')) {
    const list = Array.isArray(hk) ? hk : typeof hk === 'string' ? hk.split(/\n|,(?=\s*(?:ssh-|ecdsa-|SHA256:))/) : null;
    if (!list) throw bad('san_ssh_host_key', 'must be a string or a list of strings');
    for (const k of list) {
      if (typeof k !== 'string') throw bad('san_ssh_host_key', 'must be a string or a list of strings');
      if (k.trim() !== '') trusted.push(hostKeyFingerprint(k, 'san_ssh_host_key'));
    }
  }
  const khFile = str(raw, 'ssh_hosts_key_file');
  if (khFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(khFile, 'utf8');
    } catch (err) {
      throw bad('ssh_hosts_key_file', `cannot read ${JSON.stringify(khFile)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    trusted.push(...knownHostsFingerprints(text, sanIp, sanSshPort, 'ssh_hosts_key_file'));
  }
  const allowUnknownHostKey = bool(raw, 'san_ssh_allow_unknown_host_key', false);

  const protoRaw = str(raw, 'flashsystem_connection_protocol') ?? 'iSCSI';
  if (protoRaw.toLowerCase() !== 'iscsi') throw bad('flashsystem_connection_protocol', `${JSON.stringify(protoRaw)} is not supported by this driver (only iSCSI)`);

  const targetIp = str(raw, 'target_ip_address') ?? str(raw, 'iscsi_ip_address');
  if (targetIp !== undefined && !isIp(targetIp)) throw bad(present(raw, 'target_ip_address') ? 'target_ip_address' : 'iscsi_ip_address', `${JSON.stringify(targetIp)} is not an IP address`);
  const targetPort = present(raw, 'target_port') ? int(raw, 'target_port', 3260, 1, 65535) : int(raw, 'iscsi_port', 3260, 1, 65535);

  const pool = str(raw, 'flashsystem_mdiskgrp') ?? 'mdiskgrp0';
  try {
    validateObjectName('flashsystem_mdiskgrp', pool);
  } catch (err) {
    throw bad('flashsystem_mdiskgrp', (err as Error).message);
  }
  const copyMethod = (str(raw, 'flashsystem_copy_method') ?? 'auto').toLowerCase();
  if (copyMethod !== 'auto' && copyMethod !== 'flashcopy' && copyMethod !== 'host') throw bad('flashsystem_copy_method', 'must be auto, flashcopy or host');

  const minPool = int(raw, 'ssh_min_pool_conn', 1, 1, 64);
  const maxPool = int(raw, 'ssh_max_pool_conn', 5, 1, 64);
  if (minPool > maxPool) throw bad('ssh_min_pool_conn', 'must not exceed ssh_max_pool_conn');

  const cfg: FlashSystemConfig = {
    sanIp,
    sanSshPort,
    sanLogin,
    trustedHostKeys: trusted,
    allowUnknownHostKey,
    connectTimeoutMs: int(raw, 'ssh_conn_timeout', 30, 1, 3600) * 1000,
    commandTimeoutMs: int(raw, 'ssh_command_timeout', 60, 1, 86400) * 1000,
    maxPoolConnections: maxPool,
    protocol: 'iSCSI',
    multiHostMapEnabled: bool(raw, 'flashsystem_multihostmap_enabled', true),
    targetPort,
    pool,
    ioGroup: int(raw, 'flashsystem_iogrp', 0, 0, 3),
    reservedPercentage: int(raw, 'reserved_percentage', 0, 0, 100),
    useMultipath: bool(raw, 'use_multipath_for_image_xfer', false),
    copyMethod,
    copyRate: int(raw, 'flashsystem_copy_rate', 100, 1, 150),
    copyTimeoutMs: int(raw, 'flashsystem_copy_timeout', 3600, 1, 7 * 86400) * 1000,
    copyBlockSize: size(raw, 'volume_dd_blocksize', 1024 ** 2),
  };
  if (sanPassword !== undefined) cfg.sanPassword = sanPassword;
  if (sanPrivateKey !== undefined) cfg.sanPrivateKey = sanPrivateKey;
  const pp = str(raw, 'san_private_key_passphrase');
  if (pp !== undefined) cfg.sanPrivateKeyPassphrase = pp;
  if (present(raw, 'flashsystem_iscsi_portid')) cfg.iscsiPortId = int(raw, 'flashsystem_iscsi_portid', 0, 0, 64);
  if (targetIp !== undefined) cfg.targetIpAddress = targetIp;
  if (present(raw, 'flashsystem_lock_timeout')) cfg.lockTimeoutMs = int(raw, 'flashsystem_lock_timeout', 0, 1, 7 * 86400) * 1000;
  const vbn = str(raw, 'volume_backend_name');
  if (vbn !== undefined) cfg.volumeBackendName = vbn;
  return cfg;
}
