/**
 * The FlashSystem simulator's host and mapping commands: `lshost`, `mkhost`, `addhostport`,
 * `rmhost`, `lshostvdiskmap`, `lsvdiskhostmap`, `mkvdiskhostmap`, `rmvdiskhostmap`.
 *
 * @module
 */
import { CliError } from './errors.js';
import { lowestFree, NAME_RE, obj, optStr, str, type Output, type ParsedCommand } from './command.js';
import { concise, detailed } from './format.js';
import type { FlashSystemState } from './state.js';

/** `lshost [host]`. */
export function lshost(s: FlashSystemState, c: ParsedCommand, { delim, headerMismatch }: Output): string {
  if (c.obj !== undefined) {
    const h = s.findHost(c.obj);
    if (!h) throw new CliError('CMMVC5754E');
    const attrs: [string, string][] = [
      ['id', String(h.id)],
      ['name', h.name],
      ['port_count', String(h.iscsiNames.length + h.wwpns.length)],
      ['type', 'generic'],
      ['mask', '1111111111111111111111111111111111111111111111111111111111111111'],
      ['iogrp_count', '4'],
      ['status', 'online'],
    ];
    for (const iqn of h.iscsiNames) {
      attrs.push(['iscsi_name', iqn]);
      attrs.push(['node_logged_in_count', '0']);
      attrs.push(['state', 'offline']);
    }
    for (const w of h.wwpns) {
      attrs.push(['WWPN', w]);
      attrs.push(['node_logged_in_count', '0']);
      attrs.push(['state', 'inactive']);
    }
    return detailed(attrs, delim);
  }
  if (s.hosts.size === 0) return '';
  return concise(
    ['id', 'name', 'port_count', 'iogrp_count', 'status'],
    [...s.hosts.values()].sort((a, b) => a.id - b.id).map((h) => [String(h.id), h.name, String(h.iscsiNames.length + h.wwpns.length), '4', 'online']),
    delim,
    headerMismatch,
  );
}

/** Refuse a malformed IQN or one another host has (CMMVC6581E). */
export function checkIqn(s: FlashSystemState, iqn: string): void {
  if (!/^(iqn\.\d{4}-\d{2}\.[A-Za-z0-9.:-]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32})$/.test(iqn) || iqn.length > 223) throw new CliError('CMMVC6581E');
  for (const h of s.hosts.values()) if (h.iscsiNames.some((x) => x.toLowerCase() === iqn.toLowerCase())) throw new CliError('CMMVC6581E');
}

/** `mkhost -iscsiname|-hbawwpn [-name]`. */
export function mkhost(s: FlashSystemState, c: ParsedCommand): string {
  const name = optStr(c, 'name');
  const iqn = optStr(c, 'iscsiname');
  const wwpn = optStr(c, 'hbawwpn');
  if (!iqn && !wwpn) throw new CliError('CMMVC5707E');
  if (name !== undefined) {
    if (!NAME_RE.test(name) || name.endsWith(' ') || name.length > 63) throw new CliError('CMMVC6527E');
    if (s.findHost(name)) throw new CliError('CMMVC6035E');
  }
  const iqns = iqn ? iqn.split(',') : [];
  for (const q of iqns) checkIqn(s, q);
  const wwpns = wwpn ? wwpn.split(':') : [];
  for (const w of wwpns) {
    if (!/^[0-9A-Fa-f]{16}$/.test(w)) throw new CliError('CMMVC5867E', 'The action failed because the worldwide port name is already assigned or is not valid.');
    for (const h of s.hosts.values()) if (h.wwpns.includes(w.toUpperCase())) throw new CliError('CMMVC5867E', 'The action failed because the worldwide port name is already assigned or is not valid.');
  }
  const id = lowestFree(s.hosts.keys());
  s.hosts.set(id, { id, name: name ?? `host${id}`, iscsiNames: iqns, wwpns: wwpns.map((w) => w.toUpperCase()) });
  return `Host, id [${id}], successfully created\n`;
}

/** `addhostport -iscsiname`. */
export function addhostport(s: FlashSystemState, c: ParsedCommand): string {
  const h = s.findHost(obj(c));
  if (!h) throw new CliError('CMMVC5753E');
  const iqn = optStr(c, 'iscsiname');
  if (!iqn) throw new CliError('CMMVC5707E');
  checkIqn(s, iqn);
  h.iscsiNames.push(iqn);
  return '';
}

