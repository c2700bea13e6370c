/**
 * The FlashSystem simulator's FlashCopy commands: `lsfcmap`, `mkfcmap`, `prestartfcmap`,
 * `startfcmap` (the backing copies the data: the point in time), `stopfcmap`, `rmfcmap`. The
 * background copy progresses with time ({@link FlashSystemState.tick}). An array without
 * FlashCopy answers CMMVC7205E to all of them.
 *
 * @module
 */
import { CliError } from './errors.js';
import { lowestFree, obj, optStr, str, type Output, type ParsedCommand } from './command.js';
import { concise, detailed, svcTime } from './format.js';
import type { FlashSystemState, SimFcMap } from './state.js';

/** The FlashCopy mapping named or numbered `ref`. */
export function findFcMap(s: FlashSystemState, ref: string): SimFcMap | undefined {
  if (/^\d+$/.test(ref)) return s.fcmaps.get(Number(ref));
  for (const m of s.fcmaps.values()) if (m.name === ref) return m;
  return undefined;
}

/** The detailed `lsfcmap` attributes of a mapping. */
export function fcAttrs(s: FlashSystemState, m: SimFcMap): [string, string][] {
  const src = s.vdisks.get(m.sourceId);
  const t = s.vdisks.get(m.targetId);
  return [
    ['id', String(m.id)],
    ['name', m.name],
    ['source_vdisk_id', String(m.sourceId)],
    ['source_vdisk_name', src?.name ?? ''],
    ['target_vdisk_id', String(m.targetId)],
    ['target_vdisk_name', t?.name ?? ''],
    ['group_id', ''],
    ['group_name', ''],
    ['status', m.status],
    ['progress', String(m.progress)],
    ['copy_rate', String(m.copyRate)],
    ['clean_progress', '100'],
    ['incremental', 'off'],
    ['autodelete', m.autodelete ? 'on' : 'off'],
    ['start_time', m.startedAt !== undefined ? svcTime(m.startedAt) : ''],
  ];
}

/** The FlashCopy commands (`lsfcmap`, `mkfcmap`, `prestartfcmap`, `startfcmap`, `stopfcmap`, `rmfcmap`). */
export async function fc(s: FlashSystemState, c: ParsedCommand, { delim, headerMismatch }: Output): Promise<string> {
  switch (c.name) {
    case 'lsfcmap': {
      if (c.obj !== undefined) {
        const m = findFcMap(s, c.obj);
        if (!m) throw new CliError('CMMVC5754E');
        return detailed(fcAttrs(s, m), delim);
      }
      const cols = ['id', 'name', 'source_vdisk_id', 'source_vdisk_name', 'target_vdisk_id', 'target_vdisk_name', 'group_id', 'group_name', 'status', 'progress', 'copy_rate', 'clean_progress', 'incremental', 'start_time'];
      return concise(
        cols,
        [...s.fcmaps.values()].map((m) => {
          const a = new Map(fcAttrs(s, m));
          return cols.map((k) => a.get(k) ?? '');
        }),
        delim,
        headerMismatch,
      );
    }
    case 'mkfcmap': {
      const src = s.findVdisk(str(c, 'source'));
      const t = s.findVdisk(str(c, 'target'));
      if (!src || !t) throw new CliError('CMMVC5754E');
      if (src.id === t.id) throw new CliError('CMMVC5741E');
      if (src.capacity !== t.capacity) throw new CliError('CMMVC5924E');
      const rateText = optStr(c, 'copyrate') ?? '50';
      if (!/^\d+$/.test(rateText) || Number(rateText) > 150) throw new CliError('CMMVC6070E');
      const name = optStr(c, 'name');
      const id = lowestFree(s.fcmaps.keys());
      s.fcmaps.set(id, { id, name: name ?? `fcmap${id}`, sourceId: src.id, targetId: t.id, status: 'idle_or_copied', progress: 0, copyRate: Number(rateText), autodelete: c.flags.has('autodelete') });
      return `FlashCopy Mapping, id [${id}], successfully created\n`;
    }
    case 'prestartfcmap': {
      const m = findFcMap(s, obj(c));
      if (!m) throw new CliError('CMMVC5753E');
      if (m.status !== 'idle_or_copied' && m.status !== 'stopped') throw new CliError('CMMVC5903E');
      m.status = 'prepared';
      return '';
    }
    case 'startfcmap': {
      const m = findFcMap(s, obj(c));
      if (!m) throw new CliError('CMMVC5753E');
      if (c.flags.has('prep')) {
        if (m.status !== 'idle_or_copied' && m.status !== 'stopped' && m.status !== 'prepared') throw new CliError('CMMVC5903E');
      } else if (m.status !== 'prepared') throw new CliError('CMMVC5907E');
      const src = s.vdisks.get(m.sourceId)!;
      const t = s.vdisks.get(m.targetId)!;
      await s.backing?.copyVdisk?.(src, t);
      m.status = 'copying';
      m.progress = 0;
      m.startedAt = s.now();
      s.tick();
      return '';
    }
    case 'stopfcmap': {
      const m = findFcMap(s, obj(c));
      if (!m) throw new CliError('CMMVC5753E');
      if (m.status === 'copying' || m.status === 'prepared') m.status = 'stopped';
      return '';
    }
    case 'rmfcmap': {
      const m = findFcMap(s, obj(c));
      if (!m) throw new CliError('CMMVC5753E');
      if ((m.status === 'copying' || m.status === 'prepared') && !c.flags.has('force')) throw new CliError('CMMVC5903E');
      s.fcmaps.delete(m.id);
      return '';
    }
    default:
      throw new CliError('CMMVC6051E');
  }
}

function flashCopyCommand(s: FlashSystemState, c: ParsedCommand, o: Output): Promise<string> {
  if (!s.flashCopy) throw new CliError('CMMVC7205E');
  return fc(s, c, o);
}

/** The FlashCopy command family. */
export const FCMAP_COMMANDS = {
  lsfcmap: flashCopyCommand,
  mkfcmap: flashCopyCommand,
  prestartfcmap: flashCopyCommand,
  startfcmap: flashCopyCommand,
  stopfcmap: flashCopyCommand,
  rmfcmap: flashCopyCommand,
};
