/**
 * dm-crypt mappings through `cryptsetup`: the host half of os-brick's encryptors
 * (`os_brick/encryptors/luks.py`, `cryptsetup.py`).
 *
 * Every call runs `cryptsetup` through the executor with a timeout. A passphrase goes to
 * cryptsetup on stdin with `--key-file=-` (so cryptsetup takes the bytes as they are, without
 * stripping a trailing newline, as os-brick notes), never in argv, and is also handed to the
 * executor as a secret so that nothing it logs or throws can carry it.
 *
 * cryptsetup's exit statuses (cryptsetup(8), "RETURN CODES"): 0 success, 1 wrong parameters,
 * 2 no permission (a bad passphrase: "No key available with this passphrase"), 3 out of memory,
 * 4 wrong device specified (a mapping that is not active), 5 device already exists or is busy.
 * Failures are turned into an {@link EncryptionError} whose `details.reason` names the case.
 *
 * @module
 */
import { EncryptionError, InvalidInputError, ProcessExecutionError, ProcessTimeoutError } from '../errors.js';
import type { HostContext } from './context.js';

/** LUKS header versions `cryptsetup luksFormat --type` writes. */
export type LuksVersion = 'luks1' | 'luks2';

/** Bound on one `cryptsetup` run that only talks to device-mapper, in ms. */
export const CRYPTSETUP_TIMEOUT_MS = 60_000;

/**
 * Bound on `luksFormat` and `open` of a LUKS device, in ms: both run the key derivation
 * (PBKDF2 for LUKS1, Argon2id for LUKS2, tuned by cryptsetup to about two seconds on an idle
 * CPU; a loaded host takes longer).
 */
export const CRYPTSETUP_KDF_TIMEOUT_MS = 180_000;

/** Options of {@link formatLuks}. */
export interface LuksFormatOptions {
  /** The block device to format (`/dev/sdb`, `/dev/loop3`). */
  device: string;
  /** The passphrase (os-brick: the key's bytes as lower-case hex). */
  passphrase: string | Buffer;
  /** `luks1` or `luks2`. */
  version: LuksVersion;
  /** Data cipher in cryptsetup's form (`aes-xts-plain64`); default cryptsetup's. */
  cipher?: string;
  /** Key size in bits (`256`, `512`); default cryptsetup's. */
  keySize?: number;
}

/** Options of {@link openCrypt}. */
export interface CryptOpenOptions {
  /** The block device holding the encrypted data. */
  device: string;
  /** The mapping name: the decrypted device is `/dev/mapper/<name>`. */
  name: string;
  /** The passphrase (LUKS) or key (plain mode). */
  passphrase: string | Buffer;
  /** `luks` (any LUKS version: the header says which) or `plain` (no header). */
  type: 'luks' | 'plain';
  /** Plain mode only: the data cipher (`aes-xts-plain64`). A LUKS header records its own. */
  cipher?: string;
  /** Plain mode only: the key size in bits. */
  keySize?: number;
}

/** What `cryptsetup status` tells about an active mapping. */
export interface CryptStatus {
  /** `/dev/mapper/<name>`. */
  path: string;
  /** `LUKS1`, `LUKS2`, `PLAIN`, ... as cryptsetup prints it. */
  type: string;
  /** The data cipher (`aes-xts-plain64`). */
  cipher: string;
  /** Key size in bits. */
  keySize: number;
  /** The backing device (`/dev/loop3`). */
  device: string;
  /** Size of the decrypted device in 512-byte sectors. */
  sizeSectors: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,126}$/;
const CIPHER = /^[a-z0-9][a-z0-9:_-]{0,63}$/;

/**
 * Check a mapping name before it reaches cryptsetup: 1-127 characters from letters, digits and
 * `_ . + : -`, not starting with a punctuation mark (device-mapper's names are at most 127
 * characters, and a name is a file name under `/dev/mapper`).
 * @throws {@link InvalidInputError} (field `name`)
 */
export function checkMappingName(name: string): string {
  if (typeof name !== 'string' || !NAME.test(name)) throw new InvalidInputError('name', `a dm-crypt mapping name must be 1-127 letters, digits or '_.+:-', got ${JSON.stringify(name)}`);
  return name;
}

/** @throws {@link InvalidInputError} (field `device`) unless `device` is an absolute path */
function checkDevice(device: string): string {
  if (typeof device !== 'string' || !device.startsWith('/') || device.includes('\0')) throw new InvalidInputError('device', `must be an absolute device path, got ${JSON.stringify(device)}`);
  return device;
}

