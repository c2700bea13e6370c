/**
 * Encryptors: os-brick's `VolumeEncryptor`s (`os_brick/encryptors/`), which put a dm-crypt
 * mapping between an attached volume's device and its user, so the data on the volume is
 * encrypted with a key the storage never sees (Cinder's "front-end" encryption).
 *
 * - `luks` / `luks2` (os-brick `LuksEncryptor` / `Luks2Encryptor`): on attach, a device without
 *   a LUKS header is formatted first (its first attach; a device that has one is never
 *   reformatted), then opened; extend resizes the mapping; detach closes it.
 * - `plain` (os-brick `CryptsetupEncryptor`): cryptsetup plain mode, no header, the cipher and
 *   key size given on every open. Extending resizes the mapping (os-brick does not implement it).
 *
 * The passphrase is the key's bytes as lower-case hex (os-brick `get_passphrase_from_secret`
 * for Cinder's symmetric keys), given to cryptsetup on stdin (`host/crypt.ts`).
 *
 * Mapping names follow os-brick: `crypt-<basename of the device path>`, or the older names it
 * still honours when such a mapping is active (the bare basename, or the multipath WWID). A
 * caller may name the mapping itself (the library uses `crypt-volume-<volume id>`, stable
 * across attaches whatever device the volume gets).
 *
 * The device info an attach returns is the connector's with `path` replaced by
 * `/dev/mapper/<name>` and an `encryptor` member (`provider`, `name`, `device_info`: the
 * connector's own), which detach and extend read back; {@link backingDeviceInfo} unwraps it for
 * the connector's disconnect.
 *
 * @module
 */
import { basename } from 'node:path';
import { EncryptionError, InvalidInputError } from '../../errors.js';
import { deviceSizeBytes } from '../../host/blockdev.js';
import { hostPathExists, type HostContext } from '../../host/context.js';
import { closeCrypt, cryptStatus, formatLuks, isLuks, openCrypt, resizeCrypt, checkMappingName } from '../../host/crypt.js';
import { attachmentKey } from '../../host/journal.js';
import { resolvePath } from '../../host/sysfs.js';
import type { DeviceInfo } from '../connector.js';
import type { EncryptionProvider, EncryptionSpec } from './spec.js';

/** What an encrypted device info carries besides the connector's fields. */
export interface EncryptorInfo {
  provider: EncryptionProvider;
  /** The mapping name (`/dev/mapper/<name>`). */
  name: string;
  /** The connector's device info (the encrypted, backing device). */
  device_info: DeviceInfo;
}

/** Options of {@link Encryptor.attachVolume}. */
export interface EncryptorAttachOptions {
  /** The mapping name; default os-brick's rule (see the module notes). */
  name?: string;
  /** The attach journal's attachment key to record the mapping under; default one derived from the device. */
  journalKey?: string;
}

/** A host-side encryptor (os-brick's `VolumeEncryptor`). */
export interface Encryptor {
  /** The provider, or null for the no-op encryptor. */
  readonly provider: EncryptionProvider | null;
  /**
   * Open the decrypted device over the attached one (formatting a LUKS device on first use).
   * @param deviceInfo what the connector's `connectVolume` returned
   * @param key the volume's key bytes
   * @returns the device info to use: `path` is `/dev/mapper/<name>`
   * @throws {@link EncryptionError} (reason `wrong-key` for a key the LUKS header refuses); no mapping is left behind
   */
  attachVolume(deviceInfo: DeviceInfo, key: Buffer, options?: EncryptorAttachOptions): Promise<DeviceInfo>;
  /**
   * Close the mapping; closing one that is not open succeeds.
   * @returns the connector's device info (for its disconnect)
   */
  detachVolume(deviceInfo: DeviceInfo): Promise<DeviceInfo>;
  /**
   * Grow the mapping to the backing device's new size.
   * @returns the decrypted device's size in bytes
   */
  extendVolume(deviceInfo: DeviceInfo, key: Buffer): Promise<number>;
}

/** The `encryptor` member of an encrypted device info, or undefined. */
export function encryptorInfo(deviceInfo: DeviceInfo | null | undefined): EncryptorInfo | undefined {
  const e = deviceInfo?.encryptor as EncryptorInfo | undefined;
  return e && typeof e === 'object' && typeof e.name === 'string' && e.device_info && typeof e.device_info === 'object' ? e : undefined;
}

