/**
 * The `LOCAL` connector: the volume is already a device (or file) on this host.
 *
 * os-brick's `LocalConnector`: connection property `device_path`; connect returns it; disconnect
 * does nothing; there is nothing to extend but the size is re-read. Unlike os-brick, which hands
 * back any path, Brick checks what the path is first: a block device (the file backend's loop
 * device, an LVM volume), or a regular file only when the caller allows it (connector option
 * `allowRegularFile`). A directory, a character device such as `/dev/null`, a FIFO or a socket,
 * or a symlink to one, is not a volume and is refused.
 *
 * @module
 */
import { InvalidInputError, VolumeDeviceNotFoundError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { statHostPath, type HostPathStat } from '../../host/files.js';
import { checkReadable, deviceSizeBytes } from '../../host/blockdev.js';
import { presentAndReadable } from '../../host/condition.js';
import type { ConnectionProperties, Connector, DeviceInfo, VolumeCondition } from '../connector.js';
import { registerConnector } from '../factory.js';

function devicePath(props: ConnectionProperties): string {
  if (props === null || typeof props !== 'object') throw new InvalidInputError('connection_properties', 'must be an object');
  const p = props.device_path;
  if (typeof p !== 'string' || p === '') throw new InvalidInputError('device_path', 'is required and must be a non-empty string');
  if (!p.startsWith('/')) throw new InvalidInputError('device_path', `must be an absolute path, got ${JSON.stringify(p)}`);
  return p;
}

/** Options of {@link LocalConnector} (the `LOCAL` entries of `connectorFor` options). */
export interface LocalConnectorOptions {
  /** Accept a regular file as the volume (device info type `file`). Default false: block devices only. */
  allowRegularFile?: boolean;
}

/**
 * What `device_path` may be attached as, given what is there (`st`, symlinks followed, as
 * {@link statHostPath} reports it).
 * @returns `block` for a block device; `file` for a regular file when `allowRegularFile`
 * @throws {@link VolumeDeviceNotFoundError} (field `device_path`) when nothing is there (`st` undefined)
 * @throws {@link InvalidInputError} (field `device_path`) for a regular file not allowed, a
 *   directory, or anything else (character device, FIFO, socket)
 */
export function localDeviceType(path: string, st: HostPathStat | undefined, allowRegularFile: boolean): 'block' | 'file' {
  if (!st) throw new VolumeDeviceNotFoundError(`device_path ${path} does not exist`, { field: 'device_path' });
  if (st.kind === 'block') return 'block';
  if (st.kind === 'file' && allowRegularFile) return 'file';
  const what = st.kind === 'file' ? 'a regular file (this connector accepts block devices only)' : st.kind === 'directory' ? 'a directory' : 'neither a block device nor a regular file';
  throw new InvalidInputError('device_path', `${path} is ${what}`);
}

/** Connector for volumes that are local devices. */
export class LocalConnector implements Connector {
  readonly protocol = 'LOCAL';
  private readonly allowRegularFile: boolean;

  /**
   * @param ctx the host seams (the path is looked up under `ctx.hostRoot`)
   * @param options `allowRegularFile` (default false)
   * @throws {@link InvalidInputError} (field `allowRegularFile`) when it is given and not a boolean
   */
  constructor(
    private readonly ctx: HostContext,
    options: LocalConnectorOptions = {},
  ) {
    if (options.allowRegularFile !== undefined && typeof options.allowRegularFile !== 'boolean') {
      throw new InvalidInputError('allowRegularFile', `must be true or false, got ${JSON.stringify(options.allowRegularFile)}`);
    }
    this.allowRegularFile = options.allowRegularFile ?? false;
  }

  /**
   * Check what `device_path` is ({@link localDeviceType}) and return `{ type: 'block' | 'file', path }`.
   * Runs no program.
   * @throws {@link InvalidInputError} (field `device_path`) for a missing or relative path, or a
   *   path that is not a block device (or an allowed regular file)
   * @throws {@link VolumeDeviceNotFoundError} (field `device_path`) when the path does not exist
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const path = devicePath(properties);
    return { type: localDeviceType(path, await statHostPath(this.ctx, path), this.allowRegularFile), path };
  }

  /** Nothing to undo for a local device (os-brick does the same). Validates the properties. */
  async disconnectVolume(properties: ConnectionProperties): Promise<void> {
    devicePath(properties);
  }

  /**
   * Re-read the size, in bytes: the block device's (sysfs, else `blockdev --getsize64`) or the
   * allowed regular file's.
   * @throws {@link InvalidInputError} (field `device_path`) as {@link connectVolume}
   * @throws {@link VolumeDeviceNotFoundError} (field `device_path`) when the path does not exist
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const path = devicePath(properties);
    const st = await statHostPath(this.ctx, path);
    return localDeviceType(path, st, this.allowRegularFile) === 'block' ? deviceSizeBytes(this.ctx, path) : st!.size;
  }

  /** `[device_path]`. */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    return [devicePath(properties)];
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  /**
   * The volume's condition (see `Connector.checkVolumeCondition`): the device is there and its first block reads.
   * @throws {@link InvalidInputError} for bad properties
   */
  async checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    devicePath(properties);
    return presentAndReadable(this.ctx, deviceInfo.path, 'device');
  }

  getSearchPath(): string | null {
    return null;
  }
}

registerConnector('LOCAL', (ctx, options) => new LocalConnector(ctx, { allowRegularFile: options.allowRegularFile as boolean | undefined }));
