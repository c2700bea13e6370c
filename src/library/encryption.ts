/**
 * Encrypted volumes in the object API: what Cinder's API and Nova's attach do around os-brick's
 * encryptors, for cinderlib's objects.
 *
 * - Create (Cinder's volume API `_create_encryption_key`): a key of `key_size` bits (default 256)
 *   is created in the context's key manager and its id kept on the volume record
 *   (`encryption_key_id`, as Cinder's volume has it), with the encryption spec (`encryption`:
 *   `provider`, `cipher`, `key_size`, `control_location`).
 * - Clone and volume from snapshot: the new volume's data is encrypted under its source's key, so
 *   it gets a copy of that key under a new id (Cinder clones the key the same way) and the same spec.
 * - Attach (Nova's `_attach_encryptor`): after the connector attached the device, the
 *   encryptor opens `/dev/mapper/crypt-volume-<volume id>` over it (a LUKS volume is formatted on
 *   its first attach); the connection's device info is the encrypted one, so its `path` is the
 *   decrypted device. Detach closes the mapping before the connector disconnects; extend resizes it.
 * - Delete: the key is deleted after the volume.
 *
 * The connection properties' `encrypted` flag is set for an encrypted volume as Cinder's volume
 * manager does in `initialize_connection`; connectors only carry it, as in os-brick.
 *
 * @module
 */
import { InvalidConfigError, InvalidInputError } from '../errors.js';
import type { DeviceInfo } from '../initiator/connector.js';
import { backingDeviceInfo, encryptorFor, encryptorInfo, parseEncryption, type EncryptionDocument, type EncryptionSpec } from '../initiator/encryptors/index.js';
import type { VolumeEncryptionRecord } from '../persistence/store.js';
import type { BrickContext } from './context.js';

/** The encryption fields of a new volume record. */
export interface VolumeEncryptionFields {
  encryption: VolumeEncryptionRecord | null;
  encryption_key_id: string | null;
}

/** What the library needs to know of a volume to encrypt its attachments. */
export interface EncryptedVolumeRef {
  id: string;
  encryption: VolumeEncryptionRecord | null;
  encryptionKeyId: string | null;
}

/** Defaults the library records for plain mode, whose device carries no header to say them. */
const PLAIN_DEFAULTS = { cipher: 'aes-xts-plain64', keySize: 512 } as const;

/**
 * Validate the `encryption` option of a new volume (os-brick's keys) and fill in what the volume
 * record keeps: provider default `luks`; plain mode gets `aes-xts-plain64` with a 512-bit key
 * unless told otherwise (recorded, so every open uses the same); LUKS leaves unset values to
 * cryptsetup, whose header records them.
 * @throws {@link InvalidInputError} naming `encryption.*`, or `encryption.control_location` for
 *   `back-end` and `encryption.provider` for a no-op provider (Brick's drivers do not encrypt)
 */
export function newVolumeEncryption(doc: EncryptionDocument): VolumeEncryptionRecord {
  const spec = parseEncryption({ provider: 'luks', ...doc }, 'encryption');
  if (spec.controlLocation !== 'front-end') throw new InvalidInputError('encryption.control_location', 'only front-end encryption is supported: Brick encrypts on the host');
  if (spec.provider === null) throw new InvalidInputError('encryption.provider', 'a no-op encryptor encrypts nothing; give luks, luks2 or plain');
  const filled = spec.provider === 'plain' ? { cipher: spec.cipher ?? PLAIN_DEFAULTS.cipher, keySize: spec.keySize ?? PLAIN_DEFAULTS.keySize } : { cipher: spec.cipher, keySize: spec.keySize };
  return {
    provider: spec.provider,
    ...(filled.cipher ? { cipher: filled.cipher } : {}),
    ...(filled.keySize ? { key_size: filled.keySize } : {}),
    control_location: 'front-end',
  };
}

/**
 * Create the key for a new encrypted volume: `key_size` bits, 256 when not given.
 * @returns the fields for the volume record
 * @throws the key manager's errors (nothing is stored then)
 */
