/**
 * Fibre Channel on a Linux host, through sysfs: HBAs, remote target ports, targeted scans and
 * the `/dev/disk/by-path` names of FC LUNs.
 *
 * This is os-brick's `initiator/linuxfc.py` (`LinuxFibreChannel`):
 * - HBAs are the `/sys/class/fc_host/hostN` entries (`port_name`, `node_name`, `port_state`,
 *   and the real device path, whose PCI component names the by-path links);
 * - a target port seen by HBA `hostN` is `/sys/class/fc_transport/targetN:C:T` whose
 *   `port_name` is the target WWPN (fallback: `/sys/class/fc_remote_ports/rport-N:C-R` with its
 *   `scsi_target_id`, -1 meaning "not a SCSI target");
 * - scans are targeted: `"C T L"` into `/sys/class/scsi_host/hostN/scan` for every HBA that sees
 *   the target; only when no HBA sees it and wildcard scans are allowed (`enable_wildcard_scan`,
 *   default true) a `"- - L"` scan of the HBAs allowed to reach it;
 * - by-path names are `[platform-<x>-]pci-<pci>-fc-0x<wwpn>-lun-<lun>`, with LUNs of 256 and
 *   above written as os-brick's `_format_lun_id` writes them (`0x%04x%04x00000000`).
 *
 * Unlike os-brick it reads sysfs directly instead of running `grep` through a shell.
 *
 * @module
 */
import { basename } from 'node:path';
import type { HostContext } from './context.js';
import { listDir, readAttr, resolvePath } from './sysfs.js';
import { scanHost, type ScanAddress } from './scsi.js';

/** One FC HBA port (os-brick `get_fc_hbas_info`). */
export interface FcHba {
  /** `host6`. */
  hostDevice: string;
  /** SCSI host number, 6. */
  host: number;
  /** Port WWPN, 16 lower-case hex digits without `0x`. */
  portName: string;
  /** Node WWNN, same form. */
  nodeName: string;
  /** `Online`, `Linkdown`, `Offline`, `Blocked`, ... */
  portState: string;
  /** Real sysfs path of the fc_host device (`/sys/devices/pci0000:00/.../host6/fc_host/host6`). */
  devicePath: string;
}

/** Normalise a WWN: lower case, no `0x`, no colons. Pure. */
export function normaliseWwn(wwn: string): string {
  return wwn.trim().toLowerCase().replace(/^0x/, '').replace(/:/g, '');
}

