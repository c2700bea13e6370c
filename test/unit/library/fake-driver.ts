/**
 * A `fake` volume driver and a `FAKE` connector for the library's unit tests, as cinderlib's unit
 * tests register a fake driver: no root, no devices, no programs run. The driver keeps its volumes
 * and snapshots in memory, records every call, can fail the next call of any method with a given
 * error, and can run a hook inside a call (to look at what the library saved before calling it).
 *
 * Importing this module registers both. A test reaches the instance as `backend.driver`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionInfo, DriverContext, DriverSnapshot, DriverVolume, ModelUpdate, VolumeDriver, VolumeStats } from '../../../src/drivers/driver.js';
import { registerDriver } from '../../../src/drivers/registry.js';
import type { Connector, DeviceInfo, VolumeCondition } from '../../../src/initiator/connector.js';
import { registerConnector } from '../../../src/initiator/factory.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { BackendError, InvalidInputError } from '../../../src/errors.js';
import { setup, Backend, type BrickContext } from '../../../src/library/index.js';
import { MemoryStore } from '../../../src/persistence/memory.js';

/** The driver methods a test may make fail or watch. */
export type FakeMethod = Exclude<keyof VolumeDriver, 'driverName' | 'connectorProtocol' | 'useMultipath' | 'close'>;

/**
 * The `fake` driver. Configuration: `capacity_gb` (default 100; `'infinite'` or `'unknown'` make
 * the stats report that word as Cinder drivers may), `multiattach` (default false).
 */
export class FakeDriver implements VolumeDriver {
  readonly driverName = 'fake';
  readonly connectorProtocol = 'FAKE';
  readonly useMultipath = false;
  /** Every call, in order, as `method` or `method <volume or snapshot id>`. */
  readonly calls: string[] = [];
  /** Volumes on the fake backend: id to size in GiB. */
  readonly volumes = new Map<string, number>();
  /** Snapshots on the fake backend: id to source volume id. */
  readonly snapshots = new Map<string, string>();
  /** Volumes with an export. */
  readonly exports = new Set<string>();
  /** Mappings: `<volume id> <connector host>`. */
  readonly mappings = new Set<string>();
  /** Runs inside the named call, before it does anything (e.g. to read the store). */
  readonly hooks = new Map<FakeMethod, () => void | Promise<void>>();
  private readonly failures = new Map<FakeMethod, Error>();
  private readonly capacityGb: number | 'infinite' | 'unknown';
  private readonly multiattach: boolean;

  constructor(config: Record<string, unknown>, readonly ctx: DriverContext) {
    const cap = config.capacity_gb;
    this.capacityGb = typeof cap === 'number' || cap === 'infinite' || cap === 'unknown' ? cap : 100;
    this.multiattach = config.multiattach === true;
  }

  /** Make the next call of `method` throw `err` (once). */
  failNext(method: FakeMethod, err: Error = new BackendError(`fake ${method} failed`)): void {
    this.failures.set(method, err);
  }

  /** Run `fn` inside the next calls of `method` (until cleared with `hooks.delete`). */
  during(method: FakeMethod, fn: () => void | Promise<void>): void {
    this.hooks.set(method, fn);
  }

  /** The calls of `method`. */
  callsOf(method: FakeMethod): string[] {
    return this.calls.filter((c) => c === method || c.startsWith(`${method} `));
  }

  private async enter(method: FakeMethod, id?: string): Promise<void> {
    this.calls.push(id === undefined ? method : `${method} ${id}`);
    await this.hooks.get(method)?.();
    const err = this.failures.get(method);
    if (err) {
      this.failures.delete(method);
      throw err;
    }
  }

  private used(): number {
    return [...this.volumes.values()].reduce((a, b) => a + b, 0);
  }

