/**
 * Serialization of the object API: cinderlib's `json` / `jsons` / `dump` / `dumps` properties and
 * `cinderlib.load(...)`, as functions.
 *
 * Every form is a plain JSON object with a `class` key (`Backend`, `Volume`, `Snapshot`,
 * `Connection`), a `format` (currently `1`), the owning backend, and the stored records
 * ({@link VolumeRecord}, {@link SnapshotRecord}, {@link ConnectionRecord}) verbatim, with their
 * snake_case keys, ISO-8601 timestamps and store `version`:
 *
 * ```jsonc
 * // Volume: the record plus its snapshots and connections (records, without back-references)
 * { "class": "Volume", "format": 1, "backend": { "volume_backend_name": "lvm1" },
 *   "record": { "id": "…", "version": 3, "size": 1, "status": "in-use", … },
 *   "snapshots": [ { "id": "…", "volume_id": "…", … } ],
 *   "connections": [ { "id": "…", "conn_info": { "driver_volume_type": "iscsi", "data": { … } }, … } ] }
 * // Snapshot and Connection: the record plus the owning volume's record (so a load can rebuild
 * // the back-reference on a host that has never seen the volume)
 * { "class": "Snapshot", "format": 1, "backend": { … }, "record": { … }, "volume": { … } }
 * { "class": "Connection", "format": 1, "backend": { … }, "record": { … }, "volume": { … } }
 * // Backend: its configuration (name only, unless `allBackendInfo`) and its volumes' forms
 * { "class": "Backend", "format": 1, "backend": { "volume_backend_name": "lvm1" }, "volumes": [ … ] }
 * ```
 *
 * Differences from cinderlib, on purpose: there is no Cinder versioned-object envelope (`ovo`);
 * the records are the envelope. Cycles cannot occur because children are serialized as records
 * and the parent as a record. `json` and `dump` differ as in cinderlib: `json` serializes what is
 * in memory, `dump` first reloads the lazy parts from the store (a volume's snapshots and
 * connections; a backend's volumes).
 *
 * The documents hold everything the store holds, including connection secrets (CHAP passwords in
 * `conn_info.data`, `provider_auth`) and, with `allBackendInfo`, the backend's configuration
 * (array passwords): protect them like the store itself.
 *
 * @module
 */
import { z } from 'zod';
import { InvalidInputError, NotFoundError, PersistenceError } from '../errors.js';
import type { ConnectionRecord, SnapshotRecord, Store, VolumeRecord } from '../persistence/store.js';
import { StaleRecordError } from '../persistence/store.js';
import { currentContext, type BrickContext } from './context.js';
import { Backend, type BackendConfig } from './backend.js';
import { Connection } from './connection.js';
import { Snapshot } from './snapshot.js';
import { Volume } from './volume.js';

/** The serialization format version written into every form. */
export const SERIALIZATION_FORMAT = 1;

/** The `backend` key of a form: the name, or the whole configuration (see {@link JsonOptions.allBackendInfo}). */
export type BackendRef = { volume_backend_name: string } | BackendConfig;

/** A serialized volume. */
export interface VolumeJson {
  class: 'Volume';
  format: number;
  backend: BackendRef;
  record: VolumeRecord;
  snapshots: SnapshotRecord[];
  connections: ConnectionRecord[];
}

/** A serialized snapshot (with its volume's record). */
export interface SnapshotJson {
  class: 'Snapshot';
  format: number;
  backend: BackendRef;
  record: SnapshotRecord;
  volume: VolumeRecord;
}

/** A serialized connection (with its volume's record). */
export interface ConnectionJson {
  class: 'Connection';
  format: number;
  backend: BackendRef;
  record: ConnectionRecord;
  volume: VolumeRecord;
}

/** A serialized backend: its configuration and its volumes. */
export interface BackendJson {
  class: 'Backend';
  format: number;
  backend: BackendRef;
  volumes: VolumeJson[];
}

