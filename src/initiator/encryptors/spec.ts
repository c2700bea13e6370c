/**
 * The encryption document: os-brick's encryptor keyword arguments, which Nova takes from
 * Cinder's volume encryption metadata (`GET /volumes/{id}/encryption`): `provider`, `cipher`,
 * `key_size` (bits), `control_location` (`front-end` or `back-end`) and `encryption_key_id`.
 *
 * Providers (os-brick `encryptors/__init__.py`): `luks` (LUKS1), `luks2`, `plain` (cryptsetup
 * plain mode, os-brick's deprecated `CryptsetupEncryptor`), and the legacy class paths os-brick
 * still maps to them (`nova.volume.encryptors.luks.LuksEncryptor`, ...); the `NoOpEncryptor`
 * paths mean no encryption on the host. A `back-end` control location means the storage
 * encrypts, so the host does nothing (os-brick then returns its `NoOpEncryptor`).
 *
 * @module
 */
import { InvalidInputError } from '../../errors.js';

/** The providers Brick implements. */
export type EncryptionProvider = 'luks' | 'luks2' | 'plain';

/** The encryption document with os-brick's (Cinder's) keys. */
export interface EncryptionDocument {
  /** `luks`, `luks2`, `plain`, or an os-brick/Nova class path alias. */
  provider?: string | null;
  /** cryptsetup cipher spec (`aes-xts-plain64`). */
  cipher?: string | null;
  /** Key size in bits (a number, or a string of digits as Cinder's API may give it). */
  key_size?: number | string | null;
  /** `front-end` (the host encrypts) or `back-end` (the storage does). Default `front-end`. */
  control_location?: string | null;
  /** The key manager's id of the volume's key (Cinder keeps it on the volume). */
  encryption_key_id?: string | null;
}

/** The encryption document validated, in camelCase. */
export interface EncryptionSpec {
  /** The provider, or null for "the host does nothing" (a NoOp provider or `back-end`). */
  provider: EncryptionProvider | null;
  cipher?: string;
  /** Bits. */
  keySize?: number;
  controlLocation: 'front-end' | 'back-end';
}

/**
 * Provider names and os-brick's legacy class paths (`LEGACY_PROVIDER_CLASS_TO_FORMAT_MAP` and
 * `FORMAT_TO_FRONTEND_ENCRYPTOR_MAP`), to Brick's provider; null for the no-op encryptor.
 */
export const PROVIDER_ALIASES: Readonly<Record<string, EncryptionProvider | null>> = {
  luks: 'luks',
  luks2: 'luks2',
  plain: 'plain',
  'nova.volume.encryptors.luks.LuksEncryptor': 'luks',
  'nova.volume.encryptors.cryptsetup.CryptsetupEncryptor': 'plain',
  'nova.volume.encryptors.nop.NoopEncryptor': null,
  'os_brick.encryptors.luks.LuksEncryptor': 'luks',
  'os_brick.encryptors.luks.Luks2Encryptor': 'luks2',
  'os_brick.encryptors.cryptsetup.CryptsetupEncryptor': 'plain',
  'os_brick.encryptors.nop.NoOpEncryptor': null,
  'os_brick.encryptors.nop.NoopEncryptor': null,
  LuksEncryptor: 'luks',
  Luks2Encryptor: 'luks2',
  CryptsetupEncryptor: 'plain',
  NoOpEncryptor: null,
};

const CIPHER = /^[a-z0-9][a-z0-9:_-]{0,63}$/;

/**
 * Normalise a provider name or alias.
 * @throws {@link InvalidInputError} (field `<field>.provider`) for an unknown provider
 */
export function normalizeProvider(provider: unknown, field = 'encryption'): EncryptionProvider | null {
  if (typeof provider === 'string' && Object.hasOwn(PROVIDER_ALIASES, provider)) return PROVIDER_ALIASES[provider]!;
  throw new InvalidInputError(`${field}.provider`, `must be luks, luks2 or plain (or an os-brick encryptor class path), got ${JSON.stringify(provider)}`);
}

/** A key size in bits from a number or a string of digits. @throws {@link InvalidInputError} (field `<field>.key_size`) */
function keySizeOf(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 128 || n > 4096 || n % 8 !== 0) {
    throw new InvalidInputError(`${field}.key_size`, `must be a number of bits, a multiple of 8 from 128 to 4096, got ${JSON.stringify(value)}`);
  }
  return n;
}

/**
 * Validate an encryption document (os-brick's keys) before anything runs.
 * @param field the name of the document in errors (`encryption`)
 * @throws {@link InvalidInputError} naming `<field>`, `<field>.provider`, `<field>.cipher`,
 *   `<field>.key_size` or `<field>.control_location`
 */
export function parseEncryption(doc: unknown, field = 'encryption'): EncryptionSpec {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidInputError(field, 'must be an object with os-brick encryption keys (provider, cipher, key_size, control_location)');
  const d = doc as EncryptionDocument;
  const location = d.control_location ?? 'front-end';
  if (typeof location !== 'string' || !['front-end', 'back-end'].includes(location.toLowerCase())) {
    throw new InvalidInputError(`${field}.control_location`, `must be front-end or back-end, got ${JSON.stringify(d.control_location)}`);
  }
  const controlLocation = location.toLowerCase() as 'front-end' | 'back-end';
  const provider = d.provider === undefined || d.provider === null ? null : normalizeProvider(d.provider, field);
  let cipher: string | undefined;
  if (d.cipher !== undefined && d.cipher !== null) {
    if (typeof d.cipher !== 'string' || !CIPHER.test(d.cipher)) throw new InvalidInputError(`${field}.cipher`, `must be a cryptsetup cipher such as aes-xts-plain64, got ${JSON.stringify(d.cipher)}`);
    cipher = d.cipher;
  }
  const keySize = keySizeOf(d.key_size, field);
  return { provider: controlLocation === 'back-end' ? null : provider, ...(cipher ? { cipher } : {}), ...(keySize ? { keySize } : {}), controlLocation };
}

/** The spec as an encryption document (os-brick's keys), for storing and printing. */
export function encryptionDocument(spec: EncryptionSpec): EncryptionDocument {
  return {
    provider: spec.provider,
    ...(spec.cipher ? { cipher: spec.cipher } : {}),
    ...(spec.keySize ? { key_size: spec.keySize } : {}),
    control_location: spec.controlLocation,
  };
}
