/**
 * The `LOCAL` connector: the volume is already a device (or file) on this host.
 *
 * os-brick's `LocalConnector`: connection property `device_path`; connect checks it exists and
 * returns it; disconnect does nothing; there is nothing to extend but the size is re-read.
 *
 * @module
 */
import { InvalidInputError, VolumeDeviceNotFoundError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { statHostPath } from '../../host/files.js';
import { checkReadable, deviceSizeBytes } from '../../host/blockdev.js';
import type { ConnectionProperties, Connector, DeviceInfo } from '../connector.js';
import { registerConnector } from '../factory.js';

function devicePath(props: ConnectionProperties): string {
  if (props === null || typeof props !== 'object') throw new InvalidInputError('connection_properties', 'must be an object');
  const p = props.device_path;
  if (typeof p !== 'string' || p === '') throw new InvalidInputError('device_path', 'is required and must be a non-empty string');
  if (!p.startsWith('/')) throw new InvalidInputError('device_path', `must be an absolute path, got ${JSON.stringify(p)}`);
  return p;
}

/** Connector for volumes that are local devices. */
export class LocalConnector implements Connector {
  readonly protocol = 'LOCAL';
  /** @param ctx the host seams (the path is looked up under `ctx.hostRoot`) */
  constructor(private readonly ctx: HostContext) {}

  /**
   * Check that `device_path` exists and return `{ type: 'block' | 'file', path }`.
   * @throws {@link InvalidInputError} (field `device_path`) for a missing or relative path
   * @throws {@link VolumeDeviceNotFoundError} when the path does not exist
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const path = devicePath(properties);
    const st = await statHostPath(this.ctx, path);
    if (!st) throw new VolumeDeviceNotFoundError(`device_path ${path} does not exist`, { field: 'device_path' });
    return { type: st.kind === 'block' ? 'block' : 'file', path };
  }

  /** Nothing to undo for a local device (os-brick does the same). Validates the properties. */
  async disconnectVolume(properties: ConnectionProperties): Promise<void> {
    devicePath(properties);
  }

  /**
   * Re-read the size, in bytes: the block device's (sysfs, else `blockdev --getsize64`) or the file's.
   * @throws {@link InvalidInputError} (field `device_path`) for a missing or relative path
   * @throws {@link VolumeDeviceNotFoundError} when the path does not exist
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const path = devicePath(properties);
    const st = await statHostPath(this.ctx, path);
    if (!st) throw new VolumeDeviceNotFoundError(`device_path ${path} does not exist`, { field: 'device_path' });
    return st.kind === 'block' ? deviceSizeBytes(this.ctx, path) : st.size;
  }

  /** `[device_path]`. */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    return [devicePath(properties)];
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  getSearchPath(): string | null {
    return null;
  }
}

registerConnector('LOCAL', (ctx) => new LocalConnector(ctx));
