/**
 * Encryption keys for volumes encrypted on the host: the role of Castellan's key manager in
 * Nova and Cinder (`key_manager.create_key`, `get`, `delete`), which os-brick's encryptors call
 * through `_get_key(context)`.
 *
 * A key is opaque bytes under an id. The encryptors turn it into the cryptsetup passphrase as
 * os-brick does (`get_passphrase_from_secret`: the bytes as lower-case hex), so a volume
 * formatted by Brick opens with os-brick given the same key, and the other way round.
 *
 * Two key managers:
 * - {@link FileKeyManager}: one file per key, `<dir>/<key id>.key`, mode 0600, in a directory
 *   private to the running user ({@link ensurePrivateDirectory}); files are opened with
 *   `O_NOFOLLOW` and checked with `fstat` (a regular file of ours, one link, no group or other
 *   bits), so a symbolic link planted in the store is refused, never followed.
 * - {@link CallbackKeyManager}: the caller's functions (a KMS, Barbican, a vault).
 *
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { EncryptionError, InvalidConfigError, InvalidInputError, NotFoundError } from '../errors.js';
import { ensurePrivateDirectory, ownedFileProblem } from './private-dir.js';

/** Where encryption keys come from (Castellan's `KeyManager`). */
export interface KeyManager {
  /**
   * The key's bytes.
   * @throws {@link NotFoundError} when no key has this id
   */
  getKey(keyId: string): Promise<Buffer>;
  /**
   * Create a random key of `bits` bits and return its id (Cinder's `create_encryption_key`).
   */
  createKey(bits: number): Promise<string>;
  /** Delete the key; deleting a missing key succeeds. */
  deleteKey(keyId: string): Promise<void>;
  /**
   * Store a copy of existing key bytes under a new id (Castellan's `store`), for a clone of an
   * encrypted volume, whose data is encrypted under its source's key. Optional.
   */
  storeKey?(key: Buffer): Promise<string>;
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Check a key id: 1-128 letters, digits, `_ . -`, not starting with a punctuation mark (it names a file).
 * @throws {@link InvalidInputError} (field `encryption_key_id`)
 */
export function checkKeyId(keyId: string): string {
  if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) throw new InvalidInputError('encryption_key_id', `must be 1-128 letters, digits or '_.-', got ${JSON.stringify(keyId)}`);
  return keyId;
}

/**
 * Check a key length: a multiple of 8 bits from 128 to 4096.
 * @throws {@link InvalidInputError} (field `key_size`)
 */
export function checkKeyBits(bits: number): number {
  if (!Number.isInteger(bits) || bits < 128 || bits > 4096 || bits % 8 !== 0) throw new InvalidInputError('key_size', `must be a multiple of 8 bits between 128 and 4096, got ${bits}`);
  return bits;
}

/** Options of {@link FileKeyManager}. */
export interface FileKeyManagerOptions {
  /** The user that must own the directory and the key files; default the effective uid. */
  uid?: number;
}

/**
 * One 0600 file per key under a private directory (see the module notes). The directory is
 * created (0700) on first use, not on construction.
 */
export class FileKeyManager implements KeyManager {
  /** The key directory (`<stateDir>/keys` by default in the library). */
  readonly dir: string;
  private readonly uid: number;
  private ready = false;

  /** @param dir absolute path of the key directory */
  constructor(dir: string, options: FileKeyManagerOptions = {}) {
    this.dir = dir;
    this.uid = options.uid ?? process.geteuid?.() ?? 0;
  }

  /** @throws {@link InvalidConfigError} (field `key_store`) when the directory is not private or cannot be made */
  private prepare(): void {
    if (this.ready) return;
    ensurePrivateDirectory(this.dir, this.uid, 'key_store');
    this.ready = true;
  }

  private file(keyId: string): string {
    return join(this.dir, `${checkKeyId(keyId)}.key`);
  }

