/**
 * The `AOE` connector: ATA over Ethernet through the kernel's `aoe` driver and aoetools.
 *
 * Follows os-brick's `AoEConnector` (removed from os-brick in 2020 with the CORAID driver; the
 * protocol and the kernel driver remain, and `vblade` exports AoE targets): connection
 * properties `target_shelf` and `target_lun`; the device is `/dev/etherd/e<shelf>.<lun>`
 * (sysfs `/sys/block/etherd!e<shelf>.<lun>`). Connect runs `aoe-revalidate e<shelf>.<lun>` when
 * the device is already known, else `aoe-discover`, and polls for the device, re-discovering
 * up to `deviceScanAttempts` times; disconnect runs `aoe-flush e<shelf>.<lun>`, which removes
 * that device from the driver's list. The lock is per device (`aoe-e<shelf>.<lun>`), not
 * os-brick's single `aoe_control` lock.
 *
 * @module
 */
import { InvalidInputError, VolumeDeviceNotFoundError, VolumePathNotRemovedError, ExtendError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { pathExists, readAttr } from '../../host/sysfs.js';
import { checkReadable } from '../../host/blockdev.js';
import { waitFor } from '../../host/retry.js';
import { presentAndReadable } from '../../host/condition.js';
import type { ConnectionProperties, Connector, DeviceInfo, DisconnectOptions, VolumeCondition } from '../connector.js';
import { openJournalScope, runJournaled, type AttachmentIdentity, type JournalScope } from '../../host/journal.js';
import { registerConnector } from '../factory.js';

/** Validated AoE connection properties. */
export interface AoeTarget {
  /** Shelf (major) address, 0-65534. */
  shelf: number;
  /** Slot (minor) address, os-brick's `target_lun`, 0-254. */
  lun: number;
  /** Driver name, `e<shelf>.<lun>`. */
  device: string;
  /** `/dev/etherd/e<shelf>.<lun>`. */
  path: string;
}

function intField(props: ConnectionProperties, key: string, max: number): number {
  const v = props[key];
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) throw new InvalidInputError(key, `must be an integer 0-${max}, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * Validate AoE connection properties.
 * @throws {@link InvalidInputError} (field `target_shelf` or `target_lun`)
 */
export function parseAoeProperties(props: ConnectionProperties): AoeTarget {
  if (props === null || typeof props !== 'object' || Array.isArray(props)) throw new InvalidInputError('connection_properties', 'must be an object');
  // The AoE protocol reserves shelf 0xffff and slot 0xff as broadcast addresses.
  const shelf = intField(props, 'target_shelf', 65534);
  const lun = intField(props, 'target_lun', 254);
  const device = `e${shelf}.${lun}`;
  return { shelf, lun, device, path: `/dev/etherd/${device}` };
}

/** The attach journal identity of the volume (`host/journal.ts`): the AoE address `<shelf>.<slot>`. */
export function aoeIdentity(t: AoeTarget): AttachmentIdentity {
  return { targets: [`${t.shelf}.${t.lun}`] };
}

/** Tunables of the AoE connector (ms). */
export interface AoeTimings {
  /** How long one discovery attempt waits for the device before discovering again. Default 2 000 (os-brick's interval). */
  discoveryWaitMs: number;
  /** How long disconnect waits for the device node to go after `aoe-flush`. Default 5 000. */
  removalWaitMs: number;
}

/** Connector for ATA over Ethernet volumes. */
export class AoeConnector implements Connector {
  readonly protocol = 'AOE';
  private readonly timings: AoeTimings;

  /**
   * @param ctx the host seams (aoetools run through its executor; `/dev/etherd` is read under its host root)
   * @param options `deviceScanAttempts` (discoveries before giving up) and optional {@link AoeTimings}
   */
  constructor(
    private readonly ctx: HostContext,
    private readonly options: { deviceScanAttempts: number; timings?: Partial<AoeTimings> },
  ) {
    this.timings = { discoveryWaitMs: 2_000, removalWaitMs: 5_000, ...(options.timings ?? {}) };
  }

  private exists(p: string): Promise<boolean> {
    return pathExists(this.ctx, p);
  }

  private run(argv: string[]): Promise<unknown> {
    return this.ctx.executor.run(argv, { timeoutMs: 30_000 });
  }

  /**
   * Discover (or revalidate) the target and return `{ type: 'block', path: '/dev/etherd/eS.L', device: 'eS.L' }`.
   * @throws {@link InvalidInputError} for bad properties, before anything runs
   * @throws {@link VolumeDeviceNotFoundError} when the device does not appear after `deviceScanAttempts` discoveries
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const t = parseAoeProperties(properties);
    return this.ctx.locks.withLock(`aoe-${t.device}`, async () => {
      const journal = await openJournalScope(this.ctx.journal, 'attach', this.protocol, properties, aoeIdentity(t));
      return runJournaled(journal, this.ctx.logger, () => this.connectLocked(t, journal), (info) => info);
    });
  }

  private async connectLocked(t: AoeTarget, journal: JournalScope): Promise<DeviceInfo> {
    if (await this.exists(t.path)) await this.run(['aoe-revalidate', t.device]);
    else {
      await journal.intent('aoe-device', t.path);
      await this.run(['aoe-discover']);
    }
    const attempts = Math.max(1, this.options.deviceScanAttempts);
    for (let attempt = 1; ; attempt++) {
      try {
        await waitFor(() => this.exists(t.path), { timeoutMs: this.timings.discoveryWaitMs, description: t.path });
        break;
      } catch {
        if (attempt >= attempts) {
          if (!(await this.exists(t.path))) await journal.removed('aoe-device', t.path);
          throw new VolumeDeviceNotFoundError(`AoE device ${t.path} did not appear after ${attempts} discoveries`, {
            field: 'target_shelf',
            details: { shelf: t.shelf, lun: t.lun },
          });
        }
        this.ctx.logger.info({ device: t.device, attempt }, 'AoE device not yet found; discovering again');
        await this.run(['aoe-discover']);
      }
    }
    return { type: 'block', path: t.path, device: t.device };
  }

  /**
   * `aoe-flush e<shelf>.<lun>` when the device is present, then wait for its node to go.
   * Detaching an absent device succeeds. `ignoreErrors` logs instead of throwing.
   * @throws {@link VolumePathNotRemovedError} when the flush fails or the device stays
   */
  async disconnectVolume(properties: ConnectionProperties, _deviceInfo: DeviceInfo | null, options: DisconnectOptions = {}): Promise<void> {
    const t = parseAoeProperties(properties);
    await this.ctx.locks.withLock(`aoe-${t.device}`, async () => {
      const journal = await openJournalScope(this.ctx.journal, 'detach', this.protocol, properties, aoeIdentity(t));
      await runJournaled(journal, this.ctx.logger, async () => {
        if (await this.exists(t.path)) {
          try {
            await this.run(['aoe-flush', t.device]);
            await waitFor(async () => !(await this.exists(t.path)), { timeoutMs: this.timings.removalWaitMs, description: `${t.path} to be removed` });
          } catch (e) {
            const err = new VolumePathNotRemovedError(`AoE device ${t.path} was not removed: ${(e as Error).message}`, { cause: e, details: { device: t.device } });
            if (options.ignoreErrors) this.ctx.logger.warn({ device: t.device, err: err.message }, 'AoE disconnect error ignored');
            else throw err;
            return;
          }
        }
        await journal.removed('aoe-device', t.path);
      });
    });
  }

  /**
   * `aoe-revalidate` the device and return its size in bytes from sysfs (`/sys/block/etherd!eS.L/size`, 512-byte sectors).
   * @throws {@link VolumeDeviceNotFoundError} when the device is not attached
   * @throws {@link ExtendError} when the size cannot be read
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const t = parseAoeProperties(properties);
    if (!(await this.exists(t.path))) throw new VolumeDeviceNotFoundError(`AoE device ${t.path} is not attached`, { field: 'target_shelf' });
    await this.run(['aoe-revalidate', t.device]);
    const sizeAttr = `/sys/block/etherd!${t.device}/size`;
    const sectors = Number((await readAttr(this.ctx, sizeAttr)) ?? NaN);
    if (!Number.isFinite(sectors)) throw new ExtendError(`could not read the size of ${t.path} (${sizeAttr} is missing or not a number)`, { details: { device: t.device } });
    return sectors * 512;
  }

  /** `[/dev/etherd/eS.L]` when present, else `[]`. */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    const t = parseAoeProperties(properties);
    return (await this.exists(t.path)) ? [t.path] : [];
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  /**
   * The volume's condition (see `Connector.checkVolumeCondition`): the device is there and its first block reads.
   * @throws {@link InvalidInputError} for bad properties
   */
  async checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    parseAoeProperties(properties);
    return presentAndReadable(this.ctx, deviceInfo.path, 'device');
  }

  getSearchPath(): string | null {
    return '/dev/etherd';
  }
}

registerConnector('AOE', (ctx, o) => new AoeConnector(ctx, { deviceScanAttempts: o.deviceScanAttempts, ...(o.timings ? { timings: o.timings as Partial<AoeTimings> } : {}) }));