/** Any serialized form. */
export type SerializedObject = VolumeJson | SnapshotJson | ConnectionJson | BackendJson;

/** What can be serialized: one object, or a context (= every backend it has, cinderlib's `cl.json()`). */
export type Serializable = Backend | Volume | Snapshot | Connection;

/** Options of {@link json} and {@link dump}. */
export interface JsonOptions {
  /**
   * Write the backend's whole configuration instead of only its name, so that {@link load} can
   * create the backend on a host that has not configured it (cinderlib's
   * `output_all_backend_info`). The configuration may hold secrets. Default false.
   */
  allBackendInfo?: boolean;
}

/** Options of {@link load}. */
export interface LoadOptions {
  /**
   * Write the loaded records to the context's store (cinderlib `save=True`): inserted when missing,
   * overwritten when present. The objects then carry the store's new `version`. Default false:
   * the objects exist only in memory (their records keep the document's `version`).
   */
  save?: boolean;
  /** The library context to load into. Default: the most recent `setup()`. */
  context?: BrickContext;
}

function backendRef(b: Backend, o: JsonOptions): BackendRef {
  return o.allBackendInfo ? { ...b.config } : { volume_backend_name: b.id };
}

function volumeForm(v: Volume, o: JsonOptions): VolumeJson {
  return {
    class: 'Volume',
    format: SERIALIZATION_FORMAT,
    backend: backendRef(v.backend, o),
    record: v.toRecord(),
    snapshots: v.snapshots.map((s) => s.toRecord()),
    connections: v.connections.map((c) => c.toRecord()),
  };
}

function jsonOf(target: Serializable | BrickContext | undefined, o: JsonOptions): SerializedObject | BackendJson[] {
  if (target instanceof Volume) return volumeForm(target, o);
  if (target instanceof Snapshot) {
    return { class: 'Snapshot', format: SERIALIZATION_FORMAT, backend: backendRef(target.volume.backend, o), record: target.toRecord(), volume: target.volume.toRecord() };
  }
  if (target instanceof Connection) {
    return { class: 'Connection', format: SERIALIZATION_FORMAT, backend: backendRef(target.volume.backend, o), record: target.toRecord(), volume: target.volume.toRecord() };
  }
  if (target instanceof Backend) {
    return { class: 'Backend', format: SERIALIZATION_FORMAT, backend: backendRef(target, o), volumes: target.volumes.map((v) => volumeForm(v, o)) };
  }
  const ctx = target ?? currentContext();
  return [...ctx.backends.values()].filter((b): b is Backend => b instanceof Backend).map((b) => jsonOf(b, o) as BackendJson);
}

/**
 * The serialized form of what is in memory, without reading the store (cinderlib's `json`
 * property). With no target (or a context): every backend of the context, as an array
 * (cinderlib's `cl.json()`).
 */
export function json(target: Volume, options?: JsonOptions): VolumeJson;
export function json(target: Snapshot, options?: JsonOptions): SnapshotJson;
export function json(target: Connection, options?: JsonOptions): ConnectionJson;
export function json(target: Backend, options?: JsonOptions): BackendJson;
export function json(target?: BrickContext, options?: JsonOptions): BackendJson[];
export function json(target?: Serializable | BrickContext, options: JsonOptions = {}): SerializedObject | BackendJson[] {
  return jsonOf(target, options);
}

/** {@link json} as a compact JSON string (cinderlib's `jsons`: no spaces). */
export function jsons(target?: Serializable | BrickContext, options: JsonOptions = {}): string {
  return JSON.stringify(jsonOf(target, options));
}

/**
 * Like {@link json}, but first reloads the lazy parts from the store (cinderlib's `dump`): a
 * volume's snapshots and connections, a backend's volumes (with theirs), a snapshot's or
 * connection's volume record.
 * @throws {@link PersistenceError} when the store cannot be read
 */
