/**
 * The `HUAWEISDSHYPERVISOR` connector: Huawei FusionStorage / SDS hypervisor volumes, attached
 * through the vendor's SDS CLI.
 *
 * Follows os-brick's `HuaweiStorHyperConnector` (`connectors/huawei.py`): connection property
 * `volume_id`; the CLI (default `/usr/local/bin/sds/sds_cli`, os-brick's
 * `HUAWEISDSHYPERVISORCLI_PATH`) is run as `<cli> -c attach|detach|querydev -v <volume_id>`
 * without root and answers `key=value` lines of which `ret_code`, `ret_desc` and `dev_addr`
 * count. Attach accepts codes 0, 50151401 (already attached) and 50151405 (attach done on the
 * management node); detach accepts 0, 50151209 (VBS abnormal) and 50155007 (not mounted on
 * this node); `querydev` with code 0 gives the device path.
 *
 * Beyond os-brick: a lock per volume instead of the host-wide one, a volume this call attached
 * is detached again when its device cannot be queried, the device path must exist, and
 * `extendVolume` reports the device's size instead of raising NotImplementedError.
 *
 * @module
 */
import { BackendError, InvalidConfigError, InvalidInputError, VolumeDeviceNotFoundError, VolumePathNotRemovedError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { programExists } from '../../host/files.js';
import { pathExists } from '../../host/sysfs.js';
import { checkReadable, deviceSizeBytes } from '../../host/blockdev.js';
import { waitFor } from '../../host/retry.js';
import { presentAndReadable } from '../../host/condition.js';
import type { ConnectionProperties, Connector, DeviceInfo, DisconnectOptions, VolumeCondition } from '../connector.js';
import { registerConnector } from '../factory.js';

/** The CLI's default location (os-brick's default). */
export const DEFAULT_SDS_CLI_PATH = '/usr/local/bin/sds/sds_cli';

/** Return codes with a meaning to the connector. */
export const SDS_CODES = {
  success: 0,
  alreadyAttached: 50151401,
  attachMnidDone: 50151405,
  vbsAbnormal: 50151209,
  notMountNode: 50155007,
} as const;

/** The fields of an SDS CLI answer os-brick reads. */
export interface SdsCliResult {
  ret_code?: number;
  ret_desc?: string;
  dev_addr?: string;
}

/** Parse the CLI's `key=value` lines, keeping `ret_code`, `ret_desc` and `dev_addr`. Pure. */
export function parseSdsCliOutput(text: string): SdsCliResult {
  const out: SdsCliResult = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const key = line.slice(0, i).trim();
    const val = line.slice(i + 1).trim();
    if (key === 'ret_code' && /^-?\d+$/.test(val)) out.ret_code = Number(val);
    else if (key === 'ret_desc') out.ret_desc = val;
    else if (key === 'dev_addr') out.dev_addr = val;
  }
  return out;
}

/**
 * Validate the connection properties: `volume_id` (a name the CLI accepts as one argument).
 * @throws {@link InvalidInputError} (field `volume_id`)
 */
export function parseSdsProperties(props: ConnectionProperties): { volumeId: string } {
  if (props === null || typeof props !== 'object' || Array.isArray(props)) throw new InvalidInputError('connection_properties', 'must be an object');
  const v = props.volume_id;
  if (typeof v !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}$/.test(v)) throw new InvalidInputError('volume_id', `must be a volume name of letters, digits, "_.:-", got ${JSON.stringify(v)}`);
  return { volumeId: v };
}

/** Connector for Huawei SDS hypervisor volumes. */
export class HuaweiSdsHypervisorConnector implements Connector {
  readonly protocol = 'HUAWEISDSHYPERVISOR';
  readonly cliPath: string;

  /**
   * @param ctx the host seams (the CLI runs through its executor, without root)
   * @param options `cliPath` (default {@link DEFAULT_SDS_CLI_PATH}) and `deviceWaitMs`, how long
   *   to wait for the device node after attach (ms, default 10 000)
   */
  constructor(
    private readonly ctx: HostContext,
    options: { cliPath?: string; deviceWaitMs?: number } = {},
  ) {
    this.cliPath = options.cliPath ?? DEFAULT_SDS_CLI_PATH;
    this.deviceWaitMs = options.deviceWaitMs ?? 10_000;
  }

  private readonly deviceWaitMs: number;

  private async cli(method: 'attach' | 'detach' | 'querydev', volumeId: string): Promise<SdsCliResult> {
    if (!(await programExists(this.cliPath))) {
      throw new InvalidConfigError(`the SDS CLI is not at ${this.cliPath} (set the connector option cliPath)`, { field: 'cliPath' });
    }
    const r = await this.ctx.executor.run([this.cliPath, '-c', method, '-v', volumeId], { root: false, timeoutMs: 120_000 });
    const res = parseSdsCliOutput(r.stdout);
    if (r.stderr.trim()) this.ctx.logger.warn({ method, volume_id: volumeId, stderr: r.stderr.trim() }, 'SDS CLI wrote to stderr');
    this.ctx.logger.debug({ method, volume_id: volumeId, ret_code: res.ret_code }, 'SDS CLI answered');
    return res;
  }

