/**
 * One way for every driver to declare and read its configuration options: Cinder's
 * `oslo_config` `cfg.StrOpt` / `IntOpt` / `FloatOpt` / `BoolOpt` / `ListOpt` and `choices`, as
 * plain data. A driver declares each option once ({@link defineOption}: name, type, default,
 * bounds, choices, help, whether it is a secret), reads it with {@link readOption}, and exports
 * the list (e.g. `LVM_OPTIONS`) so documentation can be generated from it
 * ({@link renderOptionsTable}).
 *
 * Values may arrive typed (YAML / JSON numbers and booleans) or as strings (INI files, CLI
 * flags, environment): `"true"` / `"yes"` / `"on"` / `"1"` and their negatives are booleans,
 * numeric strings are numbers, a comma-separated string is a list. An absent value is
 * `undefined`, `null` or the empty string (as Cinder treats an empty option). Every refusal is
 * an {@link InvalidConfigError} whose `field` is the key the value came from and whose message
 * starts `invalid <key>:`; the value is quoted in the message only when the option is not secret.
 *
 * @module
 */
import { InvalidConfigError } from './errors.js';

/** Option types, as oslo.config's `StrOpt`, `IntOpt`, `FloatOpt`, `BoolOpt`, `ListOpt` and `StrOpt(choices=...)`. */
export type OptionType = 'string' | 'int' | 'float' | 'bool' | 'list' | 'enum';

/** The declaration of one option. */
export interface DriverOption {
  /** The configuration key (Cinder's name, snake_case). */
  readonly name: string;
  readonly type: OptionType;
  /** One line of help for the README table. */
  readonly help: string;
  /** The value when the key is absent. Without one (and without `required`) an absent key reads as `undefined`. */
  readonly default?: string | number | boolean | readonly string[];
  /** How the default is shown when it is computed at run time (e.g. `<state dir>/volumes`, `8080 (http), 8443 (https)`). */
  readonly defaultText?: string;
  /** `int` / `float`: smallest and largest accepted value (inclusive). */
  readonly min?: number;
  readonly max?: number;
  /** `enum`: the accepted values. */
  readonly choices?: readonly string[];
  /** `enum`: compare case-insensitively; the value read is the declared spelling. */
  readonly ignoreCase?: boolean;
  /** A password or CHAP secret: never quoted in an error, marked in the documentation. */
  readonly secret?: boolean;
  /** Older names accepted when `name` is absent (the error then names the key actually given). */
  readonly aliases?: readonly string[];
  /** Refuse an absent value. */
  readonly required?: boolean;
  /** `string`: trim white space around the value (default: true, except for secrets). */
  readonly trim?: boolean;
  /** `list`: how a string value is split (default: commas). */
  readonly separator?: RegExp;
}

/** The type a declared option reads as. */
export type OptionValue<O extends DriverOption> = O['type'] extends 'int' | 'float'
  ? number
  : O['type'] extends 'bool'
    ? boolean
    : O['type'] extends 'list'
      ? string[]
      : O extends { readonly choices: readonly (infer C)[] }
        ? C
        : string;

/** What {@link readOption} returns: the value, or `undefined` when the option has no default and is not required. */
export type ReadValue<O extends DriverOption> = O extends { readonly default: unknown } | { readonly required: true } ? OptionValue<O> : OptionValue<O> | undefined;

/** Declare an option (identity; keeps the literal types so {@link readOption} returns the right type). */
export function defineOption<const O extends DriverOption>(option: O): O {
  return option;
}

/** The error for a refused value of `key`. Never put a secret in `problem`. */
export function configError(key: string, problem: string): InvalidConfigError {
  return new InvalidConfigError(`invalid ${key}: ${problem}`, { field: key });
}

/** Whether `value` counts as given (not `undefined`, `null` or `''`). */
export function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

/** The key among `name` and its aliases that carries a value, with that value. */
export function pickOption(raw: Readonly<Record<string, unknown>>, option: Pick<DriverOption, 'name' | 'aliases'>): { key: string; value: unknown } | undefined {
  for (const key of [option.name, ...(option.aliases ?? [])]) {
    const value = raw?.[key];
    if (isPresent(value)) return { key, value };
  }
  return undefined;
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);
const INT = /^-?\d+$/;
const FLOAT = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

function shown(option: DriverOption, value: unknown): string {
  return option.secret ? '' : `, got ${JSON.stringify(value)}`;
}

function range(option: DriverOption): string {
  const { min, max } = option;
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` of at least ${min}`;
  if (max !== undefined) return ` of at most ${max}`;
  return '';
}

