/**
 * What the E-Series driver's parts share: the REST client, the parsed options, the logger and
 * the driver context, with the lookups every part needs (a volume by Cinder id, the pools the
 * pool pattern selects) and the array's persistent records, where the driver keeps its
 * indexes. Cinder keeps the same helpers on its `NetAppESeriesLibrary` (`_get_volume`,
 * `_get_storage_pools`) and its client (`list_backend_store`, `save_backend_store`).
 *
 * @module
 */
import { NotFoundError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { DriverContext, DriverVolume } from '../driver.js';
import type { EseriesRestClient } from './client.js';
import type { EseriesConfig } from './config.js';
import { isNotFound, type EsPool, type EsVolume } from './types.js';
import { uuidToLabel } from './utils.js';

/** A soft-delete index kept in a persistent record: object id -> ids (or sequence numbers) marked deleted. */
export type DeleteIndex = Record<string, string[]>;

/** The array as the driver's parts see it. One per driver. */
export class EseriesArray {
  constructor(
    /** The REST client (its `systemId` is set at setup). */
    readonly client: EseriesRestClient,
    /** The parsed driver options. */
    readonly config: EseriesConfig,
    /** The driver's logger (fields `driver`, `backend`). */
    readonly log: Logger,
    /** The driver context: host seams (locks), state directory, progress callback. */
    readonly ctx: DriverContext,
  ) {}

  /**
   * The volume labelled `label` (`ssc/volumes/{label}`; the array also accepts a ref or WWN).
   * @throws {@link NotFoundError} when the array has no such volume
   */
  async getVolumeByLabel(label: string): Promise<EsVolume> {
    return this.client.get<EsVolume>(`/ssc/volumes/${encodeURIComponent(label)}`);
  }

  /**
   * The array volume of a Cinder volume (labelled base32 of its id).
   * @param field the input field named when `volume.id` is not a UUID
   * @throws {@link InvalidInputError} (`field`) for an id that is not a UUID
   * @throws {@link NotFoundError} (`volume`, Cinder id) when the array has no such volume
   */
  async findVolume(volume: DriverVolume, field = 'volume.id'): Promise<EsVolume> {
    const label = uuidToLabel(volume.id, field);
    try {
      return await this.getVolumeByLabel(label);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError('volume', volume.id, { details: { label } });
      throw err;
    }
  }

  /** The storage pools whose label matches `netapp_pool_name_search_pattern`. */
  async filteredPools(): Promise<EsPool[]> {
    const pools = await this.client.get<EsPool[]>('/storage-pools');
    return pools.filter((p) => this.config.poolPattern.test(p.label));
  }

  /** Options for `waitFor` polling the array: bounded by `timeoutMs`, every `netapp_poll_interval`. */
  pollOptions(timeoutMs: number, description: string): { timeoutMs: number; intervalMs: number; maxIntervalMs: number; description: string } {
    return { timeoutMs, intervalMs: this.config.pollIntervalMs, maxIntervalMs: this.config.pollIntervalMs, description };
  }

  /** The JSON value of persistent record `key`, or undefined when it is missing or unreadable. */
  async readRecord(key: string): Promise<unknown> {
    try {
      const rec = await this.client.get<{ value: string }>(`/persistent-records/${encodeURIComponent(key)}`);
      return JSON.parse(rec.value) as unknown;
    } catch {
      return undefined;
    }
  }

  /** Store `value` as JSON in persistent record `key`. */
  async writeRecord(key: string, value: unknown): Promise<void> {
    await this.client.post('/persistent-records/', { key, value: JSON.stringify(value) });
  }

  /** Remove persistent record `key`; a missing record is fine. */
  async deleteRecord(key: string): Promise<void> {
    await this.client.delete(`/persistent-records/${encodeURIComponent(key)}`).catch(() => undefined);
  }

  /**
   * Read-modify-write the soft-delete index in record `key` under a host lock per array and
   * key, so two operations on this host cannot lose each other's marks. `fn` edits the index
   * in place and may call the array meanwhile.
   */
  async updateIndex(key: string, fn: (idx: DeleteIndex) => void | Promise<void>): Promise<void> {
    await this.ctx.locks.withLock(`eseries-index-${this.client.systemId}-${key}`, async () => {
      const parsed = await this.readRecord(key);
      const idx = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as DeleteIndex) : {};
      await fn(idx);
      await this.writeRecord(key, idx);
    });
  }
}