  private exists(p: string): Promise<boolean> {
    return pathExists(this.ctx, p);
  }

  private async devicePath(volumeId: string): Promise<string | undefined> {
    const q = await this.cli('querydev', volumeId);
    return q.ret_code === 0 && q.dev_addr ? q.dev_addr : undefined;
  }

  /**
   * Attach the volume and return `{ type: 'block', path: <dev_addr> }`.
   * @throws {@link InvalidInputError} for a bad `volume_id`, before anything runs
   * @throws {@link InvalidConfigError} when the CLI is missing
   * @throws {@link BackendError} when attach answers an error code
   * @throws {@link VolumeDeviceNotFoundError} when the device cannot be queried or does not appear (a fresh attach is undone)
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const { volumeId } = parseSdsProperties(properties);
    return this.ctx.locks.withLock(`huawei-sds-${volumeId}`, async () => {
      const a = await this.cli('attach', volumeId);
      const ok: number[] = [SDS_CODES.success, SDS_CODES.alreadyAttached, SDS_CODES.attachMnidDone];
      if (a.ret_code === undefined || !ok.includes(a.ret_code)) {
        throw new BackendError(`SDS attach of ${volumeId} failed with code ${a.ret_code ?? 'none'}: ${a.ret_desc ?? ''}`, { details: { volume_id: volumeId, ret_code: a.ret_code } });
      }
      try {
        const path = await this.devicePath(volumeId);
        if (!path) throw new VolumeDeviceNotFoundError(`SDS volume ${volumeId} attached but querydev gives no device`, { field: 'volume_id' });
        await waitFor(() => this.exists(path), { timeoutMs: this.deviceWaitMs, description: `${path} of SDS volume ${volumeId}` }).catch(() => {
          throw new VolumeDeviceNotFoundError(`SDS volume ${volumeId}: device ${path} did not appear`, { field: 'volume_id' });
        });
        return { type: 'block', path };
      } catch (e) {
        if (a.ret_code === SDS_CODES.success) {
          await this.cli('detach', volumeId).catch((d: unknown) => this.ctx.logger.warn({ volume_id: volumeId, err: (d as Error).message }, 'cleanup detach failed'));
        }
        throw e;
      }
    });
  }

  /**
   * Detach the volume. Codes 0, 50151209 and 50155007 count as detached.
   * @throws {@link VolumePathNotRemovedError} for other codes (unless `ignoreErrors`)
   */
  async disconnectVolume(properties: ConnectionProperties, _deviceInfo: DeviceInfo | null, options: DisconnectOptions = {}): Promise<void> {
    const { volumeId } = parseSdsProperties(properties);
    await this.ctx.locks.withLock(`huawei-sds-${volumeId}`, async () => {
      const d = await this.cli('detach', volumeId);
      const ok: number[] = [SDS_CODES.success, SDS_CODES.vbsAbnormal, SDS_CODES.notMountNode];
      if (d.ret_code !== undefined && ok.includes(d.ret_code)) return;
      const err = new VolumePathNotRemovedError(`SDS detach of ${volumeId} failed with code ${d.ret_code ?? 'none'}: ${d.ret_desc ?? ''}`, { details: { volume_id: volumeId, ret_code: d.ret_code } });
      if (options.ignoreErrors) this.ctx.logger.warn({ volume_id: volumeId, err: err.message }, 'SDS detach error ignored');
      else throw err;
    });
  }

  /**
   * The attached device's size in bytes.
   * @throws {@link VolumeDeviceNotFoundError} when the volume is not attached
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const { volumeId } = parseSdsProperties(properties);
    const path = await this.devicePath(volumeId);
    if (!path) throw new VolumeDeviceNotFoundError(`SDS volume ${volumeId} is not attached`, { field: 'volume_id' });
    return deviceSizeBytes(this.ctx, path);
  }

  /** `[dev_addr]` when `querydev` knows the volume, else `[]`. */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    const { volumeId } = parseSdsProperties(properties);
    const path = await this.devicePath(volumeId);
    return path ? [path] : [];
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  /**
   * The volume's condition (see `Connector.checkVolumeCondition`): the device is there and its first block reads.
   * @throws {@link InvalidInputError} for bad properties
   */
  async checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    parseSdsProperties(properties);
    return presentAndReadable(this.ctx, deviceInfo.path, 'device');
  }

  /** os-brick has none for this protocol. */
  getSearchPath(): string | null {
    return null;
  }
}

registerConnector('HUAWEISDSHYPERVISOR', (ctx, o) => new HuaweiSdsHypervisorConnector(ctx, {
  ...(typeof o.cliPath === 'string' ? { cliPath: o.cliPath } : {}),
  ...(typeof o.deviceWaitMs === 'number' ? { deviceWaitMs: o.deviceWaitMs } : {}),
}));