/** `rmhost [-force]`: refused while the host has mappings unless forced. */
export function rmhost(s: FlashSystemState, c: ParsedCommand): string {
  const h = s.findHost(obj(c));
  if (!h) throw new CliError('CMMVC5753E');
  const maps = s.mappingsOf({ hostId: h.id });
  if (maps.length > 0 && !c.flags.has('force')) throw new CliError('CMMVC5871E');
  for (const m of maps) s.mappings.delete(m.id);
  s.hosts.delete(h.id);
  return '';
}

/** `lshostvdiskmap <host>`: the host's mappings with their SCSI ids. */
export function lshostvdiskmap(s: FlashSystemState, c: ParsedCommand, { delim, headerMismatch }: Output): string {
  const h = s.findHost(obj(c));
  if (!h) throw new CliError('CMMVC5754E');
  return concise(
    ['id', 'name', 'SCSI_id', 'vdisk_id', 'vdisk_name', 'vdisk_UID', 'IO_group_id', 'IO_group_name', 'mapping_type'],
    s.mappingsOf({ hostId: h.id }).map((m) => {
      const v = s.vdisks.get(m.vdiskId)!;
      return [String(h.id), h.name, String(m.scsiId), String(v.id), v.name, v.uid, String(v.ioGroupId), `io_grp${v.ioGroupId}`, 'private'];
    }),
    delim,
    headerMismatch,
  );
}

/** `lsvdiskhostmap <vdisk>`: the hosts a vdisk is mapped to. */
export function lsvdiskhostmap(s: FlashSystemState, c: ParsedCommand, { delim, headerMismatch }: Output): string {
  const v = s.findVdisk(obj(c));
  if (!v) throw new CliError('CMMVC5754E');
  const maps = s.mappingsOf({ vdiskId: v.id });
  if (maps.length === 0) return '';
  return concise(
    ['id', 'name', 'SCSI_id', 'host_id', 'host_name', 'vdisk_UID', 'IO_group_id', 'IO_group_name', 'mapping_type'],
    maps.map((m) => {
      const h = s.hosts.get(m.hostId)!;
      return [String(v.id), v.name, String(m.scsiId), String(h.id), h.name, v.uid, String(v.ioGroupId), `io_grp${v.ioGroupId}`, 'private'];
    }),
    delim,
    headerMismatch,
  );
}

/** `mkvdiskhostmap -host [-scsi] [-force]`: SCSI ids unique per host; a second host needs `-force`. */
export async function mkvdiskhostmap(s: FlashSystemState, c: ParsedCommand): Promise<string> {
  const hostRef = str(c, 'host');
  const v = s.findVdisk(obj(c));
  const h = s.findHost(hostRef);
  if (!v || !h) throw new CliError('CMMVC5753E');
  const scsiText = optStr(c, 'scsi');
  const hostMaps = s.mappingsOf({ hostId: h.id });
  if (hostMaps.some((m) => m.vdiskId === v.id)) throw new CliError('CMMVC5878E', 'The VDisk-to-host mapping was not created because this VDisk is already mapped to this host.');
  let scsiId: number;
  if (scsiText === undefined) {
    scsiId = 0;
    while (hostMaps.some((m) => m.scsiId === scsiId)) scsiId++;
  } else {
    if (!/^\d+$/.test(scsiText) || Number(scsiText) > 2047) throw new CliError('CMMVC6070E');
    scsiId = Number(scsiText);
    if (hostMaps.some((m) => m.scsiId === scsiId)) throw new CliError('CMMVC5879E');
  }
  if (s.mappingsOf({ vdiskId: v.id }).length > 0 && !c.flags.has('force')) throw new CliError(s.multiHostMapError);
  await s.backing?.mapVdisk?.(v, h, scsiId);
  const id = lowestFree(s.mappings.keys());
  s.mappings.set(id, { id, hostId: h.id, vdiskId: v.id, scsiId });
  return `Virtual Disk to Host map, id [${id}], successfully created\n`;
}

/** `rmvdiskhostmap -host`. */
export async function rmvdiskhostmap(s: FlashSystemState, c: ParsedCommand): Promise<string> {
  const h = s.findHost(str(c, 'host'));
  const v = s.findVdisk(obj(c));
  if (!v || !h) throw new CliError('CMMVC5753E');
  const m = s.mappingsOf({ hostId: h.id, vdiskId: v.id })[0];
  if (!m) throw new CliError('CMMVC5842E');
  await s.backing?.unmapVdisk?.(v, h, m.scsiId);
  s.mappings.delete(m.id);
  return '';
}

/** The host and mapping command family. */
export const HOST_COMMANDS = { lshost, mkhost, addhostport, rmhost, lshostvdiskmap, lsvdiskhostmap, mkvdiskhostmap, rmvdiskhostmap };