export async function dump(target: Volume, options?: JsonOptions): Promise<VolumeJson>;
export async function dump(target: Snapshot, options?: JsonOptions): Promise<SnapshotJson>;
export async function dump(target: Connection, options?: JsonOptions): Promise<ConnectionJson>;
export async function dump(target: Backend, options?: JsonOptions): Promise<BackendJson>;
export async function dump(target?: BrickContext, options?: JsonOptions): Promise<BackendJson[]>;
export async function dump(target?: Serializable | BrickContext, options: JsonOptions = {}): Promise<SerializedObject | BackendJson[]> {
  return dumpOf(target, options);
}

async function dumpOf(target: Serializable | BrickContext | undefined, options: JsonOptions): Promise<SerializedObject | BackendJson[]> {
  if (target instanceof Volume) await target.loadChildren();
  else if (target instanceof Snapshot || target instanceof Connection) await target.volume.loadChildren();
  else if (target instanceof Backend) await target.getVolumes();
  else {
    const ctx = target ?? currentContext();
    for (const b of ctx.backends.values()) if (b instanceof Backend) await b.getVolumes();
  }
  return jsonOf(target, options);
}

/** {@link dump} as a compact JSON string (cinderlib's `dumps`). */
export async function dumps(target?: Serializable | BrickContext, options: JsonOptions = {}): Promise<string> {
  return JSON.stringify(await dumpOf(target, options));
}

// ---- validation of documents -------------------------------------------------------------------

const iso = z.string().min(1);
const baseShape = { id: z.string().min(1), version: z.number().int().min(0), created_at: iso, updated_at: iso };
const nullableString = z.string().nullable();

const volumeRecordSchema = z
  .object({
    ...baseShape,
    backend: z.string().min(1),
    name: z.string(),
    description: z.string(),
    size: z.number().int().positive(),
    status: z.enum(['creating', 'available', 'in-use', 'attaching', 'detaching', 'extending', 'deleting', 'deleted', 'error', 'error_deleting', 'error_extending']),
    provider_location: nullableString,
    provider_auth: nullableString,
    provider_id: nullableString,
    admin_metadata: z.record(z.string(), z.string()),
    multiattach: z.boolean(),
    snapshot_id: nullableString,
    source_volid: nullableString,
    error: nullableString,
    encryption_key_id: nullableString.optional(),
    encryption: z
      .object({ provider: z.string().min(1), cipher: z.string().optional(), key_size: z.number().int().positive().optional(), control_location: z.string().min(1) })
      .strict()
      .nullable()
      .optional(),
  })
  .strict();

const snapshotRecordSchema = z
  .object({
    ...baseShape,
    backend: z.string().min(1),
    volume_id: z.string().min(1),
    name: z.string(),
    description: z.string(),
    volume_size: z.number().int().positive(),
    status: z.enum(['creating', 'available', 'deleting', 'deleted', 'error', 'error_deleting']),
    provider_location: nullableString,
    provider_id: nullableString,
    error: nullableString,
  })
  .strict();

const connectionRecordSchema = z
  .object({
    ...baseShape,
    backend: z.string().min(1),
    volume_id: z.string().min(1),
    status: z.enum(['attaching', 'attached', 'detached', 'error']),
    protocol: z.string().min(1),
    connector_info: z.record(z.string(), z.unknown()),
    conn_info: z.record(z.string(), z.unknown()),
    device: z.record(z.string(), z.unknown()).nullable(),
    attached_host: nullableString,
    attach_mode: z.enum(['rw', 'ro']),
  })
  .strict();

const backendRefSchema = z.object({ volume_backend_name: z.string().min(1) }).passthrough();
const formatSchema = z.literal(SERIALIZATION_FORMAT);

const volumeFormSchema = z.object({
  class: z.literal('Volume'),
  format: formatSchema,
  backend: backendRefSchema,
  record: volumeRecordSchema,
  snapshots: z.array(snapshotRecordSchema).default([]),
  connections: z.array(connectionRecordSchema).default([]),
});
const childFormShape = { format: formatSchema, backend: backendRefSchema, volume: volumeRecordSchema };
const snapshotFormSchema = z.object({ class: z.literal('Snapshot'), ...childFormShape, record: snapshotRecordSchema });
const connectionFormSchema = z.object({ class: z.literal('Connection'), ...childFormShape, record: connectionRecordSchema });
const backendFormSchema = z.object({ class: z.literal('Backend'), format: formatSchema, backend: backendRefSchema, volumes: z.array(volumeFormSchema) });