/** The connector's device info under an encrypted one (the same object when it is not encrypted). */
export function backingDeviceInfo(deviceInfo: DeviceInfo): DeviceInfo {
  return encryptorInfo(deviceInfo)?.device_info ?? deviceInfo;
}

/**
 * The passphrase for a key: its bytes as lower-case hex (os-brick `get_passphrase_from_secret`).
 * @throws {@link InvalidInputError} (field `key`) for an empty key
 */
export function passphraseOf(key: Buffer): string {
  if (!Buffer.isBuffer(key) || key.length === 0) throw new InvalidInputError('key', 'must be a non-empty Buffer');
  return key.toString('hex');
}

/**
 * os-brick's mapping name for a device path: `crypt-<basename>`, unless a dm-crypt mapping with
 * an older name is active (the bare basename, or the multipath WWID), which is then reused.
 */
export async function defaultMappingName(ctx: HostContext, deviceInfo: DeviceInfo): Promise<string> {
  const base = basename(deviceInfo.path);
  const legacy = [base, typeof deviceInfo.multipath_id === 'string' ? deviceInfo.multipath_id : undefined].filter((n): n is string => !!n && /^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,126}$/.test(n));
  for (const name of legacy) {
    if ((await hostPathExists(ctx, `/dev/mapper/${name}`)) && (await cryptStatus(ctx, name))) return name;
  }
  return `crypt-${base}`;
}

/** The no-op encryptor (os-brick `NoOpEncryptor`): `back-end` encryption, or none. */
export class NoOpEncryptor implements Encryptor {
  readonly provider = null;
  constructor(private readonly ctx: HostContext) {}
  /** Returns `deviceInfo` as it is. */
  async attachVolume(deviceInfo: DeviceInfo): Promise<DeviceInfo> {
    return deviceInfo;
  }
  /** Returns `deviceInfo` as it is. */
  async detachVolume(deviceInfo: DeviceInfo): Promise<DeviceInfo> {
    return deviceInfo;
  }
  /**
   * Nothing to resize: the device's size in bytes.
   * @throws ProcessExecutionError when the size cannot be read
   */
  async extendVolume(deviceInfo: DeviceInfo): Promise<number> {
    return deviceSizeBytes(this.ctx, deviceInfo.path);
  }
}

/** What the LUKS and plain encryptors share: naming, journal records, close, extend. */
abstract class DmCryptEncryptor implements Encryptor {
  abstract readonly provider: EncryptionProvider;

  constructor(
    protected readonly ctx: HostContext,
    protected readonly spec: EncryptionSpec,
  ) {}

  /** Make `/dev/mapper/<name>` over `device` (the mapping does not exist yet). */
  protected abstract open(device: string, name: string, passphrase: string): Promise<void>;

  /**
   * @throws {@link InvalidInputError} (field `device_info.path`, `name`) before anything runs
   * @throws {@link EncryptionError} when cryptsetup fails (`wrong-key`, `busy`: the name is taken by a mapping over another device)
   */
  async attachVolume(deviceInfo: DeviceInfo, key: Buffer, options: EncryptorAttachOptions = {}): Promise<DeviceInfo> {
    if (!deviceInfo || typeof deviceInfo.path !== 'string' || !deviceInfo.path.startsWith('/')) throw new InvalidInputError('device_info.path', 'must be the absolute path of the attached device');
    if (encryptorInfo(deviceInfo)) throw new InvalidInputError('device_info', 'is already an encrypted device');
    const passphrase = passphraseOf(key);
    const name = options.name === undefined ? await defaultMappingName(this.ctx, deviceInfo) : checkMappingName(options.name);
    const mapped = `/dev/mapper/${name}`;
    const device = deviceInfo.path;
    const active = await cryptStatus(this.ctx, name);
    if (active) {
      // An attach interrupted after the open: the mapping is there, over this device or not.
      if (active.device !== device && !(await this.sameDevice(active.device, device))) {
        throw new EncryptionError(`cannot open ${device} as ${mapped}: that mapping exists already over ${active.device}`, { details: { reason: 'busy', target: mapped } });
      }
    } else {
      const journalKey = options.journalKey ?? attachmentKey('dm-crypt', { targets: [device] });
      await this.ctx.journal?.intent(journalKey, 'dm-crypt', mapped, { device, provider: this.provider });
      try {
        await this.open(device, name, passphrase);
      } catch (err) {
        if (!(await cryptStatus(this.ctx, name).catch(() => undefined))) await this.ctx.journal?.removed('dm-crypt', mapped);
        throw err;
      }
    }
    const info: EncryptorInfo = { provider: this.provider, name, device_info: deviceInfo };
    return { ...deviceInfo, type: 'block', path: mapped, encryptor: info };
  }