function toNumber(option: DriverOption, key: string, value: unknown): number {
  const integer = option.type === 'int';
  const text = typeof value === 'string' ? value.trim() : undefined;
  const n = typeof value === 'number' ? value : text !== undefined && (integer ? INT : FLOAT).test(text) ? Number(text) : NaN;
  const inRange = (option.min === undefined || n >= option.min) && (option.max === undefined || n <= option.max);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || !inRange) {
    throw configError(key, `must be ${integer ? 'an integer' : 'a number'}${range(option)}${shown(option, value)}`);
  }
  return n;
}

function toBool(option: DriverOption, key: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const s = typeof value === 'string' || typeof value === 'number' ? String(value).trim().toLowerCase() : undefined;
  if (s !== undefined && TRUE.has(s)) return true;
  if (s !== undefined && FALSE.has(s)) return false;
  throw configError(key, `must be true or false (also yes/no, on/off, 1/0)${shown(option, value)}`);
}

function toString(option: DriverOption, key: string, value: unknown): string {
  if (typeof value !== 'string' && typeof value !== 'number') throw configError(key, `must be a string, got ${Array.isArray(value) ? 'a list' : typeof value}`);
  const s = String(value);
  return (option.trim ?? !option.secret) ? s.trim() : s;
}

function toList(option: DriverOption, key: string, value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(option.separator ?? ',') : undefined;
  if (!items || !items.every((x) => typeof x === 'string')) throw configError(key, 'must be a list of strings or a comma-separated string');
  return (items as string[]).map((s) => s.trim()).filter((s) => s !== '');
}

function toChoice(option: DriverOption, key: string, value: unknown): string {
  const s = toString(option, key, value);
  const choices = option.choices ?? [];
  const found = choices.find((c) => (option.ignoreCase ? c.toLowerCase() === s.toLowerCase() : c === s));
  if (found === undefined) throw configError(key, `must be one of ${choices.join(', ')}${shown(option, value)}`);
  return found;
}

/** Convert a present value of `option` (given under `key`). @throws {@link InvalidConfigError} naming `key` */
export function convertOption(option: DriverOption, key: string, value: unknown): string | number | boolean | string[] {
  switch (option.type) {
    case 'int':
    case 'float':
      return toNumber(option, key, value);
    case 'bool':
      return toBool(option, key, value);
    case 'list':
      return toList(option, key, value);
    case 'enum':
      return toChoice(option, key, value);
    default:
      return toString(option, key, value);
  }
}

/**
 * Read one declared option from a raw backend configuration.
 * @returns the converted value; the default when absent; `undefined` when absent without a default
 * @throws {@link InvalidConfigError} whose `field` is the key given (or `option.name` when a required option is absent)
 */
export function readOption<const O extends DriverOption>(raw: Readonly<Record<string, unknown>>, option: O): ReadValue<O> {
  const picked = pickOption(raw, option);
  if (!picked) {
    if (option.required) throw configError(option.name, 'is required');
    const d = option.default;
    return (Array.isArray(d) ? [...d] : d) as ReadValue<O>;
  }
  return convertOption(option, picked.key, picked.value) as ReadValue<O>;
}

/**
 * Check that a backend configuration is an object.
 * @throws {@link InvalidConfigError} (field `config`) otherwise
 */
export function requireConfigObject(raw: unknown): asserts raw is Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw configError('config', 'must be an object');
}

function typeText(o: DriverOption): string {
  if (o.type === 'enum') return `enum: ${(o.choices ?? []).map((c) => `\`${c}\``).join(', ')}`;
  if ((o.type === 'int' || o.type === 'float') && (o.min !== undefined || o.max !== undefined)) return `${o.type} (${o.min ?? ''}..${o.max ?? ''})`;
  return o.type;
}

function defaultText(o: DriverOption): string {
  if (o.defaultText !== undefined) return o.defaultText;
  if (o.required) return '(required)';
  if (o.default === undefined) return '';
  if (Array.isArray(o.default)) return o.default.length === 0 ? '' : `\`${o.default.join(',')}\``;
  return `\`${String(o.default)}\``;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/**
 * A Markdown table of `options`: name (older names in parentheses), type, default and
 * description; secrets are marked **secret** in the description.
 */
export function renderOptionsTable(options: readonly DriverOption[]): string {
  const rows = options.map((o) => {
    const name = `\`${o.name}\`${o.aliases?.length ? ` (${o.aliases.map((a) => `\`${a}\``).join(', ')})` : ''}`;
    const help = `${o.secret ? '**secret**. ' : ''}${o.help}`;
    return `| ${cell(name)} | ${cell(typeText(o))} | ${cell(defaultText(o))} | ${cell(help)} |`;
  });
  return ['| option | type | default | description |', '|---|---|---|---|', ...rows].join('\n') + '\n';
}