function parseForm<T>(schema: z.ZodType<T>, doc: unknown, where: string): T {
  const r = schema.safeParse(doc);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = [where, ...issue.path.map(String)].filter(Boolean).join('.');
  throw new InvalidInputError(field || 'document', issue.message);
}

// ---- loading -----------------------------------------------------------------------------------

type AnyRecord = VolumeRecord | SnapshotRecord | ConnectionRecord;

/**
 * Write `rec` whatever the stored version is (cinderlib `load(save=True)` overwrites): read the
 * stored version, then compare-and-set on it; a concurrent writer makes us retry (3 attempts).
 */
async function upsert<R extends AnyRecord>(
  store: Store,
  rec: R,
  get: (id: string) => Promise<R[]>,
  set: (r: R) => Promise<R>,
  kind: string,
): Promise<R> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const [stored] = await get(rec.id);
    try {
      return await set({ ...rec, version: stored ? stored.version : 0 });
    } catch (err) {
      if (!(err instanceof StaleRecordError)) throw err;
      last = err;
    }
  }
  throw new PersistenceError(`could not save ${kind} ${rec.id} from the document: it kept changing under us`, { cause: last });
}

async function resolveBackend(ref: z.infer<typeof backendRefSchema>, ctx: BrickContext, where: string): Promise<Backend> {
  const name = ref.volume_backend_name;
  const existing = ctx.backends.get(name);
  if (existing instanceof Backend) {
    await existing.ready;
    return existing;
  }
  if (typeof ref.volume_driver === 'string') return Backend.create(ref as BackendConfig, { context: ctx });
  throw new NotFoundError('backend', name, {
    field: `${where}.volume_backend_name`,
    details: { hint: 'create the Backend before loading, or serialize with allBackendInfo so the document carries its configuration' },
  });
}

function checkOwnership(backend: Backend, rec: { backend: string; id: string }, where: string): void {
  if (rec.backend !== backend.id) throw new InvalidInputError(`${where}.backend`, `record ${rec.id} belongs to backend ${rec.backend}, not ${backend.id}`);
}

function sub(where: string, key: string): string {
  return where ? `${where}.${key}` : key;
}

function validateVolumeForm(backend: Backend, volRec: VolumeRecord, snaps: SnapshotRecord[], conns: ConnectionRecord[], where: string): void {
  checkOwnership(backend, volRec, sub(where, 'record'));
  snaps.forEach((s, i) => {
    checkOwnership(backend, s, sub(where, `snapshots.${i}`));
    if (s.volume_id !== volRec.id) throw new InvalidInputError(sub(where, `snapshots.${i}.volume_id`), `must be the volume's id ${volRec.id}`);
  });
  conns.forEach((c, i) => {
    checkOwnership(backend, c, sub(where, `connections.${i}`));
    if (c.volume_id !== volRec.id) throw new InvalidInputError(sub(where, `connections.${i}.volume_id`), `must be the volume's id ${volRec.id}`);
  });
}

/**
 * Load one volume with children. `volumeSave` says whether `save` overwrites the volume's stored
 * record (`always`, for volume and backend forms) or only inserts it when missing (`if-missing`,
 * for the volume record enclosed in a snapshot or connection form, which may be older than the
 * stored one).
 */
