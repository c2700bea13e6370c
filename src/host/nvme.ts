/**
 * NVMe over Fabrics on the host: controllers and namespaces read from sysfs, `nvme-cli` to
 * connect, rescan and disconnect, and the host's NVMe identity (host NQN and host id).
 *
 * Layout followed (Linux 5.x/6.x):
 * - `/sys/class/nvme/nvmeX` (a link to `/sys/devices/virtual/nvme-fabrics/ctl/nvmeX`) holds a
 *   controller's `subsysnqn`, `transport` (`tcp`, `rdma`, `fc`, `loop`), `address`
 *   (`traddr=10.0.0.1,trsvcid=4420[,src_addr=...]`), `state` (`live`, `connecting`, `resetting`,
 *   `deleting`, `new`), `hostnqn` and one entry per namespace path: `nvmeXnY` without native
 *   multipath, `nvmeScXnY` (hidden path of the head `nvmeSnY`, S the subsystem instance) with it.
 * - `/sys/class/nvme-subsystem/nvme-subsysS` holds `subsysnqn`, links to its controllers and,
 *   under native multipath, the namespace heads `nvmeSnY`.
 * - `/sys/block/nvmeSnY` holds the namespace's `uuid`, `nguid`, `nsid`, `wwid` and `size`.
 * - `/sys/module/nvme_core/parameters/multipath` is `Y` when native NVMe multipath is on.
 *
 * This is the host half of os-brick's `connectors/nvmeof.py` (`Portal`, `Target`,
 * `NVMeOFConnProps`, `get_nvme_controllers`, `_try_disconnect_all`) and its privileged
 * `create_hostnqn` / `create_hostid`.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { HostContext } from './context.js';
import { makeHostDir } from './files.js';
import { listDir, readAttr, writeFilePrivate } from './sysfs.js';
import { ProcessExecutionError, TargetPortalLoginError } from '../errors.js';

/** Timeout for `nvme connect` (ms): the kernel's own connect timeout is a few seconds per queue. */
export const NVME_CONNECT_TIMEOUT_MS = 60_000;
/** Timeout for other short nvme-cli calls (ms). */
export const NVME_COMMAND_TIMEOUT_MS = 30_000;

/** Parsed `address` attribute of a fabrics controller. */
export interface NvmeFabricsAddress {
  traddr?: string;
  trsvcid?: string;
  src_addr?: string;
  host_traddr?: string;
}

/**
 * Parse a controller's `address` attribute (`traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.2`).
 * Pure. Unknown keys are kept; whitespace and a trailing NUL are ignored.
 */
export function parseFabricsAddress(text: string): NvmeFabricsAddress & Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.replace(/\0/g, '').trim().split(',')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** One NVMe controller as sysfs shows it. */
export interface NvmeController {
  /** Controller name, `nvme0`. Its character device is `/dev/nvme0`. */
  name: string;
  subsysnqn: string;
  /** `tcp`, `rdma`, `fc`, `loop`, or `pcie` for local drives. */
  transport: string;
  /** Target address (`traddr`), empty for PCIe. */
  traddr: string;
  /** Target service id (port) as text, empty for PCIe. */
  trsvcid: string;
  /** `live`, `connecting`, `resetting`, `deleting`, `new`, ... */
  state: string;
  /** Host NQN the controller was connected with, when the kernel exposes it. */
  hostnqn?: string;
  /** Namespace path entries under the controller (`nvme0n1`, or `nvme1c0n1` with native multipath). */
  paths: string[];
}