/** Every FC HBA under `/sys/class/fc_host`, in host order, online or not. Never throws. */
export async function listFcHbas(ctx: HostContext): Promise<FcHba[]> {
  const names = (await listDir(ctx, '/sys/class/fc_host')).filter((h) => /^host\d+$/.test(h)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  const out: FcHba[] = [];
  for (const h of names) {
    const base = `/sys/class/fc_host/${h}`;
    const [portName, nodeName, portState, real] = await Promise.all([readAttr(ctx, `${base}/port_name`), readAttr(ctx, `${base}/node_name`), readAttr(ctx, `${base}/port_state`), resolvePath(ctx, base)]);
    if (!portName) {
      ctx.logger.warn({ hba: h }, 'fc: HBA without port_name skipped');
      continue;
    }
    out.push({ hostDevice: h, host: Number(h.slice(4)), portName: normaliseWwn(portName), nodeName: normaliseWwn(nodeName ?? ''), portState: portState ?? '', devicePath: real ?? base });
  }
  return out;
}

/** The HBAs whose `port_state` is `Online` (os-brick uses only these for connector properties and attaches). */
export async function onlineFcHbas(ctx: HostContext): Promise<FcHba[]> {
  return (await listFcHbas(ctx)).filter((h) => h.portState === 'Online');
}

/**
 * The `[platform, pci]` pair naming the by-path links of an HBA (os-brick `_get_pci_num`): the
 * path component just before the first `host*` or `net*` component, and `platform-<x>` when the
 * device sits under `/sys/devices/platform/.../pci...`. `pci` is undefined for an HBA with no
 * such component. Pure.
 */
export function pciOfHba(devicePath: string): { platform?: string; pci?: string } {
  const parts = devicePath.split('/');
  const hasPlatform = parts.length > 3 && parts[3] === 'platform';
  let platform: string | undefined;
  for (let i = 1; i < parts.length; i++) {
    const v = parts[i]!;
    if (hasPlatform && v.startsWith('pci') && platform === undefined) platform = `platform-${parts[i - 1]}`;
    if (v.startsWith('net') || v.startsWith('host')) return platform ? { platform, pci: parts[i - 1] } : { pci: parts[i - 1] };
  }
  return {};
}

/**
 * The LUN as it appears in by-path names (os-brick `process_lun_id`): unchanged below 256,
 * otherwise the 64-bit LUN with flat-space addressing in the first level: `0x%04x%04x00000000`
 * of (lun & 0xffff, lun >> 16 & 0xffff). Pure.
 */
export function formatFcLun(lun: number): string {
  if (lun < 256) return String(lun);
  const hex = (n: number) => n.toString(16).padStart(4, '0');
  return `0x${hex(lun & 0xffff)}${hex((lun >>> 16) & 0xffff)}00000000`;
}

/** `/dev/disk/by-path/[platform-x-]pci-<pci>-fc-0x<wwpn>-lun-<lun>` for one HBA, target and (addressed) LUN, or undefined without a PCI id. Pure. */
export function fcByPathName(hba: Pick<FcHba, 'devicePath'>, wwpn: string, lun: number): string | undefined {
  const { platform, pci } = pciOfHba(hba.devicePath);
  if (!pci) return undefined;
  return `/dev/disk/by-path/${platform ? `${platform}-` : ''}pci-${pci}-fc-0x${normaliseWwn(wwpn)}-lun-${formatFcLun(lun)}`;
}

/** Where HBA `host` sees target port `wwpn`: the SCSI channel and target id. */
export interface FcTargetAddress {
  channel: number;
  target: number;
}

/**
 * The SCSI channel and target id under which HBA `host` sees target port `wwpn`, from
 * `/sys/class/fc_transport/target<host>:C:T/port_name`, falling back to
 * `/sys/class/fc_remote_ports/rport-<host>:C-*` (`port_name`, `scsi_target_id`; -1 skipped).
 * Undefined when the HBA does not see the port.
 */
export async function findFcTarget(ctx: HostContext, host: number, wwpn: string): Promise<FcTargetAddress | undefined> {
  const want = normaliseWwn(wwpn);
  for (const t of await listDir(ctx, '/sys/class/fc_transport')) {
    const m = /^target(\d+):(\d+):(\d+)$/.exec(t);
    if (!m || Number(m[1]) !== host) continue;
    const pn = await readAttr(ctx, `/sys/class/fc_transport/${t}/port_name`);
    if (pn && normaliseWwn(pn) === want) return { channel: Number(m[2]), target: Number(m[3]) };
  }
  for (const r of await listDir(ctx, '/sys/class/fc_remote_ports')) {
    const m = /^rport-(\d+):(\d+)-\d+$/.exec(r);
    if (!m || Number(m[1]) !== host) continue;
    const pn = await readAttr(ctx, `/sys/class/fc_remote_ports/${r}/port_name`);
    if (!pn || normaliseWwn(pn) !== want) continue;
    const id = await readAttr(ctx, `/sys/class/fc_remote_ports/${r}/scsi_target_id`);
    if (id === undefined || id === '-1' || !/^\d+$/.test(id)) continue;
    return { channel: Number(m[2]), target: Number(id) };
  }
  return undefined;
}

/** One scan to issue: HBA and the `C T L` address (undefined parts are wildcards). */
export interface FcScan {
  hba: FcHba;
  address: ScanAddress;
}

/**
 * The scans os-brick's `rescan_hosts` would issue for `targets` (pairs of target WWPN and
 * addressed LUN) on `hbas`. `initiatorTargets` (from `initiator_target_lun_map`), when given,
 * limits each HBA to its own targets and drops HBAs it does not name. HBAs that see a target
 * get `C T L` scans; when none does and `wildcard` is true, every allowed HBA gets `- - L` for the
 * LUNs not found.
 */
export async function planFcScans(
  ctx: HostContext,
  hbas: readonly FcHba[],
  targets: readonly { wwpn: string; lun: number }[],
  options: { initiatorTargets?: Record<string, { wwpn: string; lun: number }[]>; wildcard?: boolean } = {},
): Promise<FcScan[]> {
  const map = options.initiatorTargets;
  const allowed = map ? hbas.filter((h) => map[h.portName] !== undefined) : [...hbas];
  const narrow: FcScan[] = [];
  const broad: FcScan[] = [];
  for (const hba of allowed) {
    const mine = map?.[hba.portName] ?? targets;
    const notFound = new Set<number>();
    let found = false;
    for (const t of mine) {
      const addr = await findFcTarget(ctx, hba.host, t.wwpn);
      if (addr) {
        found = true;
        narrow.push({ hba, address: { channel: addr.channel, target: addr.target, lun: t.lun } });
      } else {
        notFound.add(t.lun);
      }
    }
    if (!found && options.wildcard !== false) for (const lun of notFound) broad.push({ hba, address: { lun } });
  }
  return narrow.length > 0 ? narrow : broad;
}

/** Issue `scans` (targeted writes to `/sys/class/scsi_host/hostN/scan`), de-duplicated. */
export async function runFcScans(ctx: HostContext, scans: readonly FcScan[]): Promise<void> {
  const done = new Set<string>();
  for (const s of scans) {
    const key = `${s.hba.host} ${s.address.channel ?? '-'} ${s.address.target ?? '-'} ${s.address.lun ?? '-'}`;
    if (done.has(key)) continue;
    done.add(key);
    ctx.logger.debug({ hba: s.hba.hostDevice, wwnn: s.hba.nodeName, scan: key }, 'fc: scanning');
    await scanHost(ctx, s.hba.host, s.address);
  }
}

/** The block device (`sdb`) of SCSI address H:C:T:L, from `/sys/bus/scsi/devices/H:C:T:L/block`, or undefined. */
export async function fcBlockDevice(ctx: HostContext, host: number, channel: number, target: number, lun: number): Promise<string | undefined> {
  const names = await listDir(ctx, `/sys/bus/scsi/devices/${host}:${channel}:${target}:${lun}/block`);
  return names[0] ? basename(names[0]) : undefined;
}
