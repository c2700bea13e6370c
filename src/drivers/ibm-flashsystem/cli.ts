/**
 * The FlashSystem (Spectrum Virtualize) CLI as the driver speaks it: building command lines
 * whose variable parts can never become shell syntax, parsing the two output shapes, naming
 * rules, and mapping `CMMVC` messages to Brick's typed errors.
 *
 * Cinder's driver joins the argument list with spaces after an injection check
 * (`ssh_injection.check_ssh_injection`). Brick does more: every variable word (object names,
 * IQNs) is validated against the CLI's own character set **and** single-quoted, so a quote, a
 * `;` or a `$(...)` can never reach the array's restricted shell as syntax; constant words are
 * checked against a strict pattern so a programming error cannot slip one through either.
 *
 * Output shapes (with `-delim !`):
 * - detailed view, one object: `attribute!value` lines, a repeated attribute (e.g. one
 *   `iscsi_name` per host port) collects into a list;
 * - concise view, a list: a header line then one row per object.
 *
 * @module
 */
import {
  AlreadyExistsError,
  BackendError,
  BrickError,
  InsufficientCapacityError,
  InvalidInputError,
  InvalidStateError,
  NotFoundError,
} from '../../errors.js';

/** A variable word of a command: validated and quoted when rendered. */
export interface CliValue {
  readonly value: string;
}

/** A word of a command: a constant (`svctask`, `-name`, `!`) or a {@link CliValue}. */
export type CliWord = string | number | CliValue;

/** Wrap a variable word (a name, an IQN) so that {@link renderCommand} quotes it. */
export function v(value: string): CliValue {
  return { value };
}

const CONSTANT_WORD = /^(-?[A-Za-z][A-Za-z0-9_]*|!)$/;
const SAFE_VALUE = /^[A-Za-z0-9 ._:,=-]+$/;

/**
 * Render words as one command line for the array's shell. Numbers must be non-negative
 * integers; constants must look like a command, a flag or the `!` delimiter; values must use
 * the CLI's character set (letters, digits, space, `.`, `_`, `-`, `:`, `,`, `=`) and are wrapped
 * in single quotes.
 * @throws {@link InvalidInputError} (field `cli`) for a word that could be shell syntax
 */
export function renderCommand(words: readonly CliWord[]): string {
  return words
    .map((w) => {
      if (typeof w === 'number') {
        if (!Number.isSafeInteger(w) || w < 0) throw new InvalidInputError('cli', `numeric argument ${w} is not a non-negative integer`);
        return String(w);
      }
      if (typeof w === 'string') {
        if (!CONSTANT_WORD.test(w)) throw new InvalidInputError('cli', `constant word ${JSON.stringify(w)} is not a command or flag`);
        return w;
      }
      if (w.value.length === 0 || !SAFE_VALUE.test(w.value)) throw new InvalidInputError('cli', `argument ${JSON.stringify(w.value)} contains characters the CLI does not accept`);
      return `'${w.value}'`;
    })
    .join(' ');
}

/** Longest object name the CLI accepts. */
export const MAX_NAME_LENGTH = 63;
const NAME_RE = /^[A-Za-z_][A-Za-z0-9 ._-]*$/;

/**
 * Check an object name (vdisk, host) against the CLI's naming rules: letters, digits, space,
 * `.`, `-`, `_`; starts with a letter or `_`; does not end with a space; at most 63 characters
 * (CMMVC6527E otherwise).
 * @throws {@link InvalidInputError} naming `field`
 */
export function validateObjectName(field: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidInputError(field, 'must be a non-empty string');
  if (name.length > MAX_NAME_LENGTH) throw new InvalidInputError(field, `${JSON.stringify(name)} is longer than ${MAX_NAME_LENGTH} characters`);
  if (!NAME_RE.test(name) || name.endsWith(' ')) {
    throw new InvalidInputError(field, `${JSON.stringify(name)} is not a valid FlashSystem object name (letters, digits, space, '.', '-', '_'; starting with a letter or '_')`);
  }
  return name;
}

const IQN_RE = /^(iqn\.\d{4}-\d{2}\.[A-Za-z0-9][A-Za-z0-9.:-]*|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?)$/;

/**
 * Check an iSCSI name (`iqn.YYYY-MM.reversed.domain[:id]`, `eui.<16 hex>`, `naa.<16|32 hex>`).
 * @throws {@link InvalidInputError} naming `field`
 */
export function validateIqn(field: string, iqn: unknown): string {
  if (typeof iqn !== 'string' || iqn.length === 0) throw new InvalidInputError(field, 'must be a non-empty string');
  if (iqn.length > 223 || !IQN_RE.test(iqn)) throw new InvalidInputError(field, `${JSON.stringify(iqn)} is not an iSCSI qualified name`);
  return iqn;
}

/**
 * Longest host-name prefix before the `-NNNNNNNN` suffix: 54, so that the whole name fits the
 * CLI's 63-character limit (Cinder cut at 55 and could produce 64-character names).
 */
export const HOST_PREFIX_LENGTH = 54;

/**
 * The host-object name prefix for a connector's `host`, following Cinder's
 * `_connector_to_hostname_prefix`: every character other than a letter, digit, space, `.`,
 * `-` or `_` becomes `-`; a result not starting with a letter gets a `_` in front; it is cut
 * to {@link HOST_PREFIX_LENGTH} characters. Brick differs in two ways, both so that the name is one the CLI accepts:
 * non-ASCII characters are replaced too (Cinder kept them, and the array refused them), and a
 * trailing space is replaced by `-`.
 * @throws {@link InvalidInputError} (field `connector.host`) for an empty or non-string host
 */