/** The `--cipher` and `--key-size` arguments, checked. @throws {@link InvalidInputError} (field `cipher`, `key_size`) */
function cipherArgs(cipher: string | undefined, keySize: number | undefined): string[] {
  const out: string[] = [];
  if (cipher !== undefined) {
    if (!CIPHER.test(cipher)) throw new InvalidInputError('cipher', `must be a cryptsetup cipher such as aes-xts-plain64, got ${JSON.stringify(cipher)}`);
    out.push('--cipher', cipher);
  }
  if (keySize !== undefined) {
    if (!Number.isInteger(keySize) || keySize < 64 || keySize > 4096 || keySize % 8 !== 0) throw new InvalidInputError('key_size', `must be a whole number of bits, a multiple of 8 between 64 and 4096, got ${keySize}`);
    out.push('--key-size', String(keySize));
  }
  return out;
}

/** The passphrase as the executor's secret (masked wherever a command or output could show it). */
function secretsOf(passphrase: string | Buffer): string[] {
  const text = typeof passphrase === 'string' ? passphrase : passphrase.toString('utf8');
  return text.length >= 4 ? [text] : [];
}

/**
 * Turn a failed cryptsetup run into an {@link EncryptionError} (see the module notes for the
 * statuses). Anything that is not a ProcessExecutionError (a timeout, a bad argument) is returned as it is.
 */
export function cryptError(err: unknown, what: string, target: string): unknown {
  if (err instanceof ProcessTimeoutError || !(err instanceof ProcessExecutionError)) return err;
  const stderr = err.stderr.trim().split('\n').slice(-2).join(' | ');
  const base = { cause: err, details: { target, exit_code: err.exitCode } };
  switch (err.exitCode) {
    case 2:
      return new EncryptionError(`cannot ${what} ${target}: no key available with this passphrase (wrong encryption key)`, { ...base, details: { ...base.details, reason: 'wrong-key' } });
    case 4:
      return new EncryptionError(`cannot ${what} ${target}: no such device or mapping${stderr ? ` (${stderr})` : ''}`, { ...base, details: { ...base.details, reason: 'no-device' } });
    case 5:
      return new EncryptionError(`cannot ${what} ${target}: the mapping exists already or the device is busy${stderr ? ` (${stderr})` : ''}`, { ...base, details: { ...base.details, reason: 'busy' } });
    default:
      return new EncryptionError(`cannot ${what} ${target}: cryptsetup exited with status ${err.exitCode}${stderr ? `: ${stderr}` : ''}`, { ...base, details: { ...base.details, reason: 'cryptsetup' } });
  }
}

/** Run cryptsetup, turning its failures into {@link EncryptionError}s. */
async function cryptsetup(ctx: HostContext, argv: string[], what: string, target: string, options: { passphrase?: string | Buffer; timeoutMs?: number; accept?: number[] } = {}): Promise<number | null> {
  try {
    const r = await ctx.executor.run(['cryptsetup', ...argv], {
      timeoutMs: options.timeoutMs ?? CRYPTSETUP_TIMEOUT_MS,
      ...(options.passphrase !== undefined ? { input: options.passphrase, secrets: secretsOf(options.passphrase) } : {}),
      checkExitCode: [0, ...(options.accept ?? [])],
    });
    return r.exitCode;
  } catch (err) {
    throw cryptError(err, what, target);
  }
}

/**
 * Write a LUKS header on `device` (os-brick `_format_luks_volume`): `cryptsetup --batch-mode
 * luksFormat --type luks1|luks2 --key-file=- [--cipher C] [--key-size N] <device>`, the
 * passphrase on stdin. Everything on the device is lost: callers check {@link isLuks} first.
 * @throws {@link InvalidInputError} (field `device`, `cipher`, `key_size`) before anything runs
 * @throws {@link EncryptionError} when cryptsetup fails
 * @throws {@link ProcessTimeoutError} after {@link CRYPTSETUP_KDF_TIMEOUT_MS}
 */
export async function formatLuks(ctx: HostContext, options: LuksFormatOptions): Promise<void> {
  const device = checkDevice(options.device);
  if (options.version !== 'luks1' && options.version !== 'luks2') throw new InvalidInputError('version', `must be luks1 or luks2, got ${JSON.stringify(options.version)}`);
  const argv = ['--batch-mode', 'luksFormat', '--type', options.version, '--key-file=-', ...cipherArgs(options.cipher, options.keySize), device];
  ctx.logger.info({ device, type: options.version }, 'crypt: formatting the device with a LUKS header');
  await cryptsetup(ctx, argv, 'format', device, { passphrase: options.passphrase, timeoutMs: CRYPTSETUP_KDF_TIMEOUT_MS });
}