async function loadVolumeForm(
  backend: Backend,
  volRec: VolumeRecord,
  snaps: SnapshotRecord[],
  conns: ConnectionRecord[],
  save: boolean,
  where: string,
  volumeSave: 'always' | 'if-missing' = 'always',
): Promise<Volume> {
  validateVolumeForm(backend, volRec, snaps, conns, where);
  const store = backend.context.store;
  if (save) {
    const [present] = volumeSave === 'if-missing' ? await store.getVolumes({ id: volRec.id }) : [];
    const saved = present ?? (await upsert(store, volRec, (id) => store.getVolumes({ id }), (r) => store.setVolume(r), 'volume'));
    for (const s of snaps) await upsert(store, s, (id) => store.getSnapshots({ id }), (r) => store.setSnapshot(r), 'snapshot');
    for (const c of conns) await upsert(store, c, (id) => store.getConnections({ id }), (r) => store.setConnection(r), 'connection');
    // volumeFromRecord reloads the children from the store: they now carry the stored versions.
    const vol = await backend.volumeFromRecord(saved);
    backend.remember(vol);
    return vol;
  }
  const vol = await backend.volumeFromRecord(volRec);
  for (const s of snaps) {
    const snap = await vol.snapshotFromRecord(s);
    if (!vol.snapshots.includes(snap)) vol.snapshots.push(snap);
  }
  for (const c of conns) {
    const conn = vol.connectionFromRecord(c);
    if (!vol.connections.includes(conn)) vol.connections.push(conn);
  }
  backend.remember(vol);
  return vol;
}

async function loadOne(doc: unknown, ctx: BrickContext, save: boolean, where: string): Promise<Backend | Volume | Snapshot | Connection> {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidInputError(where || 'document', 'must be a JSON object with a class key');
  const cls = (doc as { class?: unknown }).class;
  const at = (k: string) => (where ? `${where}.${k}` : k);
  switch (cls) {
    case 'Volume': {
      const f = parseForm(volumeFormSchema, doc, where);
      const backend = await resolveBackend(f.backend, ctx, at('backend'));
      return loadVolumeForm(backend, f.record, f.snapshots, f.connections, save, where);
    }
    case 'Snapshot': {
      const f = parseForm(snapshotFormSchema, doc, where);
      if (f.record.volume_id !== f.volume.id) throw new InvalidInputError(at('record.volume_id'), `must be the id of the enclosed volume ${f.volume.id}`);
      const backend = await resolveBackend(f.backend, ctx, at('backend'));
      checkOwnership(backend, f.record, at('record'));
      checkOwnership(backend, f.volume, at('volume'));
      const vol = await loadVolumeForm(backend, f.volume, [f.record], [], save, at('volume'), 'if-missing');
      const snap = vol.snapshots.find((s) => s.id === f.record.id);
      if (!snap) throw new PersistenceError(`snapshot ${f.record.id} was not found after loading it`);
      return snap;
    }
    case 'Connection': {
      const f = parseForm(connectionFormSchema, doc, where);
      if (f.record.volume_id !== f.volume.id) throw new InvalidInputError(at('record.volume_id'), `must be the id of the enclosed volume ${f.volume.id}`);
      const backend = await resolveBackend(f.backend, ctx, at('backend'));
      checkOwnership(backend, f.record, at('record'));
      checkOwnership(backend, f.volume, at('volume'));
      const vol = await loadVolumeForm(backend, f.volume, [], [f.record], save, at('volume'), 'if-missing');
      const conn = vol.connections.find((c) => c.id === f.record.id);
      if (!conn) throw new PersistenceError(`connection ${f.record.id} was not found after loading it`);
      return conn;
    }
    case 'Backend': {
      const f = parseForm(backendFormSchema, doc, where);
      const backend = await resolveBackend(f.backend, ctx, at('backend'));
      for (const [i, v] of f.volumes.entries()) {
        if (v.backend.volume_backend_name !== backend.id) throw new InvalidInputError(at(`volumes.${i}.backend.volume_backend_name`), `must be ${backend.id}`);
        validateVolumeForm(backend, v.record, v.snapshots, v.connections, at(`volumes.${i}`));
      }
      for (const [i, v] of f.volumes.entries()) {
        await loadVolumeForm(backend, v.record, v.snapshots, v.connections, save, at(`volumes.${i}`));
      }
      return backend;
    }
    default:
      throw new InvalidInputError(at('class'), `must be one of Backend, Volume, Snapshot, Connection, got ${JSON.stringify(cls)}`);
  }
}

