/**
 * The `LOCAL` connector: the volume is already a device (or file) on this host.
 *
 * os-brick's `LocalConnector`: connection property `device_path`; connect checks it exists and
 * returns it; disconnect does nothing; there is nothing to extend but the size is re-read.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { InvalidInputError, VolumeDeviceNotFoundError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { hostPath } from '../../host/context.js';
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
  constructor(private readonly host: HostContext) {}

  /**
   * Check that `device_path` exists and return `{ type: 'block' | 'file', path }`.
   * @throws {@link InvalidInputError} (field `device_path`) for a missing or relative path
   * @throws {@link VolumeDeviceNotFoundError} when the path does not exist
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const path = devicePath(properties);
    let st;
    try {
      st = await stat(hostPath(this.host.hostRoot, path));
    } catch {
      throw new VolumeDeviceNotFoundError(`device_path ${path} does not exist`, { field: 'device_path' });
    }
    return { type: st.isBlockDevice() ? 'block' : 'file', path };
  }

  /** Nothing to undo for a local device (os-brick does the same). Validates the properties. */
  async disconnectVolume(properties: ConnectionProperties): Promise<void> {
    devicePath(properties);
  }

  /** Re-read the device's size, in bytes. */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const path = devicePath(properties);
    const st = await stat(hostPath(this.host.hostRoot, path)).catch(() => null);
    if (!st) throw new VolumeDeviceNotFoundError(`device_path ${path} does not exist`, { field: 'device_path' });
    return st.isBlockDevice() ? deviceSizeBytes(this.host, path) : st.size;
  }

  /** `[device_path]`. */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    return [devicePath(properties)];
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.host, path);
  }

  getSearchPath(): string | null {
    return null;
  }
}

registerConnector('LOCAL', (_o, host) => new LocalConnector(host));
