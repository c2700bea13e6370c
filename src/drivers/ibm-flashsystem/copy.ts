/**
 * Snapshots, clones and volumes from snapshots of the FlashSystem driver: a new vdisk of the
 * source's byte capacity filled either by a FlashCopy mapping (`mkfcmap -autodelete`,
 * `startfcmap -prep`, progress from `lsfcmap`) when the array has FlashCopy, or by Cinder's
 * host-side copy (`_copy_vdisk_data`: both vdisks mapped to this host, attached with Brick's
 * iSCSI connector, copied by {@link copyVolumeData} through the executor with progress, detached
 * and unmapped), then grown to the requested size. A failed copy deletes the new vdisk (Cinder
 * left it behind).
 *
 * @module
 */
import { BackendError, InvalidInputError } from '../../errors.js';
import { copyVolumeData } from '../../host/copy.js';
import { waitFor } from '../../host/retry.js';
import type { Connector, DeviceInfo } from '../../initiator/connector.js';
import type { ConnectorProperties } from '../../initiator/properties.js';
import type { ConnectionInfo } from '../driver.js';
import { GIB, type FlashSystemArray } from './array.js';
import { attr, cliError, cmmvcCode, NOT_FOUND_CODES, parseDetailed, v } from './cli.js';
import type { FlashSystemHostMapper } from './host-mapping.js';

/** Seams for the host-side copy (tests replace them; production uses the real host). */
export interface HostCopySeams {
  /** This host's connector properties (must carry `initiator`). */
  connectorProperties(): Promise<ConnectorProperties>;
  /** An iSCSI connector. */
  connector(): Connector;
}

const MIB = 1024 * 1024;

/** One vdisk attached to this host for a host-side copy. */
interface Attached {
  vdisk: string;
  mappedHere: boolean;
  info?: ConnectionInfo;
  device?: DeviceInfo;
}

/** Fills new vdisks with the data of existing ones. */
export class FlashSystemCopier {
  constructor(
    private readonly array: FlashSystemArray,
    private readonly mapper: FlashSystemHostMapper,
    private readonly hostCopy: HostCopySeams,
    private readonly validateConnector: (connector: ConnectorProperties) => void,
  ) {}

  private progress(done: number, total: number): void {
    this.array.ctx.onProgress?.('copy', done, total);
  }

  /**
   * Create vdisk `target` with `source`'s byte capacity, copy the data, then grow it to
   * `sizeGib` when given. On any failure the new vdisk is deleted again. Returns the new vdisk id.
   * @throws {@link InvalidInputError} (field `volume.size`) when `sizeGib` is smaller than the source
   */
  async copyToNew(source: string, target: string, sizeGib: number | undefined): Promise<string> {
    const a = this.array;
    return a.withVdiskLocks([source, target], async () => {
      const capacity = a.capacityOf(await a.requireVdisk(source), source);
      if (sizeGib !== undefined && sizeGib * GIB < capacity) throw new InvalidInputError('volume.size', `${sizeGib} GiB is smaller than ${source} (${capacity} bytes)`);
      const id = await a.mkvdisk(target, capacity, 'b');
      try {
        if (a.flashCopy) await this.flashCopyData(source, target, capacity);
        else await this.hostCopyData(source, target, capacity);
        if (sizeGib !== undefined && sizeGib * GIB > capacity) await a.expandVdisk(target, sizeGib * GIB - capacity);
      } catch (err) {
        try {
          await a.rmvdisk(target);
        } catch (cleanupErr) {
          a.ctx.logger.error({ vdisk: target, err: (cleanupErr as Error).message }, 'could not delete the vdisk of a failed copy');
        }
        throw err;
      }
      return id;
    });
  }