/** Read every controller under `/sys/class/nvme`, sorted by instance number. Never throws. */
export async function listNvmeControllers(ctx: Pick<HostContext, 'hostRoot'>): Promise<NvmeController[]> {
  const base = '/sys/class/nvme';
  const names = (await listDir(ctx, base)).filter((n) => /^nvme\d+$/.test(n)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  const out: NvmeController[] = [];
  for (const name of names) {
    const dir = `${base}/${name}`;
    const [subsysnqn, transport, address, state, hostnqn, entries] = await Promise.all([
      readAttr(ctx, `${dir}/subsysnqn`),
      readAttr(ctx, `${dir}/transport`),
      readAttr(ctx, `${dir}/address`),
      readAttr(ctx, `${dir}/state`),
      readAttr(ctx, `${dir}/hostnqn`),
      listDir(ctx, dir),
    ]);
    if (subsysnqn === undefined) continue;
    const addr = parseFabricsAddress(address ?? '');
    const c: NvmeController = {
      name,
      subsysnqn,
      transport: transport ?? '',
      traddr: addr.traddr ?? '',
      trsvcid: addr.trsvcid ?? '',
      state: state ?? '',
      paths: entries.filter((e) => /^nvme\d+(c\d+)?n\d+$/.test(e)).sort(),
    };
    if (hostnqn) c.hostnqn = hostnqn;
    out.push(c);
  }
  return out;
}

/**
 * The block device name for a namespace path entry: `nvme1c0n2` is a hidden path of the
 * head `nvme1n2`; `nvme0n1` is itself. Pure.
 */
export function namespaceHeadName(pathEntry: string): string {
  const m = /^nvme(\d+)c\d+n(\d+)$/.exec(pathEntry);
  return m ? `nvme${m[1]}n${m[2]}` : pathEntry;
}

/** One namespace block device with its identifiers. */
export interface NvmeNamespace {
  /** Block device name, `nvme0n1`. */
  name: string;
  /** Controllers this namespace is reached through. */
  controllers: string[];
  /** Namespace id (decimal). */
  nsid?: number;
  /** Namespace UUID, lower case with dashes, when the target reports one. */
  uuid?: string;
  /** Namespace GUID as 32 lower-case hex digits (no dashes), when reported and non-zero. */
  nguid?: string;
  /** `wwid` attribute (`uuid.…`, `eui.…` or `nvme.…`). */
  wwid?: string;
}

/** Normalise a UUID or NGUID for comparison: lower case, dashes removed. Pure. */
export function normaliseNvmeId(id: string): string {
  return id.trim().toLowerCase().replace(/-/g, '');
}

function isZeroId(id: string | undefined): boolean {
  return id === undefined || id === '' || /^0+$/.test(normaliseNvmeId(id));
}

/**
 * Namespaces reachable through `controllers`, merged by block device (a head shared by
 * several controllers appears once, with all of them). Identifiers come from
 * `/sys/block/<name>/` with the controller's path entry as fallback.
 */
export async function namespacesOf(ctx: Pick<HostContext, 'hostRoot'>, controllers: readonly NvmeController[]): Promise<NvmeNamespace[]> {
  const byName = new Map<string, NvmeNamespace>();
  for (const c of controllers) {
    for (const entry of c.paths) {
      const name = namespaceHeadName(entry);
      let ns = byName.get(name);
      if (!ns) {
        const blk = `/sys/block/${name}`;
        const alt = `/sys/class/nvme/${c.name}/${entry}`;
        const read = async (attr: string) => (await readAttr(ctx, `${blk}/${attr}`)) ?? (await readAttr(ctx, `${alt}/${attr}`));
        const [nsid, uuid, nguid, wwid] = await Promise.all([read('nsid'), read('uuid'), read('nguid'), read('wwid')]);
        ns = { name, controllers: [] };
        if (nsid !== undefined && /^\d+$/.test(nsid)) ns.nsid = Number(nsid);
        if (!isZeroId(uuid)) ns.uuid = uuid!.toLowerCase();
        if (!isZeroId(nguid)) ns.nguid = normaliseNvmeId(nguid!);
        if (wwid) ns.wwid = wwid;
        byName.set(name, ns);
      }
      if (!ns.controllers.includes(c.name)) ns.controllers.push(c.name);
    }
  }
  return [...byName.values()];
}

/** How to pick the volume's namespace. */
export interface NamespaceSelector {
  uuid?: string;
  nguid?: string;
  nsid?: number;
}

/**
 * The namespace matching `sel`: by UUID first, then NGUID, then namespace id, the order
 * os-brick uses (a UUID names one volume everywhere; an nsid only within one subsystem).
 * When no identifier is given and exactly one namespace exists, that one. Pure.
 */
export function selectNamespace(namespaces: readonly NvmeNamespace[], sel: NamespaceSelector): NvmeNamespace | undefined {
  if (sel.uuid) {
    const want = normaliseNvmeId(sel.uuid);
    const hit = namespaces.find((n) => n.uuid !== undefined && normaliseNvmeId(n.uuid) === want);
    if (hit) return hit;
    // A target may report the volume's UUID only as the NGUID.
    const viaNguid = namespaces.find((n) => n.nguid === want);
    if (viaNguid) return viaNguid;
  }
  if (sel.nguid) {
    const want = normaliseNvmeId(sel.nguid);
    const hit = namespaces.find((n) => n.nguid === want);
    if (hit) return hit;
  }
  if (sel.nsid !== undefined) {
    const hit = namespaces.find((n) => n.nsid === sel.nsid);
    if (hit) return hit;
  }
  if (!sel.uuid && !sel.nguid && sel.nsid === undefined && namespaces.length === 1) return namespaces[0];
  return undefined;
}

/**
 * True when native NVMe multipath is on (`/sys/module/nvme_core/parameters/multipath` is `Y`).
 * A kernel without the parameter (module not loaded, or built without CONFIG_NVME_MULTIPATH) is off.
 */
export async function nativeNvmeMultipathEnabled(ctx: Pick<HostContext, 'hostRoot'>): Promise<boolean> {
  const v = await readAttr(ctx, '/sys/module/nvme_core/parameters/multipath');
  return v === 'Y' || v === 'y' || v === '1';
}

/** One target portal: address, port and transport (`tcp` or `rdma`). */
export interface NvmePortal {
  address: string;
  port: number;
  transport: 'tcp' | 'rdma';
}

/** True when controller `c` is the connection to `nqn` through `portal`. Source address is ignored (os-brick bug 2035811). */
export function controllerMatches(c: NvmeController, nqn: string, portal: NvmePortal): boolean {
  return c.subsysnqn === nqn && c.transport === portal.transport && c.traddr === portal.address && c.trsvcid === String(portal.port);
}

/** Options for {@link nvmeConnect}. */
export interface NvmeConnectOptions {
  /** Host NQN to connect as (`-q`). */
  hostnqn?: string;
  /** Host id to connect as (`-I`). */
  hostid?: string;
  /** `ctrl_loss_tmo` in seconds; -1 (default, os-brick's choice since bug 1964385) retries forever. */
  ctrlLossTmo?: number;
  /** Queue depth (`-Q`); default 128 as os-brick. */
  queueSize?: number;
  timeoutMs?: number;
}

/**
 * `nvme connect -t <transport> -a <addr> -s <port> -n <nqn> -Q 128 -l -1 [-q hostnqn] [-I hostid]`.
 * An "already connected" answer (exit 70 / EALREADY 114, or text saying so) counts as success,
 * as in os-brick (two attaches racing for the same portal).
 * @returns true when this call made a new connection, false when it was already there
 * @throws {@link TargetPortalLoginError} when the connect fails for another reason
 */
export async function nvmeConnect(ctx: HostContext, nqn: string, portal: NvmePortal, options: NvmeConnectOptions = {}): Promise<boolean> {
  const argv = ['nvme', 'connect', '-t', portal.transport, '-a', portal.address, '-s', String(portal.port), '-n', nqn,
    '-Q', String(options.queueSize ?? 128), '-l', String(options.ctrlLossTmo ?? -1)];
  if (options.hostnqn) argv.push('-q', options.hostnqn);
  if (options.hostid) argv.push('-I', options.hostid);
  const r = await ctx.executor.run(argv, { timeoutMs: options.timeoutMs ?? NVME_CONNECT_TIMEOUT_MS, checkExitCode: false });
  if (r.exitCode === 0) return true;
  const text = `${r.stdout}\n${r.stderr}`;
  if (r.exitCode === 70 || r.exitCode === 114 || /already (connected|exists)/i.test(text)) return false;
  throw new TargetPortalLoginError(`nvme connect to ${portal.transport}://${portal.address}:${portal.port} (${nqn}) failed with status ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`, {
    field: 'portals',
    cause: new ProcessExecutionError(argv, r.exitCode, r.stdout, r.stderr),
    details: { portal: `${portal.address}:${portal.port}`, transport: portal.transport, nqn, exit_code: r.exitCode },
  });
}

/** `nvme disconnect -d /dev/<controller>`: removes one controller (and its namespaces' paths). */
export async function nvmeDisconnectController(ctx: HostContext, controller: string, timeoutMs = NVME_COMMAND_TIMEOUT_MS): Promise<void> {
  await ctx.executor.run(['nvme', 'disconnect', '-d', `/dev/${controller}`], { timeoutMs });
}

/** `nvme ns-rescan /dev/<controller>`: asks a live controller for its namespace list (targets may not send an AER). */
export async function nvmeNsRescan(ctx: HostContext, controller: string, timeoutMs = NVME_COMMAND_TIMEOUT_MS): Promise<void> {
  await ctx.executor.run(['nvme', 'ns-rescan', `/dev/${controller}`], { timeoutMs });
}

/**
 * The namespace size in bytes the target reports, from `nvme id-ns /dev/<ns> -o json`
 * (`nsze` blocks of 2^`lbafs[flbas & 0xf].ds` bytes). Pure parse of that JSON.
 * @returns undefined when the document lacks the fields
 */
export function parseIdNsSize(json: string): number | undefined {
  try {
    const d = JSON.parse(json) as { nsze?: number; flbas?: number; lbafs?: { ds?: number }[] };
    if (typeof d.nsze !== 'number' || !Array.isArray(d.lbafs)) return undefined;
    const fmt = d.lbafs[(d.flbas ?? 0) & 0xf];
    if (!fmt || typeof fmt.ds !== 'number') return undefined;
    return d.nsze * 2 ** fmt.ds;
  } catch {
    return undefined;
  }
}

/** The dm device (`dm-3`) holding block device `name` (`/sys/block/<name>/holders`), if any. */
export async function dmHolderOf(ctx: Pick<HostContext, 'hostRoot'>, name: string): Promise<string | undefined> {
  const holders = await listDir(ctx, `/sys/block/${name}/holders`);
  return holders.find((h) => /^dm-\d+$/.test(h));
}

/** The dm map name (`/sys/block/dm-N/dm/name`), the WWID for multipath maps without friendly names. */
export async function dmNameOf(ctx: Pick<HostContext, 'hostRoot'>, dm: string): Promise<string | undefined> {
  return readAttr(ctx, `/sys/block/${dm}/dm/name`);
}

/** The NVMe host identity: host NQN and host id (a UUID). */
export interface NvmeHostIdentity {
  hostnqn: string;
  hostid: string;
}

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/** Create `/etc/nvme` when missing and write identity file `path` (mode 0644) as root, the one privileged-write way. */
async function writeIdentityFile(ctx: HostContext, path: string, content: string): Promise<void> {
  await makeHostDir(ctx, '/etc/nvme');
  await writeFilePrivate(ctx, path, content, 0o644);
}

/**
 * Make sure `/etc/nvme/hostnqn` and `/etc/nvme/hostid` exist (mode 0644) and return them, as
 * os-brick's `create_hostnqn` / `create_hostid` do (bug 2016029: the host id is persisted so
 * it stays the same across connects; the kernel rejects one host id used with two host NQNs).
 *
 * A missing host NQN is generated by `nvme gen-hostnqn` (which derives it from the machine's
 * DMI UUID where there is one), falling back to `nqn.2014-08.org.nvmexpress:uuid:<random uuid>`
 * when nvme-cli is absent. A missing host id is the UUID inside the host NQN when it has one,
 * else a random UUID. Existing files are never changed.
 * @throws {@link HostIoError} when a file cannot be written (e.g. a read-only `/etc`), or
 * ProcessExecutionError from `tee` / `mkdir` when the write goes through the root helper
 */
export async function ensureNvmeHostIdentity(ctx: HostContext): Promise<NvmeHostIdentity> {
  const nqnPath = '/etc/nvme/hostnqn';
  const idPath = '/etc/nvme/hostid';
  let hostnqn = await readAttr(ctx, nqnPath);
  if (!hostnqn) {
    try {
      const r = await ctx.executor.run(['nvme', 'gen-hostnqn'], { timeoutMs: NVME_COMMAND_TIMEOUT_MS, root: false });
      const line = r.stdout.trim().split('\n')[0]?.trim();
      if (line && line.startsWith('nqn.')) hostnqn = line;
    } catch (err) {
      ctx.logger.debug({ err: (err as Error).message }, 'nvme gen-hostnqn failed; generating a host NQN from a random UUID');
    }
    hostnqn ??= `nqn.2014-08.org.nvmexpress:uuid:${randomUUID()}`;
    await writeIdentityFile(ctx, nqnPath, `${hostnqn}\n`);
    ctx.logger.info({ hostnqn }, 'created /etc/nvme/hostnqn');
  }
  let hostid = await readAttr(ctx, idPath);
  if (!hostid) {
    hostid = (UUID_RE.exec(hostnqn)?.[0] ?? randomUUID()).toLowerCase();
    await writeIdentityFile(ctx, idPath, `${hostid}\n`);
    ctx.logger.info({ hostid }, 'created /etc/nvme/hostid');
  }
  return { hostnqn, hostid };
}