export function hostNamePrefix(host: unknown): string {
  if (typeof host !== 'string' || host.length === 0) throw new InvalidInputError('connector.host', 'must be a non-empty string');
  let s = host.replace(/[^A-Za-z0-9 ._-]/gu, '-');
  if (!/^[A-Za-z]/.test(s)) s = `_${s}`;
  s = s.slice(0, HOST_PREFIX_LENGTH);
  return s.replace(/ +$/, (m) => '-'.repeat(m.length));
}

/** The prefix of a host object name: everything before the last `-` (Cinder's `rsplit('-', 1)[0]`). */
export function prefixOfHostName(name: string): string {
  const i = name.lastIndexOf('-');
  return i < 0 ? name : name.slice(0, i);
}

/** Parsed detailed view: attribute -> every value it had, in order. */
export type DetailedView = Map<string, string[]>;

/** Parse a detailed view (`attr!value` lines, split at the first delimiter). Blank lines are skipped. */
export function parseDetailed(text: string, delim = '!'): DetailedView {
  const out: DetailedView = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const i = line.indexOf(delim);
    const key = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + delim.length);
    const list = out.get(key);
    if (list) list.push(value);
    else out.set(key, [value]);
  }
  return out;
}

/** The first value of `attr` in a detailed view, or undefined. */
export function attr(view: DetailedView, name: string): string | undefined {
  return view.get(name)?.[0];
}

/**
 * Parse a concise view: a header line, then rows. Empty output is an empty list.
 * @throws {@link BackendError} when a row's column count differs from the header's
 *   (Cinder: "attribute headers and values do not match"), or an expected column is missing
 */
export function parseConcise(text: string, command: string, expected: readonly string[] = [], delim = '!'): Record<string, string>[] {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
  if (lines.length === 0) return [];
  const header = lines[0]!.split(delim);
  for (const col of expected) {
    if (!header.includes(col)) throw new BackendError(`unexpected output of ${command}: did not find expected column ${col}`, { details: { command, header } });
  }
  return lines.slice(1).map((line) => {
    const values = line.split(delim);
    if (values.length !== header.length) {
      throw new BackendError(`unexpected output of ${command}: attribute headers and values do not match`, { details: { command, header, row: line } });
    }
    const row: Record<string, string> = {};
    header.forEach((h, i) => (row[h] = values[i]!));
    return row;
  });
}

/** The `CMMVC` code at the start of a CLI error (`CMMVC5753E`), or undefined. */
export function cmmvcCode(stderr: string): string | undefined {
  return /\b(CMMVC\d{4,5}[EWI])\b/.exec(stderr)?.[1];
}

/** Codes meaning "the object does not exist". */
export const NOT_FOUND_CODES = new Set(['CMMVC5753E', 'CMMVC5754E', 'CMMVC5842E']);
/** Codes meaning "the vdisk is already mapped to another host". */
export const MULTI_HOST_MAP_CODES = new Set(['CMMVC6045E', 'CMMVC6071E']);

/** Context for turning a CLI failure into an error: what object the command was about. */
export interface CliErrorContext {
  /** Object kind for not-found errors (`vdisk`, `host`, `FlashCopy mapping`). */
  kind?: string;
  /** Object name or id. */
  id?: string;
}

/**
 * A typed error for a failed CLI command: not found ({@link NotFoundError}), already exists
 * ({@link AlreadyExistsError}), in use or wrong state ({@link InvalidStateError}), out of space
 * ({@link InsufficientCapacityError}), anything else {@link BackendError}. `details` carry
 * `cmmvc` (the code), `command` and `stderr`; the command line holds no secret (credentials
 * never travel on the CLI).
 */
export function cliError(command: string, exitCode: number | null, stdout: string, stderr: string, ctx: CliErrorContext = {}): BrickError {
  const code = cmmvcCode(stderr);
  const text = stderr.trim().split('\n').slice(-2).join(' ') || stdout.trim().split('\n').slice(-1).join('');
  const details = { cmmvc: code ?? null, command, exit_code: exitCode, stderr: stderr.trim() };
  const what = `${ctx.kind ?? 'object'} ${ctx.id ?? ''}`.trim();
  switch (code) {
    case 'CMMVC5753E':
    case 'CMMVC5754E':
    case 'CMMVC5842E':
      return new NotFoundError(ctx.kind ?? 'FlashSystem object', ctx.id ?? '(unnamed)', { details });
    case 'CMMVC6035E':
    case 'CMMVC6581E':
    case 'CMMVC5878E':
    case 'CMMVC5879E':
    case 'CMMVC5867E':
      return new AlreadyExistsError(`FlashSystem refused ${command.split(' ')[1] ?? command} for ${what}: ${text}`, { details });
    case 'CMMVC5840E':
    case 'CMMVC5871E':
    case 'CMMVC5903E':
    case 'CMMVC5907E':
    case 'CMMVC6045E':
    case 'CMMVC6071E':
      return new InvalidStateError(`FlashSystem refused ${command.split(' ')[1] ?? command} for ${what}: ${text}`, { details });
    case 'CMMVC5860E':
      return new InsufficientCapacityError(`FlashSystem pool has not enough free extents for ${what}: ${text}`, { details });
    default:
      return new BackendError(`FlashSystem command ${command} failed${exitCode !== null ? ` with status ${exitCode}` : ''}: ${text || 'no message'}`, { details });
  }
}