/**
 * Rebuild objects from serialized forms (cinderlib's `cl.load(json, save=False)`): a form, an
 * array of forms (e.g. {@link dump} of a context), or their JSON text. Dispatches on `class`.
 *
 * Objects are identity-mapped in the context: loading an id the context already holds returns
 * that instance, updated from the document when the document's `version` is newer (the same rule
 * as reloading from the store). A loaded volume has its snapshots and connections, each with its
 * back-reference; the store's own children of that volume are loaded too. Loaded volumes are added
 * to their backend's `volumes`.
 *
 * The backend must exist in the context, unless the document carries its whole configuration
 * ({@link JsonOptions.allBackendInfo}); then it is created.
 *
 * @returns the loaded object, or an array for an array input
 * @throws {@link InvalidInputError} naming the field of the document that is malformed (e.g.
 *   `record.status`, `snapshots.0.volume_id`, `class`) before anything is stored
 * @throws {@link NotFoundError} (field `backend.volume_backend_name`) when the backend is unknown
 * @throws {@link PersistenceError} when `save` cannot write the store
 */
export async function load(doc: string | SerializedObject | SerializedObject[] | unknown, options: LoadOptions = {}): Promise<Backend | Volume | Snapshot | Connection | (Backend | Volume | Snapshot | Connection)[]> {
  const ctx = options.context ?? currentContext();
  const value = parseText(doc);
  if (Array.isArray(value)) {
    const out: (Backend | Volume | Snapshot | Connection)[] = [];
    for (const [i, d] of value.entries()) out.push(await loadOne(d, ctx, options.save ?? false, String(i)));
    return out;
  }
  return loadOne(value, ctx, options.save ?? false, '');
}

function parseText(doc: unknown): unknown {
  if (typeof doc !== 'string') return doc;
  try {
    return JSON.parse(doc) as unknown;
  } catch (err) {
    throw new InvalidInputError('document', `is not JSON: ${(err as Error).message}`);
  }
}

async function loadAs<T>(doc: unknown, options: LoadOptions, cls: abstract new (...a: never[]) => T, name: string): Promise<T> {
  const value = parseText(doc);
  const got = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as { class?: unknown }).class : undefined;
  if (got !== name) throw new InvalidInputError('class', `must be ${name}, got ${JSON.stringify(got)}`);
  const r = await loadOne(value, options.context ?? currentContext(), options.save ?? false, '');
  if (!(r instanceof cls)) throw new InvalidInputError('class', `must be ${name}`);
  return r;
}

/** {@link load} for a volume form. @throws {@link InvalidInputError} (field `class`) for another form, before anything is loaded */
export async function loadVolume(doc: string | VolumeJson | unknown, options: LoadOptions = {}): Promise<Volume> {
  return loadAs(doc, options, Volume, 'Volume');
}
/** {@link load} for a snapshot form. @throws {@link InvalidInputError} (field `class`) for another form, before anything is loaded */
export async function loadSnapshot(doc: string | SnapshotJson | unknown, options: LoadOptions = {}): Promise<Snapshot> {
  return loadAs(doc, options, Snapshot, 'Snapshot');
}
/** {@link load} for a connection form. @throws {@link InvalidInputError} (field `class`) for another form, before anything is loaded */
export async function loadConnection(doc: string | ConnectionJson | unknown, options: LoadOptions = {}): Promise<Connection> {
  return loadAs(doc, options, Connection, 'Connection');
}
/** {@link load} for a backend form. @throws {@link InvalidInputError} (field `class`) for another form, before anything is loaded */
export async function loadBackend(doc: string | BackendJson | unknown, options: LoadOptions = {}): Promise<Backend> {
  return loadAs(doc, options, Backend, 'Backend');
}
