/**
 * Connector properties: what this host is, for a storage controller to export and map to.
 *
 * os-brick's `get_connector_properties(root_helper, my_ip, multipath, enforce_multipath,
 * host=None, execute=None)` as os-brick 6.1 (Debian bookworm) reports it, key for key: `platform`,
 * `os_type` (`sys.platform`: `linux`), `ip`, `host`, `multipath` (asked for *and* multipathd
 * running; with `enforce_multipath` and no multipathd it is an error), `do_local_attach` (the RBD
 * connector's, false), and, where the host has them, `initiator` (iSCSI IQN from
 * `/etc/iscsi/initiatorname.iscsi`), `wwpns` and `wwnns` (online ports under
 * `/sys/class/fc_host`), and the NVMe-oF connector's keys: `uuid` (the UUID of the file system
 * mounted on `/`, by `blkid`), `system uuid` (the DMI product UUID: `/sys/class/dmi/id/product_uuid`,
 * else `dmidecode -s system-uuid`), `nqn` (from `/etc/nvme/hostnqn`) and `nvme_native_multipath` (`/sys/module/nvme_core/parameters/multipath` is `Y`); the LightOS
 * connector's `found_dsc` (`'found'` when its discovery client answers on localhost:6060, else
 * `''`), reported with `nqn`. One key is Brick's beside os-brick 6.1's: `nvme_hostid` (from
 * `/etc/nvme/hostid`; later os-brick releases report it too).
 *
 * Files are read under the injectable host root. The program checks (multipathd, `blkid`,
 * `dmidecode`) run only when a host context with an executor is given; without
 * one, `multipath` is what was asked and the program-derived keys are left out.
 *
 * @module
 */
import { hostname, arch, networkInterfaces } from 'node:os';
import type { HostContext } from '../host/context.js';
import { listDir, readAttr } from '../host/sysfs.js';
import { ensureNvmeHostIdentity } from '../host/nvme.js';
import { request as httpRequest } from 'node:http';
import { InvalidInputError, InvalidStateError } from '../errors.js';
import { readMounts } from '../host/mount.js';
import { isMultipathdRunning } from '../host/multipath.js';

/** The connector properties document, with os-brick's keys. */
export interface ConnectorProperties {
  platform: string;
  os_type: string;
  ip: string;
  host: string;
  multipath: boolean;
  /** Not reported by os-brick 6.1 (nor by Brick); accepted in documents written by older versions. */
  enforce_multipath?: boolean;
  /** The RBD connector's `do_local_attach` (os-brick): false unless asked. */
  do_local_attach?: boolean;
  /** UUID of the file system on `/` (os-brick's NVMe-oF `uuid`). */
  uuid?: string;
  /** DMI product UUID (os-brick's NVMe-oF `system uuid`, the key has a space). */
  'system uuid'?: string;
  /** Whether the NVMe core does native multipath (`nvme_core.multipath=Y`). */
  nvme_native_multipath?: boolean;
  /** LightOS discovery client: `'found'` or `''` (os-brick's LightOS connector). */
  found_dsc?: string;
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
  /**
   * With `multipath`, fail when multipathd is not running instead of reporting `multipath:
   * false` (os-brick's `enforce_multipath`). Default false.
   */
  enforceMultipath?: boolean;
  /** os-brick's RBD `do_local_attach` keyword. Default false. */
  doLocalAttach?: boolean;
  /**
   * Host seams to run the program checks with (multipathd, blkid, dmidecode) and to
   * read the host's files under. Without it only files are read (see the module notes).
   */
  ctx?: HostContext;
  /** Port of the LightOS discovery client probed for `found_dsc` (default 6060, os-brick's); tests. */
  dscPort?: number;
  /**
   * With `ctx`, also run the programs behind the NVMe-oF keys (`blkid` for `uuid`, `dmidecode`
   * for `system uuid`) and probe `found_dsc`. Default true; the library passes false unless the
   * backend attaches over NVMe-oF, so an attach does not pay for processes no driver reads.
   * Their answers are kept for the life of the process (they do not change while it runs).
   */
  probePrograms?: boolean;
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
 * os-brick's LightOS `find_dsc`: `'found'` when an HTTP HEAD of `/metrics` on localhost `port`
 * answers 200 within a second, else `''`. Never throws.
 */
export function findDiscoveryClient(port = 6060): Promise<string> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'HEAD', path: '/metrics', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? 'found' : '');
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
    req.end();
  });
}