/**
 * Open a dm-crypt mapping `/dev/mapper/<name>` over `device`: `cryptsetup open --type luks
 * --key-file=- <device> <name>` (os-brick's `luksOpen`), or for plain mode `cryptsetup open
 * --type plain --key-file=- [--cipher C] [--key-size N] <device> <name>` (os-brick's
 * `cryptsetup create`, of which `open --type plain` is the current spelling). The passphrase on stdin.
 * @returns the decrypted device's path, `/dev/mapper/<name>`
 * @throws {@link InvalidInputError} (field `name`, `device`, `cipher`, `key_size`) before anything runs
 * @throws {@link EncryptionError} when cryptsetup fails: `details.reason` `wrong-key` for a passphrase no key slot takes, `busy` when the name is taken
 * @throws {@link ProcessTimeoutError} after {@link CRYPTSETUP_KDF_TIMEOUT_MS}
 */
export async function openCrypt(ctx: HostContext, options: CryptOpenOptions): Promise<string> {
  const device = checkDevice(options.device);
  const name = checkMappingName(options.name);
  let argv: string[];
  if (options.type === 'luks') argv = ['open', '--type', 'luks', '--key-file=-', device, name];
  else if (options.type === 'plain') argv = ['open', '--type', 'plain', '--key-file=-', ...cipherArgs(options.cipher, options.keySize), device, name];
  else throw new InvalidInputError('type', `must be luks or plain, got ${JSON.stringify(options.type)}`);
  await cryptsetup(ctx, argv, 'open', device, { passphrase: options.passphrase, timeoutMs: CRYPTSETUP_KDF_TIMEOUT_MS });
  return `/dev/mapper/${name}`;
}

/**
 * Remove the mapping `name` (os-brick `luksClose` / `cryptsetup remove`: `cryptsetup close`).
 * A mapping that is not active (status 4) counts as closed, so closing twice succeeds.
 * @returns whether a mapping was removed
 * @throws {@link InvalidInputError} (field `name`) before anything runs
 * @throws {@link EncryptionError} when cryptsetup fails otherwise (`busy`: the device is open, e.g. mounted)
 */
export async function closeCrypt(ctx: HostContext, name: string): Promise<boolean> {
  checkMappingName(name);
  const status = await cryptsetup(ctx, ['close', name], 'close', `/dev/mapper/${name}`, { accept: [4] });
  return status === 0;
}

/**
 * Grow the mapping `name` to its backing device's current size (os-brick `extend_volume`):
 * `cryptsetup resize --key-file=- <name>`, the passphrase on stdin (LUKS2 may need it when the
 * volume key lives in the kernel keyring; LUKS1 and plain mode ignore it).
 * @throws {@link InvalidInputError} (field `name`) before anything runs
 * @throws {@link EncryptionError} when cryptsetup fails (`no-device`: the mapping is not active)
 */
export async function resizeCrypt(ctx: HostContext, name: string, passphrase?: string | Buffer): Promise<void> {
  checkMappingName(name);
  const argv = passphrase === undefined ? ['resize', name] : ['resize', '--key-file=-', name];
  await cryptsetup(ctx, argv, 'resize', `/dev/mapper/${name}`, { ...(passphrase !== undefined ? { passphrase } : {}), timeoutMs: CRYPTSETUP_KDF_TIMEOUT_MS });
}

/**
 * Whether `device` carries a LUKS header (os-brick `is_luks`: `cryptsetup isLuks <device>`,
 * status 0 yes, 1 no).
 * @throws {@link InvalidInputError} (field `device`) before anything runs
 * @throws {@link EncryptionError} for any other status (the device cannot be read)
 */
export async function isLuks(ctx: HostContext, device: string): Promise<boolean> {
  checkDevice(device);
  const status = await cryptsetup(ctx, ['isLuks', device], 'examine', device, { accept: [1] });
  return status === 0;
}

/**
 * The state of mapping `name` (`cryptsetup status <name>`), or undefined when it is not an
 * active dm-crypt mapping (status 4 "inactive"; status 1 for a device-mapper device that is not
 * dm-crypt, as os-brick's `_is_crypt_device_available` reads it).
 * @throws {@link InvalidInputError} (field `name`) before anything runs
 * @throws {@link EncryptionError} for any other failure
 */
export async function cryptStatus(ctx: HostContext, name: string): Promise<CryptStatus | undefined> {
  checkMappingName(name);
  let out: string;
  try {
    const r = await ctx.executor.run(['cryptsetup', 'status', name], { timeoutMs: CRYPTSETUP_TIMEOUT_MS, checkExitCode: [0, 1, 4] });
    if (r.exitCode !== 0) return undefined;
    out = r.stdout;
  } catch (err) {
    throw cryptError(err, 'read the status of', `/dev/mapper/${name}`);
  }
  const field = (key: string): string => new RegExp(`^\\s*${key}:\\s*(.*)$`, 'm').exec(out)?.[1]?.trim() ?? '';
  return {
    path: `/dev/mapper/${name}`,
    type: field('type'),
    cipher: field('cipher'),
    keySize: Number.parseInt(field('keysize'), 10) || 0,
    device: field('device'),
    sizeSectors: Number.parseInt(field('size'), 10) || 0,
  };
}
