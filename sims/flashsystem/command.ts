/**
 * The FlashSystem simulator's command line parsing: `[svcinfo|svctask] <command> [-flag [value]]...
 * [object]`, as the array's restricted shell reads it, with the CLI's errors for unknown or
 * repeated flags and missing values; plus the small helpers the command families share.
 *
 * @module
 */
import { CliError } from './errors.js';
import type { SimFault } from './state.js';

/** One parsed command line. */
export interface ParsedCommand {
  prefix: 'svcinfo' | 'svctask' | '';
  name: string;
  flags: Map<string, string | true>;
  obj?: string;
}

/** How a command's output is shaped and which injected fault applies to it. */
export interface Output {
  /** `-delim` (undefined: aligned columns). */
  delim: string | undefined;
  /** Drop the last header column (the `header_mismatch` fault). */
  headerMismatch: boolean;
  fault: SimFault | undefined;
}

/** Flags that take a value; the others below are switches. */
const VALUE_FLAGS = new Set([
  'delim',
  'host',
  'iogrp',
  'iscsiname',
  'hbawwpn',
  'mdiskgrp',
  'name',
  'scsi',
  'size',
  'unit',
  'source',
  'target',
  'copyrate',
  'cleanrate',
  'filtervalue',
]);
const BOOL_FLAGS = new Set(['bytes', 'force', 'autodelete', 'prep', 'nohdr']);
/** Object names the CLI accepts. */
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9 ._-]*$/;
/** `-unit` multipliers. */
export const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4, pb: 1024 ** 5 };

/** Parse the words of a command line. @throws {@link CliError} as the CLI reports bad syntax */
export function parseCommand(words: string[]): ParsedCommand {
  if (words.length === 0) throw new CliError('CMMVC6051E');
  let prefix: ParsedCommand['prefix'] = '';
  let i = 0;
  if (words[0] === 'svcinfo' || words[0] === 'svctask') {
    prefix = words[0];
    i = 1;
  }
  const name = words[i++];
  if (!name) throw new CliError('CMMVC6051E');
  const flags = new Map<string, string | true>();
  let objRef: string | undefined;
  for (; i < words.length; i++) {
    const w = words[i]!;
    if (w.startsWith('-') && w.length > 1 && !/^-\d/.test(w)) {
      const f = w.slice(1);
      if (flags.has(f)) throw new CliError('CMMVC6070E');
      if (BOOL_FLAGS.has(f)) flags.set(f, true);
      else if (VALUE_FLAGS.has(f)) {
        const v = words[++i];
        if (v === undefined) throw new CliError('CMMVC6070E');
        flags.set(f, v);
      } else throw new CliError('CMMVC5709E', `[-${f}] is not a supported parameter.`);
    } else {
      if (objRef !== undefined) throw new CliError('CMMVC6070E');
      objRef = w;
    }
  }
  return { prefix, name, flags, ...(objRef !== undefined ? { obj: objRef } : {}) };
}

/** The value of a required flag. @throws {@link CliError} CMMVC5707E when absent */
export function str(c: ParsedCommand, flag: string): string {
  const v = c.flags.get(flag);
  if (typeof v !== 'string') throw new CliError('CMMVC5707E');
  return v;
}

/** The value of an optional flag. */
export function optStr(c: ParsedCommand, flag: string): string | undefined {
  const v = c.flags.get(flag);
  return typeof v === 'string' ? v : undefined;
}

/** The object operand. @throws {@link CliError} CMMVC5701E when absent */
export function obj(c: ParsedCommand): string {
  if (c.obj === undefined) throw new CliError('CMMVC5701E');
  return c.obj;
}

/** The lowest id not in `ids` (the array reuses ids). */
export function lowestFree(ids: Iterable<number>): number {
  const used = new Set(ids);
  let i = 0;
  while (used.has(i)) i++;
  return i;
}
