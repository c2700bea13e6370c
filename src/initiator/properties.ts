/**
 * Connector properties: what this host is, for a storage controller to export and map to.
 *
 * os-brick's `get_connector_properties(root_helper, my_ip, multipath, enforce_multipath,
 * host=None, execute=None)`: the keys `platform`, `os_type`, `ip`, `host`, `multipath`,
 * `enforce_multipath`, and, where the host has them, `initiator` (iSCSI IQN from
 * `/etc/iscsi/initiatorname.iscsi`), `nqn` and `nvme_hostid` (from `/etc/nvme/hostnqn` and
 * `/etc/nvme/hostid`), `wwpns` and `wwnns` (online ports under `/sys/class/fc_host`). Everything
 * is read under the injectable host root; nothing runs.
 *
 * @module
 */
import { hostname, arch, networkInterfaces } from 'node:os';
import type { HostContext } from '../host/context.js';
import { listDir, readAttr } from '../host/sysfs.js';
import { ensureNvmeHostIdentity } from '../host/nvme.js';
import { InvalidInputError } from '../errors.js';

/** The connector properties document, with os-brick's keys. */
export interface ConnectorProperties {
  platform: string;
  os_type: string;
  ip: string;
  host: string;
  multipath: boolean;
  enforce_multipath: boolean;
  /** iSCSI initiator IQN. */
  initiator?: string;
  /** NVMe host NQN. */
  nqn?: string;
  /** NVMe host id (a UUID). */
  nvme_hostid?: string;
  /** FC port WWPNs of online HBAs (lower-case hex, no `0x`). */
  wwpns?: string[];
  /** FC node WWNNs of online HBAs. */
  wwnns?: string[];
  /** Extra keys added by callers or later protocols. */
  [key: string]: unknown;
}

/** Options for {@link getConnectorProperties}, os-brick's argument names in camelCase. */
export interface ConnectorPropertiesOptions {
  /** Accepted for os-brick parity; reading these files needs no privilege. */
  rootHelper?: readonly string[];
  /** IP this host is reached on; default: the first non-internal IPv4 address, else 127.0.0.1. */
  myIp?: string;
  /** Whether this host wants multipath. Default false. */
  multipath?: boolean;
  /** Fail attaches that cannot get multipath. Default false. */
  enforceMultipath?: boolean;
  /** Host name to report; default `os.hostname()`. */
  host?: string;
  /** Filesystem root under which `/etc` and `/sys` are read. Default `/`. */
  hostRoot?: string;
  /**
   * Create the NVMe host NQN and host id (`/etc/nvme/hostnqn`, `/etc/nvme/hostid`) when missing,
   * as os-brick's NVMe-oF connector does while gathering connector properties. Needs the host
   * seams to write with. Default: off (reading only).
   */
  ensureNvmeIdentity?: HostContext;
}

/** The trimmed text of host file `p` under the root, or `undefined` when it is missing or empty. */
async function readTrim(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<string | undefined> {
  return (await readAttr(ctx, p)) || undefined;
}

/** Parse `/etc/iscsi/initiatorname.iscsi` (`InitiatorName=iqn...`, comments ignored). Pure. */
export function parseInitiatorName(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const m = /^\s*InitiatorName\s*=\s*(\S+)\s*$/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

function defaultIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function platformName(): string {
  return arch() === 'x64' ? 'x86_64' : arch() === 'arm64' ? 'aarch64' : arch();
}

/** WWPNs and WWNNs of FC HBAs whose `port_state` is `Online`, in host order. */
export async function readFcPorts(hostRoot: string): Promise<{ wwpns: string[]; wwnns: string[] }> {
  const ctx = { hostRoot };
  const base = '/sys/class/fc_host';
  const hbas = (await listDir(ctx, base)).filter((h) => /^host\d+$/.test(h)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  const wwpns: string[] = [];
  const wwnns: string[] = [];
  for (const h of hbas) {
    const state = await readTrim(ctx, `${base}/${h}/port_state`);
    if (state !== 'Online') continue;
    const p = await readTrim(ctx, `${base}/${h}/port_name`);
    const n = await readTrim(ctx, `${base}/${h}/node_name`);
    if (p) wwpns.push(p.replace(/^0x/i, '').toLowerCase());
    if (n) wwnns.push(n.replace(/^0x/i, '').toLowerCase());
  }
  return { wwpns, wwnns };
}

/**
 * This host's connector properties.
 * @throws {@link InvalidInputError} (field `myIp`) for a value that is not an IP address
 */
export async function getConnectorProperties(options: ConnectorPropertiesOptions = {}): Promise<ConnectorProperties> {
  const ctx = { hostRoot: options.hostRoot ?? '/' };
  if (options.myIp !== undefined && !/^[0-9.]+$|:/.test(options.myIp)) throw new InvalidInputError('myIp', `${JSON.stringify(options.myIp)} is not an IP address`);
  const props: ConnectorProperties = {
    platform: platformName(),
    os_type: process.platform === 'linux' ? 'linux2' : process.platform,
    ip: options.myIp ?? defaultIp(),
    host: options.host ?? hostname(),
    multipath: options.multipath ?? false,
    enforce_multipath: options.enforceMultipath ?? false,
  };
  if (options.ensureNvmeIdentity) await ensureNvmeHostIdentity(options.ensureNvmeIdentity);
  const iname = await readTrim(ctx, '/etc/iscsi/initiatorname.iscsi');
  const initiator = iname ? parseInitiatorName(iname) : undefined;
  if (initiator) props.initiator = initiator;
  const nqn = await readTrim(ctx, '/etc/nvme/hostnqn');
  if (nqn) props.nqn = nqn;
  const hostid = await readTrim(ctx, '/etc/nvme/hostid');
  if (hostid) props.nvme_hostid = hostid;
  const fc = await readFcPorts(ctx.hostRoot);
  if (fc.wwpns.length > 0) {
    props.wwpns = fc.wwpns;
    props.wwnns = fc.wwnns;
  }
  return props;
}
