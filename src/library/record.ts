/**
 * The shared base of the stored objects ({@link Volume}, {@link Snapshot}, {@link Connection}):
 * cinderlib's `Object` (`cinderlib/objects.py`), which there wraps a Cinder versioned object and
 * saves it through the persistence plug-in.
 *
 * What every stored object has in common lives here: its identity in the context's identity map,
 * the stored version and timestamps, saving through the store, and the failure half of
 * cinderlib's error contract (an operation that fails leaves the object in `error`, saved, and
 * rethrows). {@link DriverObject} adds the driver step for the objects the driver creates
 * (volumes and snapshots): save the transitional status first, together with the owner marker
 * where the record has room for one, run the driver, then save the outcome or `error` with the
 * message.
 *
 * Owner marker: while a process works on an object, its record carries `<host>:<pid>` of that
 * process (a volume in `admin_metadata[brick_busy_owner]`, a snapshot or connection in
 * `busy_owner`). Start-up recovery: whoever loads a record whose marker names a dead process of
 * this host (see {@link StoredObject.interrupted}) marks it `error` ("interrupted while ..."), so
 * a crash never leaves a record that claims to be working. The judgement is made on the stored
 * record: when the save loses its compare-and-set (the record was read before its owner finished,
 * and the owner has exited since), the record is read again and judged afresh.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { ModelUpdate } from '../drivers/driver.js';
import type { BaseRecord } from '../persistence/store.js';
import { nowIso, StaleRecordError } from '../persistence/store.js';
import type { BrickContext } from './context.js';

/** The `admin_metadata` key holding the owner marker `<host>:<pid>` during a transitional status. */
export const BUSY_KEY = 'brick_busy_owner';

/**
 * The `admin_metadata` key a volume record carries (value `creating`) from the moment it is first
 * saved until its creation (new, clone or from a snapshot) has succeeded. A volume still marking
 * it had its create fail or interrupted: its storage may be missing or hold part of a copy, so it
 * is not connected, attached, extended, snapshotted or cloned (Cinder likewise only reserves an
 * `available` or `in-use` volume); it can be deleted. Records written before this key existed do
 * not carry it.
 */
export const CREATE_INCOMPLETE_KEY = 'brick_create_incomplete';

/** The statuses that mean "a process is working on this object now" (Cinder's `-ing` statuses). */
export const TRANSITIONAL: ReadonlySet<string> = new Set(['creating', 'deleting', 'extending', 'attaching', 'detaching']);

/** The kinds of stored object, the prefixes of their identity-map keys. */
export type ObjectKind = 'volume' | 'snapshot' | 'connection';

/** The identity-map key of an object: `<kind>:<id>`. */
export function objectKey(kind: ObjectKind, id: string): string {
  return `${kind}:${id}`;
}

/** An error's message, or the thrown value as text (what `error` columns keep). */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** This process's owner marker: `<host name>:<pid>`. */
export function busyOwner(ctx: BrickContext): string {
  return `${ctx.hostName}:${process.pid}`;
}

/**
 * Whether the owner marker names a process of this host that no longer runs. A missing marker
 * counts as dead; another host's process never does (not ours to judge), and this process only
 * when `selfIsDone` says that none of its own work on the object can be running (the caller
 * holds the object's operation lock).
 */