/** The first line of a program's output, or undefined when it fails or prints nothing. Never throws. */
async function firstLine(ctx: HostContext, argv: string[]): Promise<string | undefined> {
  try {
    const r = await ctx.executor.run(argv, { timeoutMs: 10_000, checkExitCode: true });
    return r.stdout.split('\n')[0]!.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** os-brick's NVMe-oF `_get_host_uuid`: the UUID `blkid` gives the source of `/` (by `findmnt`'s view, here `/proc/mounts`). */
async function rootFsUuid(ctx: HostContext): Promise<string | undefined> {
  const root = (await readMounts(ctx)).filter((m) => m.target === '/').pop();
  if (!root?.source.startsWith('/dev/')) return undefined;
  return firstLine(ctx, ['blkid', root.source, '-s', 'UUID', '-o', 'value']);
}

/** os-brick's `get_system_uuid`: `/sys/class/dmi/id/product_uuid`, else `dmidecode -s system-uuid` (may say `Not Settable`). */
async function systemUuid(ctx: HostContext): Promise<string | undefined> {
  return (await readTrim(ctx, '/sys/class/dmi/id/product_uuid')) ?? (await firstLine(ctx, ['dmidecode', '-s', 'system-uuid']));
}

/** Program answers per host root and port, kept for the life of the process. */
const probed = new Map<string, Promise<[string | undefined, string | undefined, string]>>();

/** The NVMe-oF connector's keys (os-brick 6.1 `NVMeOFConnector.get_connector_properties`) and LightOS's `found_dsc`. */
async function nvmeKeys(ctx: HostContext, dscPort: number, probe: boolean): Promise<Partial<ConnectorProperties>> {
  const key = `${ctx.hostRoot}\0${dscPort}`;
  if (probe && !probed.has(key)) probed.set(key, Promise.all([rootFsUuid(ctx), systemUuid(ctx), findDiscoveryClient(dscPort)]));
  const [[uuid, suuid, dsc], native] = await Promise.all([probe ? probed.get(key)! : Promise.resolve([undefined, undefined, ''] as [undefined, undefined, string]), readTrim(ctx, '/sys/module/nvme_core/parameters/multipath')]);
  const out: Partial<ConnectorProperties> = {};
  if (uuid) out.uuid = uuid;
  if (suuid) out['system uuid'] = suuid;
  out.nvme_native_multipath = native === 'Y';
  // os-brick's NVMe-oF connector reports the NQN only with nvme-cli installed, but its LightOS
  // connector reports it (with found_dsc) whenever /etc/nvme/hostnqn exists, and wins the merge.
  const nqn = await readTrim(ctx, '/etc/nvme/hostnqn');
  if (nqn) {
    out.nqn = nqn;
    out.found_dsc = dsc;
  }
  return out;
}

/**
 * This host's connector properties (see the module notes for each key and its source).
 * @throws {@link InvalidInputError} (field `myIp`) for a value that is not an IP address
 * @throws {@link InvalidStateError} with `multipath` and `enforceMultipath` when a host context
 *   is given and multipathd is not running (os-brick raises there too)
 */
export async function getConnectorProperties(options: ConnectorPropertiesOptions = {}): Promise<ConnectorProperties> {
  const ctx = options.ctx ?? { hostRoot: options.hostRoot ?? '/' };
  if (options.myIp !== undefined && !/^[0-9.]+$|:/.test(options.myIp)) throw new InvalidInputError('myIp', `${JSON.stringify(options.myIp)} is not an IP address`);
  let multipath = options.multipath ?? false;
  if (multipath && options.ctx && !(await isMultipathdRunning(options.ctx))) {
    if (options.enforceMultipath) throw new InvalidStateError('multipath is enforced but multipathd is not running: start it (systemctl start multipathd)', { field: 'enforceMultipath' });
    multipath = false;
  }
  const props: ConnectorProperties = {
    platform: platformName(),
    os_type: process.platform,
    ip: options.myIp ?? defaultIp(),
    host: options.host ?? hostname(),
    multipath,
  };
  if (options.ensureNvmeIdentity) await ensureNvmeHostIdentity(options.ensureNvmeIdentity);
  const iname = await readTrim(ctx, '/etc/iscsi/initiatorname.iscsi');
  const initiator = iname ? parseInitiatorName(iname) : undefined;
  if (initiator) props.initiator = initiator;
  const fc = await readFcPorts(ctx.hostRoot);
  if (fc.wwpns.length > 0) {
    props.wwpns = fc.wwpns;
    props.wwnns = fc.wwnns;
  }
  props.do_local_attach = options.doLocalAttach ?? false;
  if (options.ctx) Object.assign(props, await nvmeKeys(options.ctx, options.dscPort ?? 6060, options.probePrograms ?? true));
  else {
    const nqn = await readTrim(ctx, '/etc/nvme/hostnqn');
    if (nqn) props.nqn = nqn;
  }
  const hostid = await readTrim(ctx, '/etc/nvme/hostid');
  if (hostid) props.nvme_hostid = hostid;
  return props;
}