  /** One `lsfcmap` poll: true when the mapping finished (or auto-deleted itself). */
  private async fcMapDone(mapName: string, source: string, target: string, capacity: number): Promise<boolean> {
    const r = await this.array.runRaw(['svcinfo', 'lsfcmap', '-delim', '!', v(mapName)]);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return true; // copied and auto-deleted
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'FlashCopy mapping', id: mapName });
    const view = parseDetailed(r.stdout);
    const status = attr(view, 'status');
    const progress = Number(attr(view, 'progress') ?? '0');
    this.progress(Math.floor((capacity * progress) / 100), capacity);
    if (status === 'idle_or_copied' && progress >= 100) return true;
    if (status !== 'copying' && status !== 'preparing' && status !== 'prepared') {
      throw new BackendError(`FlashCopy mapping ${mapName} from ${source} to ${target} is ${status ?? 'in an unknown state'} at ${progress}%`);
    }
    return false;
  }

  private async flashCopyData(source: string, target: string, capacity: number): Promise<void> {
    const a = this.array;
    const mapName = `brick-fc-${target}`.slice(0, 63);
    const id = await a.cliCreate(
      ['svctask', 'mkfcmap', '-source', v(source), '-target', v(target), '-name', v(mapName), '-copyrate', a.config.copyRate, '-autodelete'],
      { kind: 'FlashCopy mapping', id: mapName },
    );
    try {
      await a.cliSilent(['svctask', 'startfcmap', '-prep', Number(id)], { kind: 'FlashCopy mapping', id });
      this.progress(0, capacity);
      await waitFor(() => this.fcMapDone(mapName, source, target, capacity), {
        timeoutMs: a.config.copyTimeoutMs,
        intervalMs: 50,
        maxIntervalMs: 2000,
        description: `FlashCopy of ${source} to ${target}`,
      });
      this.progress(capacity, capacity);
      // Without -autodelete support the mapping stays: remove it.
      const left = await a.runRaw(['svcinfo', 'lsfcmap', '-delim', '!', v(mapName)]);
      if (left.exitCode === 0 && left.stderr.trim() === '') await a.runRaw(['svctask', 'rmfcmap', '-force', v(mapName)]);
    } catch (err) {
      await a.runRaw(['svctask', 'stopfcmap', '-force', v(mapName)]).catch(() => undefined);
      await a.runRaw(['svctask', 'rmfcmap', '-force', v(mapName)]).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Cinder's `_copy_vdisk_data`: map both vdisks to this host, attach them with the iSCSI
   * connector, copy `capacity` bytes with progress, then detach and unmap what this call mapped.
   */
  private async hostCopyData(source: string, target: string, capacity: number): Promise<void> {
    const props = await this.hostCopy.connectorProperties();
    this.validateConnector(props);
    const connector = this.hostCopy.connector();
    const attached: Attached[] = [];
    try {
      for (const vdisk of [source, target]) {
        const entry: Attached = { vdisk, mappedHere: false };
        attached.push(entry);
        const mapping = await this.mapper.mapVdisk(vdisk, props);
        entry.mappedHere = mapping.created;
        entry.info = await this.mapper.connectionInfo(vdisk, mapping.lun, vdisk);
        entry.device = await connector.connectVolume(entry.info.data);
      }
      await this.copyDevice(attached[0]!.device!.path, attached[1]!.device!.path, capacity);
    } finally {
      await this.detachAll(attached.reverse(), connector, props);
    }
  }

  private async detachAll(attached: Attached[], connector: Connector, props: ConnectorProperties): Promise<void> {
    for (const entry of attached) {
      try {
        if (entry.device && entry.info) await connector.disconnectVolume(entry.info.data, entry.device, {});
        if (entry.mappedHere) await this.mapper.unmapVdisk(entry.vdisk, props);
      } catch (err) {
        this.array.ctx.logger.error({ vdisk: entry.vdisk, err: (err as Error).message }, 'cleanup after a host-side copy failed');
      }
    }
  }

  /**
   * Copy `total` bytes between the attached devices with `dd` through the executor (a root
   * helper serves a non-root caller), `volume_dd_blocksize` blocks, direct I/O, in runs of at
   * most 128 MiB and at most a sixteenth of the copy, so progress moves even for small volumes;
 * the last run syncs the destination.
   */
  private async copyDevice(from: string, to: string, total: number): Promise<void> {
    const block = this.array.config.copyBlockSize;
    const sixteenth = Math.ceil(total / 16 / block) * block;
    const chunkBytes = Math.max(block, Math.min(128 * MIB, sixteenth));
    const perRunMs = Math.min(this.array.config.copyTimeoutMs, 60_000 + Math.ceil(chunkBytes / MIB) * 1_000);
    await copyVolumeData(this.array.ctx, from, to, {
      sizeBytes: total,
      blockBytes: block,
      chunkBytes,
      timeoutMs: perRunMs,
      sync: true,
      onProgress: (done, all) => this.progress(done, all),
    });
  }
}