export function ownerIsDead(ctx: BrickContext, marker: string | null | undefined, selfIsDone = false): boolean {
  if (!marker) return true;
  const i = marker.lastIndexOf(':');
  const host = marker.slice(0, i);
  const pid = Number(marker.slice(i + 1));
  if (host !== ctx.hostName || !Number.isInteger(pid)) return false;
  if (pid === process.pid) return selfIsDone;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The common fields of a record for a new object: a random UUID, version 0 (never saved), both timestamps now. */
export function newBaseRecord(): BaseRecord {
  const now = nowIso();
  return { id: randomUUID(), version: 0, created_at: now, updated_at: now };
}

/**
 * The identity map: the object already loaded for `rec.id` (updated from `rec` when the record is
 * newer than what the object last saw), or a new one made by `create` and remembered. Loading the
 * same id twice therefore yields the same instance, as in cinderlib.
 */
export function identityMapped<R extends BaseRecord, O extends StoredObject<R, string>>(ctx: BrickContext, kind: ObjectKind, rec: R, create: () => O): O {
  const key = objectKey(kind, rec.id);
  let obj = ctx.objects.get(key) as O | undefined;
  if (obj) {
    if (rec.version > obj.version) obj.assign(rec);
  } else {
    obj = create();
    ctx.objects.set(key, obj);
  }
  return obj;
}

/**
 * A stored object: an id, the store version (optimistic concurrency), ISO-8601 timestamps and a
 * status, saved through the context's store. `S` is the object's status type; `error` is always
 * one of them.
 *
 * Subclasses call `assign(rec)` in their own constructor, after their fields exist.
 */
export abstract class StoredObject<R extends BaseRecord, S extends string> {
  readonly id: string;
  status!: S | 'error';
  createdAt!: string;
  updatedAt!: string;
  /** Store version (optimistic concurrency): 0 until first saved. */
  version!: number;

  protected constructor(id: string) {
    this.id = id;
  }

  /** @internal take the fields of a stored record. */
  abstract assign(rec: R): void;

  /** The stored shape (snake_case keys, as cinderlib serializes it). */
  abstract toRecord(): R;

  /** The fields every record has, from this object (first in every record, in this order). */
  protected baseRecord(): BaseRecord {
    return { id: this.id, version: this.version, created_at: this.createdAt, updated_at: this.updatedAt };
  }

  /** Take the status and the fields every record has from `rec`. */
  protected assignBase(rec: BaseRecord & { status: S | 'error' }): void {
    this.status = rec.status;
    this.createdAt = rec.created_at;
    this.updatedAt = rec.updated_at;
    this.version = rec.version;
  }

  /** The library context the object belongs to. */
  protected abstract get ctx(): BrickContext;

  /**
   * Write `rec` to the store (compare-and-set on its version); returns it as stored.
   * @throws {@link StaleRecordError} when someone else saved the object since it was read
   */
  protected abstract writeRecord(rec: R): Promise<R>;

  /**
   * Save the current state to the store.
   * @throws {@link StaleRecordError} when the stored record changed since this object read it
   */
  async save(): Promise<void> {
    this.updatedAt = nowIso();
    this.version = (await this.writeRecord(this.toRecord())).version;
  }

  /**
   * The failure half of cinderlib's error contract: status `error` (and the message, where the
   * record keeps one), saved. The save is best effort: the caller rethrows the original error.
   */
  protected async markFailed(err: unknown): Promise<void> {
    this.status = 'error';
    this.keepError(err);
    this.setOwnerMark(false);
    await this.save().catch(() => undefined);
  }

  /** Keep the failure message on the object. The base keeps none (a connection record has no `error` column). */
  protected keepError(_err: unknown): void {}

  /** The owner marker `<host>:<pid>` the record carries, or undefined. */
  abstract ownerMark(): string | undefined;

  /** @internal set this process's owner marker (`busy` true) or clear it. */
  abstract setOwnerMark(busy: boolean): void;

  /**
   * Whether the record claims work by a process that is gone: a transitional status whose owner
   * marker is missing or names a dead process of this host. With `lockHeld`, this process's own
   * marker counts as gone too (no operation of ours runs on the object outside its lock).
   */
  interrupted(lockHeld = false): boolean {
    return TRANSITIONAL.has(this.status) && ownerIsDead(this.ctx, this.ownerMark(), lockHeld);
  }

  /**
   * @internal Start-up recovery of one record: when {@link interrupted}, status `error` with
   * "interrupted while <status>" and the marker cleared, saved.
   * @returns whether the record was recovered
   */
  async recoverIfInterrupted(lockHeld = false): Promise<boolean> {
    for (;;) {
      if (!this.interrupted(lockHeld)) return false;
      const read = this.toRecord();
      const was = this.status;
      const owner = this.ownerMark() ?? 'unknown';
      this.status = 'error';
      this.keepError(new Error(`interrupted while ${was}: the process that was working on it (${owner}) is gone`));
      this.setOwnerMark(false);
      try {
        await this.save();
        return true;
      } catch (err) {
        if (!(err instanceof StaleRecordError)) throw err;
        // The record was read before its owner moved it on (and, maybe, exited): judge the
        // stored record instead. Each retry follows someone else's successful save.
        const cur = await this.readRecord();
        this.assign(cur ?? read);
        if (!cur) return false;
      }
    }
  }

  /** @internal the object's record as stored now, or undefined when it is gone. */
  protected abstract readRecord(): Promise<R | undefined>;
}

/**
 * A stored object that a driver creates and changes (a volume or a snapshot): it has an `error`
 * column for the last failure, and takes the driver's model updates.
 */
export abstract class DriverObject<R extends BaseRecord, S extends string> extends StoredObject<R, S> {
  /** The last error message while the status is `error`, else null. */
  error!: string | null;

  /** @internal apply the driver's model update (the keys this object's record stores). */
  abstract applyUpdate(update: ModelUpdate | void): void;

  /**
   * Run before the transitional status is saved (default: nothing).
   * @throws to refuse the operation before anything is saved
   */
  protected async beforeTransition(): Promise<void> {}

  protected override keepError(err: unknown): void {
    this.error = errorText(err);
  }

  /**
   * @internal Run a driver step under cinderlib's error contract: save `transitional` (with the
   * owner marker), run `fn`, apply its model update, save `done` (or `error` with the message,
   * and rethrow). A `deleted` outcome is never written: the caller removes the record next, so a
   * crash in between leaves the transitional record (marked `error` on the next start), not a
   * `deleted` one.
   * @param done the final status, or a function giving it once `fn` succeeded
   * @throws whatever `fn` or {@link beforeTransition} throws, after saving `error`
   */
  async runDriver<T>(transitional: S, done: S | (() => S), fn: () => Promise<T>): Promise<T> {
    await this.beforeTransition();
    this.status = transitional;
    this.error = null;
    this.setOwnerMark(true);
    await this.save();
    try {
      const result = await fn();
      if (result && typeof result === 'object' && !Array.isArray(result)) this.applyUpdate(result as ModelUpdate);
      this.status = typeof done === 'function' ? done() : done;
      this.setOwnerMark(false);
      if (this.status !== 'deleted') await this.save();
      return result;
    } catch (err) {
      await this.markFailed(err);
      throw err;
    }
  }
}