  async doSetup(): Promise<void> {
    await this.enter('doSetup');
  }
  async checkForSetupError(): Promise<void> {
    await this.enter('checkForSetupError');
  }
  async createVolume(volume: DriverVolume): Promise<ModelUpdate> {
    await this.enter('createVolume', volume.id);
    this.volumes.set(volume.id, volume.size);
    return { provider_location: `fake://${volume.name}` };
  }
  async deleteVolume(volume: DriverVolume): Promise<void> {
    await this.enter('deleteVolume', volume.id);
    this.volumes.delete(volume.id);
  }
  async createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate> {
    await this.enter('createSnapshot', snapshot.id);
    this.snapshots.set(snapshot.id, snapshot.volume_id);
    return { provider_location: `fake://${snapshot.name}`, provider_id: `snap-${snapshot.id.slice(0, 8)}` };
  }
  async deleteSnapshot(snapshot: DriverSnapshot): Promise<void> {
    await this.enter('deleteSnapshot', snapshot.id);
    this.snapshots.delete(snapshot.id);
  }
  async createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot): Promise<ModelUpdate> {
    await this.enter('createVolumeFromSnapshot', volume.id);
    if (!this.snapshots.has(snapshot.id)) throw new BackendError(`fake snapshot ${snapshot.id} does not exist`);
    this.volumes.set(volume.id, volume.size);
    return { provider_location: `fake://${volume.name}` };
  }
  async createClonedVolume(volume: DriverVolume, source: DriverVolume): Promise<ModelUpdate> {
    await this.enter('createClonedVolume', volume.id);
    if (!this.volumes.has(source.id)) throw new BackendError(`fake volume ${source.id} does not exist`);
    this.volumes.set(volume.id, volume.size);
    return { provider_location: `fake://${volume.name}` };
  }
  async extendVolume(volume: DriverVolume, newSize: number): Promise<void> {
    await this.enter('extendVolume', volume.id);
    this.volumes.set(volume.id, newSize);
  }
  async createExport(volume: DriverVolume): Promise<ModelUpdate> {
    await this.enter('createExport', volume.id);
    this.exports.add(volume.id);
    return { admin_metadata: { fake_export: `export-${volume.id.slice(0, 8)}` } };
  }
  async ensureExport(volume: DriverVolume): Promise<void> {
    await this.enter('ensureExport', volume.id);
    this.exports.add(volume.id);
  }
  async removeExport(volume: DriverVolume): Promise<void> {
    await this.enter('removeExport', volume.id);
    this.exports.delete(volume.id);
  }
  async initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo> {
    await this.enter('initializeConnection', volume.id);
    this.mappings.add(`${volume.id} ${String(connector.host)}`);
    return { driver_volume_type: 'fake', data: { volume_id: volume.id, device_path: `/dev/fake/${volume.id}`, size_gb: volume.size } };
  }
  async terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null): Promise<void> {
    await this.enter('terminateConnection', volume.id);
    for (const m of [...this.mappings]) if (m.startsWith(`${volume.id} `) && (connector === null || m === `${volume.id} ${String(connector.host)}`)) this.mappings.delete(m);
  }
  validateConnector(connector: ConnectorProperties): void {
    this.calls.push('validateConnector');
    if (typeof connector.host !== 'string') throw new InvalidInputError('connector.host', 'is required by the fake driver');
  }
  async getVolumeStats(): Promise<VolumeStats> {
    await this.enter('getVolumeStats');
    return {
      volume_backend_name: this.ctx.backendName,
      vendor_name: 'Brick tests',
      driver_version: '1.0',
      storage_protocol: 'fake',
      total_capacity_gb: this.capacityGb,
      free_capacity_gb: typeof this.capacityGb === 'number' ? this.capacityGb - this.used() : this.capacityGb,
      multiattach: this.multiattach,
    };
  }
  async manageExisting(volume: DriverVolume): Promise<void> {
    await this.enter('manageExisting', volume.id);
  }
  async manageExistingGetSize(volume: DriverVolume): Promise<number> {
    await this.enter('manageExistingGetSize', volume.id);
    return 1;
  }
  async unmanage(volume: DriverVolume): Promise<void> {
    await this.enter('unmanage', volume.id);
  }
}

/** The `FAKE` connector: the device is `data.device_path`; `failNextConnect` makes one connect fail. */
export class FakeConnector implements Connector {
  readonly protocol = 'FAKE';
  /** Every connect and disconnect, as `connect <volume id>` / `disconnect <volume id>`. */
  readonly calls: string[] = [];
  private nextConnectError: Error | undefined;

  /** Make the next connect throw `err` (once). */
  failNextConnect(err: Error): void {
    this.nextConnectError = err;
  }
  async connectVolume(properties: Record<string, unknown>): Promise<DeviceInfo> {
    this.calls.push(`connect ${String(properties.volume_id)}`);
    const err = this.nextConnectError;
    this.nextConnectError = undefined;
    if (err) throw err;
    return { type: 'block', path: String(properties.device_path) };
  }
  async disconnectVolume(properties: Record<string, unknown>): Promise<void> {
    this.calls.push(`disconnect ${String(properties.volume_id)}`);
  }
  async extendVolume(properties: Record<string, unknown>): Promise<number> {
    return Number(properties.size_gb) * 1024 ** 3;
  }
  async getVolumePaths(properties: Record<string, unknown>): Promise<string[]> {
    return [String(properties.device_path)];
  }
  async checkValidDevice(): Promise<boolean> {
    return true;
  }
  /** The condition the next checks report (default healthy); every check is recorded in {@link calls} as `condition <device path>`. */
  condition: VolumeCondition = { abnormal: false, message: 'ok', paths: [] };
  async checkVolumeCondition(_properties: Record<string, unknown>, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    this.calls.push(`condition ${deviceInfo.path}`);
    return this.condition;
  }
  getSearchPath(): string | null {
    return null;
  }
}

/** The one `FAKE` connector every `connectorFor('FAKE')` returns. */
export const fakeConnector = new FakeConnector();

/** Connector properties of another host named `host` (what a consumer would send). */
export function consumer(host: string): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux2', ip: '192.0.2.20', host, multipath: false, enforce_multipath: false };
}

registerDriver('fake', (config, ctx) => new FakeDriver(config, ctx));
registerConnector('FAKE', () => fakeConnector);

/**
 * A fresh library context (memory store, a recording executor that runs nothing, a temporary
 * state directory removed after the calling test) and a `fake` backend in it.
 */
export async function fakeBackend(t: TestContext, config: Record<string, unknown> = {}, name = 'fake1'): Promise<{ ctx: BrickContext; backend: Backend; driver: FakeDriver }> {
  const dir = await mkdtemp(join(tmpdir(), 'brick-lib-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ctx = setup({ stateDir: dir, hostRoot: dir, persistence: new MemoryStore(), executor: new RecordingExecutor(), hostName: 'unit-host', myIp: '192.0.2.10' });
  const backend = await Backend.create({ volume_backend_name: name, volume_driver: 'fake', ...config }, { context: ctx });
  return { ctx, backend, driver: backend.driver as FakeDriver };
}
