/**
 * The FlashSystem simulator's system commands: `lssystem`, `lsmdiskgrp` (the one pool),
 * `lsiogrp`, `lsnode` and `lsportip`.
 *
 * @module
 */
import { CliError } from './errors.js';
import type { Output, ParsedCommand } from './command.js';
import { concise, detailed, fmtBytes } from './format.js';
import type { FlashSystemState, SimNode } from './state.js';

/** `lssystem`: the cluster's detailed view (`open_access_enabled` follows the state or the `open_access` fault). */
export function lssystem(s: FlashSystemState, _c: ParsedCommand, { delim, fault }: Output): string {
  return detailed(
    [
      ['id', s.systemId],
      ['name', s.systemName],
      ['location', 'local'],
      ['total_mdisk_capacity', fmtBytes(s.poolCapacity)],
      ['code_level', '8.5.0.0 (build 157.12.2203111203000)'],
      ['product_name', 'IBM FlashSystem (simulated)'],
      ['open_access_enabled', s.openAccessEnabled || fault?.kind === 'open_access' ? 'on' : 'off'],
    ],
    delim,
  );
}

/** `lsiogrp`: four I/O groups with their node, vdisk and host counts. */
export function lsiogrp(s: FlashSystemState, _c: ParsedCommand, { delim, headerMismatch }: Output): string {
  return concise(
    ['id', 'name', 'node_count', 'vdisk_count', 'host_count'],
    [0, 1, 2, 3].map((g) => [String(g), `io_grp${g}`, String(s.nodes.filter((n) => n.ioGroupId === g).length), String([...s.vdisks.values()].filter((v) => v.ioGroupId === g).length), String(g === 0 ? s.hosts.size : 0)]),
    delim,
    headerMismatch,
  );
}

/** `lsportip`: the IP ports of every node. */
export function lsportip(s: FlashSystemState, _c: ParsedCommand, { delim, headerMismatch }: Output): string {
  return concise(
    ['id', 'node_id', 'node_name', 'IP_address', 'mask', 'gateway', 'IP_address_6', 'prefix_6', 'gateway_6', 'MAC', 'duplex', 'state', 'speed', 'failover'],
    s.ports.map((p) => {
      const node = s.nodes.find((n) => n.id === p.nodeId);
      return [String(p.id), String(p.nodeId), node?.name ?? '', p.ip, p.ip ? '255.255.255.0' : '', p.ip ? p.ip.replace(/\.\d+$/, '.1') : '', p.ip6, p.ip6 ? '64' : '', '', `00:1a:64:00:${String(p.nodeId).padStart(2, '0')}:${String(p.id).padStart(2, '0')}`, 'Full', p.state, p.speed, p.failover ? 'yes' : 'no'];
    }),
    delim,
    headerMismatch,
  );
}

/** `lsmdiskgrp [pool]`: the pool, offline under the `pool_offline` fault. */
export function lsmdiskgrp(s: FlashSystemState, c: ParsedCommand, { delim, fault }: Output): string {
  const bytes = c.flags.has('bytes');
  const status = fault?.kind === 'pool_offline' ? 'offline' : s.poolStatus;
  const cap = (n: number): string => (bytes ? String(n) : fmtBytes(n));
  const used = s.poolCapacity - s.freeCapacity();
  const attrs: [string, string][] = [
    ['id', '0'],
    ['name', s.poolName],
    ['status', status],
    ['mdisk_count', '1'],
    ['vdisk_count', String(s.vdisks.size)],
    ['capacity', cap(s.poolCapacity)],
    ['extent_size', '1024'],
    ['free_capacity', cap(s.freeCapacity())],
    ['virtual_capacity', cap(used)],
    ['used_capacity', cap(used)],
    ['real_capacity', cap(used)],
    ['overallocation', String(Math.round((used / s.poolCapacity) * 100))],
    ['warning', '80'],
  ];
  if (c.obj === undefined) {
    return concise(
      attrs.map(([k]) => k),
      [attrs.map(([, v]) => v)],
      delim,
      false,
    );
  }
  if (c.obj !== s.poolName && c.obj !== '0') throw new CliError('CMMVC5754E');
  return detailed(attrs, delim);
}

/** `lsnode [node]`. */
export function lsnode(s: FlashSystemState, c: ParsedCommand, { delim, headerMismatch }: Output): string {
  const row = (n: SimNode): string[] => [
    String(n.id),
    n.name,
    '',
    n.wwnn,
    n.status,
    String(n.ioGroupId),
    `io_grp${n.ioGroupId}`,
    n.configNode ? 'yes' : 'no',
    '',
    'SV1',
    n.iscsiName,
    '',
    `7800${n.id}0`,
    '',
    '',
    '',
  ];
  const header = ['id', 'name', 'UPS_serial_number', 'WWNN', 'status', 'IO_group_id', 'IO_group_name', 'config_node', 'UPS_unique_id', 'hardware', 'iscsi_name', 'iscsi_alias', 'panel_name', 'enclosure_id', 'canister_id', 'enclosure_serial_number'];
  if (c.obj !== undefined) {
    const n = s.nodes.find((x) => String(x.id) === c.obj || x.name === c.obj);
    if (!n) throw new CliError('CMMVC5754E');
    const r = row(n);
    return detailed(
      header.map((h, i) => [h, r[i]!] as [string, string]),
      delim,
    );
  }
  return concise(header, s.nodes.map(row), delim, headerMismatch);
}

/** The system command family. */
export const SYSTEM_COMMANDS = { lssystem, lsmdiskgrp, lsiogrp, lsnode, lsportip };
