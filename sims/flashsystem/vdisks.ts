/**
 * The FlashSystem simulator's vdisk commands: `lsvdisk`, `mkvdisk`, `rmvdisk`,
 * `expandvdisksize`, `chvdisk`.
 *
 * @module
 */
import { CliError } from './errors.js';
import { lowestFree, NAME_RE, obj, optStr, str, UNITS, type Output, type ParsedCommand } from './command.js';
import { concise, detailed, fmtBytes } from './format.js';
import type { FlashSystemState, SimVdisk } from './state.js';

/** The detailed `lsvdisk` attributes of a vdisk. */
export function vdiskAttrs(s: FlashSystemState, v: SimVdisk, bytes: boolean): [string, string][] {
  const fcCount = [...s.fcmaps.values()].filter((m) => m.sourceId === v.id || m.targetId === v.id).length;
  return [
    ['id', String(v.id)],
    ['name', v.name],
    ['IO_group_id', String(v.ioGroupId)],
    ['IO_group_name', `io_grp${v.ioGroupId}`],
    ['status', v.status],
    ['mdisk_grp_id', '0'],
    ['mdisk_grp_name', s.poolName],
    ['capacity', bytes ? String(v.capacity) : fmtBytes(v.capacity)],
    ['type', 'striped'],
    ['formatted', 'yes'],
    ['vdisk_UID', v.uid],
    ['preferred_node_id', String(s.nodes.find((n) => n.ioGroupId === v.ioGroupId)?.id ?? '')],
    ['fast_write_state', 'empty'],
    ['cache', 'readwrite'],
    ['udid', ''],
    ['fc_map_count', String(fcCount)],
    ['sync_rate', '50'],
    ['copy_count', '1'],
    ['se_copy_count', '0'],
    ['open_access_scsi_id', ''],
    ['parent_mdisk_grp_id', '0'],
    ['parent_mdisk_grp_name', s.poolName],
  ];
}

/** `lsvdisk [-filtervalue k=v] [vdisk]`. */
export function lsvdisk(s: FlashSystemState, c: ParsedCommand, { delim, headerMismatch }: Output): string {
  const bytes = c.flags.has('bytes');
  if (c.obj !== undefined) {
    const v = s.findVdisk(c.obj);
    if (!v) throw new CliError('CMMVC5754E');
    return detailed(vdiskAttrs(s, v, bytes), delim);
  }
  const cols = ['id', 'name', 'IO_group_id', 'IO_group_name', 'status', 'mdisk_grp_id', 'mdisk_grp_name', 'capacity', 'type', 'vdisk_UID', 'fc_map_count'];
  let list = [...s.vdisks.values()].sort((a, b) => a.id - b.id);
  const filter = c.flags.get('filtervalue');
  if (typeof filter === 'string') {
    const m = /^(name|id|vdisk_UID)=(.*)$/.exec(filter);
    if (!m) throw new CliError('CMMVC5709E');
    const [, key, value] = m;
    list = list.filter((v) => (key === 'name' ? v.name === value : key === 'id' ? String(v.id) === value : v.uid === value));
  }
  return concise(
    cols,
    list.map((v) => {
      const a = new Map(vdiskAttrs(s, v, bytes));
      return cols.map((k) => a.get(k) ?? '');
    }),
    delim,
    headerMismatch,
  );
}