  /** Whether two device paths name the same block device (symlinks resolved by the status's device). */
  private async sameDevice(a: string, b: string): Promise<boolean> {
    const [ra, rb] = await Promise.all([resolvePath(this.ctx, a), resolvePath(this.ctx, b)]);
    return ra !== undefined && ra === rb;
  }

  /** The mapping name of an encrypted device info, or os-brick's name for a bare one. */
  private async nameOf(deviceInfo: DeviceInfo): Promise<string> {
    return encryptorInfo(deviceInfo)?.name ?? defaultMappingName(this.ctx, deviceInfo);
  }

  /**
   * @throws {@link EncryptionError} when cryptsetup cannot close it (reason `busy`: still open, e.g. mounted)
   */
  async detachVolume(deviceInfo: DeviceInfo): Promise<DeviceInfo> {
    const name = await this.nameOf(deviceInfo);
    await closeCrypt(this.ctx, name);
    await this.ctx.journal?.removed('dm-crypt', `/dev/mapper/${name}`);
    return backingDeviceInfo(deviceInfo);
  }

  /**
   * @throws {@link EncryptionError} when the mapping is not open or cryptsetup fails
   * @throws ProcessExecutionError when the new size cannot be read
   */
  async extendVolume(deviceInfo: DeviceInfo, key: Buffer): Promise<number> {
    const name = await this.nameOf(deviceInfo);
    await resizeCrypt(this.ctx, name, this.provider === 'plain' ? undefined : passphraseOf(key));
    return deviceSizeBytes(this.ctx, `/dev/mapper/${name}`);
  }
}

/** LUKS1 or LUKS2 (os-brick `LuksEncryptor`, `Luks2Encryptor`). */
export class LuksEncryptor extends DmCryptEncryptor {
  readonly provider: 'luks' | 'luks2';

  constructor(ctx: HostContext, spec: EncryptionSpec & { provider: 'luks' | 'luks2' }) {
    super(ctx, spec);
    this.provider = spec.provider;
  }

  /** Format when the device has no LUKS header (never otherwise), then open. */
  protected async open(device: string, name: string, passphrase: string): Promise<void> {
    if (!(await isLuks(this.ctx, device))) {
      this.ctx.logger.info({ device }, 'crypt: the device has no LUKS header; formatting it for first use');
      await formatLuks(this.ctx, { device, passphrase, version: this.provider === 'luks2' ? 'luks2' : 'luks1', cipher: this.spec.cipher, keySize: this.spec.keySize });
    }
    await openCrypt(this.ctx, { device, name, passphrase, type: 'luks' });
  }
}

/** cryptsetup plain mode (os-brick `CryptsetupEncryptor`). */
export class PlainEncryptor extends DmCryptEncryptor {
  readonly provider = 'plain';

  protected async open(device: string, name: string, passphrase: string): Promise<void> {
    await openCrypt(this.ctx, { device, name, passphrase, type: 'plain', cipher: this.spec.cipher, keySize: this.spec.keySize });
  }
}

/** The encryptor for a validated spec (os-brick `get_volume_encryptor`). */
export function encryptorFor(ctx: HostContext, spec: EncryptionSpec): Encryptor {
  switch (spec.provider) {
    case 'luks':
    case 'luks2':
      return new LuksEncryptor(ctx, { ...spec, provider: spec.provider });
    case 'plain':
      return new PlainEncryptor(ctx, spec);
    default:
      return new NoOpEncryptor(ctx);
  }
}