  /**
   * Read a key: the file is opened with `O_NOFOLLOW` and must be a regular file of ours with one
   * link and no group or other permission bits.
   * @throws {@link InvalidInputError} (field `encryption_key_id`) for a malformed id
   * @throws {@link NotFoundError} when there is no such key
   * @throws {@link EncryptionError} (reason `key-store`) when the file is a link, not ours, readable by others or empty
   * @throws {@link InvalidConfigError} (field `key_store`) when the directory is not private
   */
  async getKey(keyId: string): Promise<Buffer> {
    const path = this.file(keyId);
    this.prepare();
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new NotFoundError('encryption key', keyId);
      throw new EncryptionError(`encryption key ${keyId} cannot be opened: ${code === 'ELOOP' ? 'it is a symbolic link' : (code ?? (err as Error).message)}`, { details: { reason: 'key-store', key_id: keyId } });
    }
    try {
      const st = fs.fstatSync(fd);
      const problem = ownedFileProblem(st, this.uid) ?? ((st.mode & 0o077) !== 0 ? `has mode ${(st.mode & 0o777).toString(8)}, not 0600` : st.size === 0 ? 'is empty' : undefined);
      if (problem) throw new EncryptionError(`encryption key ${keyId} is refused: the key file ${problem}`, { details: { reason: 'key-store', key_id: keyId } });
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Create a random key of `bits` bits (`crypto.randomBytes`) in a new 0600 file.
   * @returns the new key's id (a UUID)
   * @throws {@link InvalidInputError} (field `key_size`) for a length that is not a multiple of 8 from 128 to 4096
   * @throws {@link InvalidConfigError} (field `key_store`) when the directory is not private
   */
  async createKey(bits: number): Promise<string> {
    checkKeyBits(bits);
    return this.storeKey(randomBytes(bits / 8));
  }

  /**
   * Store `key` under a new id: written to a new file (`O_CREAT | O_EXCL | O_NOFOLLOW`, 0600),
   * synced, then the directory synced.
   * @returns the new key's id (a UUID)
   * @throws {@link InvalidInputError} (field `key`) for an empty key
   * @throws {@link InvalidConfigError} (field `key_store`) when the directory is not private
   */
  async storeKey(key: Buffer): Promise<string> {
    if (!Buffer.isBuffer(key) || key.length === 0) throw new InvalidInputError('key', 'must be a non-empty Buffer');
    this.prepare();
    const keyId = randomUUID();
    const fd = fs.openSync(this.file(keyId), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.fchmodSync(fd, 0o600);
      fs.writeSync(fd, key);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.syncDir();
    return keyId;
  }

  /**
   * Delete a key: its bytes are overwritten with zeros and synced (best effort: a file system
   * may keep old blocks), then the file is removed. A missing key succeeds; a name that is not a
   * regular file of ours (a planted link) is removed without being opened.
   * @throws {@link InvalidInputError} (field `encryption_key_id`) for a malformed id
   */
  async deleteKey(keyId: string): Promise<void> {
    const path = this.file(keyId);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (ownedFileProblem(st, this.uid) === undefined) {
      const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW);
      try {
        fs.writeSync(fd, Buffer.alloc(st.size));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    fs.rmSync(path, { force: true });
    this.syncDir();
  }

  private syncDir(): void {
    const d = fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(d);
    } finally {
      fs.closeSync(d);
    }
  }
}

/** The functions a {@link CallbackKeyManager} calls. Only `getKey` is required. */
export interface KeyCallbacks {
  /** The key's bytes (a Buffer, or a hex string). */
  getKey(keyId: string): Promise<Buffer | string>;
  /** Create a key of `bits` bits; returns its id. Without it, creating encrypted volumes is refused. */
  createKey?(bits: number): Promise<string>;
  /** Delete a key. Without it, deleting is a no-op (the keys are the caller's to manage). */
  deleteKey?(keyId: string): Promise<void>;
  /** Store a copy of key bytes; returns the new id. Without it, cloning encrypted volumes is refused. */
  storeKey?(key: Buffer): Promise<string>;
}

/** A key manager over the caller's functions (a KMS, Barbican, a vault). */
export class CallbackKeyManager implements KeyManager {
  private readonly callbacks: KeyCallbacks;

  /** @throws {@link InvalidConfigError} (field `key_manager.getKey`) without a `getKey` function */
  constructor(callbacks: KeyCallbacks) {
    if (!callbacks || typeof callbacks.getKey !== 'function') throw new InvalidConfigError('a CallbackKeyManager needs a getKey(keyId) function', { field: 'key_manager.getKey' });
    this.callbacks = callbacks;
  }

  /**
   * The key from the `getKey` callback; a string is read as hex.
   * @throws {@link EncryptionError} (reason `key-store`) when the callback returns nothing usable
   * @throws whatever the callback throws
   */
  async getKey(keyId: string): Promise<Buffer> {
    const key = await this.callbacks.getKey(keyId);
    const buf = typeof key === 'string' ? Buffer.from(key, 'hex') : key;
    if (!Buffer.isBuffer(buf) || buf.length === 0) throw new EncryptionError(`the key manager returned no key for ${keyId}`, { details: { reason: 'key-store', key_id: keyId } });
    return buf;
  }

  /**
   * @throws {@link InvalidConfigError} (field `key_manager.createKey`) without a `createKey` callback
   * @throws whatever the callback throws
   */
  async createKey(bits: number): Promise<string> {
    checkKeyBits(bits);
    if (!this.callbacks.createKey) throw new InvalidConfigError('the key manager cannot create keys: give CallbackKeyManager a createKey(bits) function', { field: 'key_manager.createKey' });
    return this.callbacks.createKey(bits);
  }

  /** Calls `deleteKey` when given, else does nothing. @throws whatever the callback throws */
  async deleteKey(keyId: string): Promise<void> {
    await this.callbacks.deleteKey?.(keyId);
  }

  /**
   * @throws {@link InvalidConfigError} (field `key_manager.storeKey`) without a `storeKey` callback
   * @throws whatever the callback throws
   */
  async storeKey(key: Buffer): Promise<string> {
    if (!this.callbacks.storeKey) throw new InvalidConfigError('the key manager cannot store keys: give CallbackKeyManager a storeKey(key) function', { field: 'key_manager.storeKey' });
    return this.callbacks.storeKey(key);
  }
}