export async function createVolumeKey(ctx: BrickContext, encryption: VolumeEncryptionRecord): Promise<VolumeEncryptionFields> {
  const id = await ctx.keyManager.createKey(encryption.key_size ?? 256);
  return { encryption, encryption_key_id: id };
}

/**
 * The encryption fields for a volume made from `source`'s data (a clone, or a volume from one of
 * its snapshots): a copy of its key under a new id, and its spec. Nothing for a plain volume.
 * @throws {@link InvalidConfigError} (field `key_manager.storeKey`) when the key manager cannot store a copy
 * @throws the key manager's errors
 */
export async function copyVolumeKey(ctx: BrickContext, source: EncryptedVolumeRef): Promise<VolumeEncryptionFields | undefined> {
  if (!source.encryption || !source.encryptionKeyId) return undefined;
  if (!ctx.keyManager.storeKey) throw new InvalidConfigError('the key manager cannot store a copy of a key, which a copy of an encrypted volume needs', { field: 'key_manager.storeKey' });
  const key = await ctx.keyManager.getKey(source.encryptionKeyId);
  return { encryption: { ...source.encryption }, encryption_key_id: await ctx.keyManager.storeKey(key) };
}

/** Delete a deleted volume's key; a failure is logged (the volume is gone), not thrown. */
export async function deleteVolumeKey(ctx: BrickContext, volumeId: string, keyId: string | null): Promise<void> {
  if (!keyId) return;
  try {
    await ctx.keyManager.deleteKey(keyId);
  } catch (err) {
    ctx.logger.warn({ volume_id: volumeId, key_id: keyId, err: err instanceof Error ? err.message : String(err) }, 'encryption key of a deleted volume could not be deleted');
  }
}

/** The mapping name of a volume's decrypted device: `crypt-volume-<volume id>`. */
export function mappingName(volumeId: string): string {
  return `crypt-volume-${volumeId}`;
}

function specOf(encryption: VolumeEncryptionRecord): EncryptionSpec {
  return parseEncryption(encryption, 'volume.encryption');
}

/**
 * After the connector attached `device`: the decrypted device over it for an encrypted volume
 * (see the module notes), or `device` itself.
 * @throws {@link EncryptionError} from the encryptor (reason `wrong-key`, `busy`...), no mapping left behind
 * @throws {@link NotFoundError} when the key manager has no such key
 */
export async function openVolumeEncryption(ctx: BrickContext, volume: EncryptedVolumeRef, device: DeviceInfo): Promise<DeviceInfo> {
  if (!volume.encryption || !volume.encryptionKeyId) return device;
  const key = await ctx.keyManager.getKey(volume.encryptionKeyId);
  try {
    return await encryptorFor(ctx, specOf(volume.encryption)).attachVolume(device, key, { name: mappingName(volume.id) });
  } finally {
    key.fill(0);
  }
}

/**
 * Before the connector detaches: close the mapping of an encrypted device info.
 * @returns the connector's device info
 * @throws {@link EncryptionError} when the mapping cannot be closed (still in use)
 */
export async function closeVolumeEncryption(ctx: BrickContext, device: DeviceInfo): Promise<DeviceInfo> {
  const info = encryptorInfo(device);
  if (!info) return device;
  await encryptorFor(ctx, parseEncryption({ provider: info.provider })).detachVolume(device);
  return backingDeviceInfo(device);
}

/**
 * After the connector saw the new size: resize the mapping of an encrypted device info.
 * @returns the decrypted device's size in bytes, or `connectorSize` when not encrypted
 * @throws {@link EncryptionError} when cryptsetup cannot resize it
 */
export async function extendVolumeEncryption(ctx: BrickContext, volume: EncryptedVolumeRef, device: DeviceInfo, connectorSize: number): Promise<number> {
  if (!encryptorInfo(device) || !volume.encryption || !volume.encryptionKeyId) return connectorSize;
  const key = await ctx.keyManager.getKey(volume.encryptionKeyId);
  try {
    return await encryptorFor(ctx, specOf(volume.encryption)).extendVolume(device, key);
  } finally {
    key.fill(0);
  }
}