/** `mkvdisk`: a new vdisk in the pool (the backing creates its data first). */
export async function mkvdisk(s: FlashSystemState, c: ParsedCommand): Promise<string> {
  const name = str(c, 'name');
  const pool = str(c, 'mdiskgrp');
  const size = str(c, 'size');
  const unit = (optStr(c, 'unit') ?? 'mb').toLowerCase();
  const iogrp = optStr(c, 'iogrp') ?? '0';
  if (!NAME_RE.test(name) || name.endsWith(' ') || name.length > 63) throw new CliError('CMMVC6527E');
  if (pool !== s.poolName && pool !== '0') throw new CliError('CMMVC5754E');
  const iogrpId = Number(iogrp.replace(/^io_grp/, ''));
  if (!Number.isInteger(iogrpId) || !s.nodes.some((n) => n.ioGroupId === iogrpId)) throw new CliError('CMMVC5754E');
  if (!(unit in UNITS) || !/^\d+(\.\d+)?$/.test(size)) throw new CliError('CMMVC6070E');
  const capacity = Math.ceil(Number(size) * UNITS[unit]!);
  if (capacity <= 0) throw new CliError('CMMVC6070E');
  if (s.findVdisk(name)) throw new CliError('CMMVC6035E');
  if (s.poolStatus !== 'online') throw new CliError('CMMVC5786E');
  if (capacity > s.freeCapacity()) throw new CliError('CMMVC5860E');
  const id = lowestFree(s.vdisks.keys());
  const v: SimVdisk = { id, name, capacity, ioGroupId: iogrpId, status: 'online', uid: `60050768${s.systemId.slice(0, 8)}${String(id).padStart(16, '0')}`.toUpperCase() };
  await s.backing?.createVdisk?.(v);
  s.vdisks.set(id, v);
  return `Virtual Disk, id [${id}], successfully created\n`;
}

/** `rmvdisk [-force]`: refused while mapped or in a FlashCopy mapping unless forced. */
export async function rmvdisk(s: FlashSystemState, c: ParsedCommand): Promise<string> {
  const v = s.findVdisk(obj(c));
  if (!v) throw new CliError('CMMVC5753E');
  const maps = s.mappingsOf({ vdiskId: v.id });
  const fcs = [...s.fcmaps.values()].filter((m) => m.sourceId === v.id || m.targetId === v.id);
  if ((maps.length > 0 || fcs.length > 0) && !c.flags.has('force')) throw new CliError('CMMVC5840E');
  for (const m of maps) {
    const h = s.hosts.get(m.hostId)!;
    await s.backing?.unmapVdisk?.(v, h, m.scsiId);
    s.mappings.delete(m.id);
  }
  for (const f of fcs) s.fcmaps.delete(f.id);
  await s.backing?.deleteVdisk?.(v);
  s.vdisks.delete(v.id);
  return '';
}

/** `expandvdisksize`: grow by `-size` `-unit`. */
export async function expandvdisksize(s: FlashSystemState, c: ParsedCommand): Promise<string> {
  const v = s.findVdisk(obj(c));
  if (!v) throw new CliError('CMMVC5753E');
  const size = str(c, 'size');
  const unit = (optStr(c, 'unit') ?? 'mb').toLowerCase();
  if (!(unit in UNITS) || !/^\d+(\.\d+)?$/.test(size)) throw new CliError('CMMVC6070E');
  const delta = Math.ceil(Number(size) * UNITS[unit]!);
  if (delta <= 0) throw new CliError('CMMVC6070E');
  if ([...s.fcmaps.values()].some((m) => (m.sourceId === v.id || m.targetId === v.id) && m.status !== 'idle_or_copied' && m.status !== 'stopped')) throw new CliError('CMMVC5903E');
  if (delta > s.freeCapacity()) throw new CliError('CMMVC5860E');
  await s.backing?.resizeVdisk?.(v, v.capacity + delta);
  v.capacity += delta;
  return '';
}

/** `chvdisk -name`: rename. */
export function chvdisk(s: FlashSystemState, c: ParsedCommand): string {
  const v = s.findVdisk(obj(c));
  if (!v) throw new CliError('CMMVC5753E');
  const name = str(c, 'name');
  if (!NAME_RE.test(name) || name.endsWith(' ') || name.length > 63) throw new CliError('CMMVC6527E');
  const other = s.findVdisk(name);
  if (other && other !== v) throw new CliError('CMMVC6035E');
  v.name = name;
  return '';
}

/** The vdisk command family. */
export const VDISK_COMMANDS = { lsvdisk, mkvdisk, rmvdisk, expandvdisksize, chvdisk };
