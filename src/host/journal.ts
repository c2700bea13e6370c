/**
 * The host attach journal: what Brick created on this host, written down before it exists.
 *
 * Two kinds of record live under the journal directory (`<state dir>/journal`, private to the
 * running user, see {@link ensurePrivateDirectory}), one small JSON file each, written atomically
 * (a temporary file in the same directory, `fsync`, `rename`, then an `fsync` of the directory),
 * so that a `kill -9` at any instant leaves either the old record or the new one:
 *
 * - an **attachment** (`attachments/<key>.json`): one volume attached, or being attached or
 *   detached, on this host. Its key is derived from the connection properties' identity
 *   (protocol, targets, LUN or namespace: {@link attachmentKey}), so a detach in a new process
 *   that has only the connection properties finds the entry an interrupted attach left. It
 *   records the operation (`attach` / `detach`), its phase (`running`, `done`, `failed`), the
 *   process that runs it (pid, its start time, the boot id) and, once attached, the device info.
 *   A finished detach removes it. The properties are stored with every secret masked.
 * - a **resource** (`resources/<kind>~<hash>.json`): one thing on the host Brick is about to
 *   create (an iSCSI node record or session, a scanned SCSI device, a multipath map, an NVMe
 *   controller, a mount, a loop device, an RBD or AoE device, a dm-crypt mapping). The
 *   connector records the intent *before* it runs the program that creates the thing, and
 *   removes the record *after* the thing is gone. A resource record therefore means "Brick may
 *   have made this": whether it still exists is for sysfs to say.
 *
 * The journal records facts; `host/cleanup.ts` judges them. Processes are identified by pid,
 * start time (field 22 of `/proc/<pid>/stat`) and `/proc/sys/kernel/random/boot_id`, so a record
 * from a process that is gone, or from an earlier boot, is recognised as such.
 *
 * Concurrency: an attachment file is rewritten whole; operations on one volume are serialised by
 * the connector's own cross-process locks (os-brick's `connect_volume` lock) and by the library's
 * per-volume lock, so one writer at a time is the rule. Resource files are idempotent: two
 * attaches recording the same session write the same thing, and the first creator stays its
 * owner. A detach that keeps a shared resource (a session other LUNs still use) leaves its record
 * in place, so the resource stays known as Brick's after the attachment that made it is gone.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { maskObject } from '../exec/mask.js';
import type { DeviceInfo } from '../initiator/connector.js';
import type { Logger } from '../log.js';
import { ensurePrivateDirectory } from './private-dir.js';

/** What a resource record is about. */
export type JournalResourceKind =
  | 'iscsi-node'
  | 'iscsi-session'
  | 'scsi-device'
  | 'multipath-map'
  | 'nvme-controller'
  | 'mount'
  | 'loop-device'
  | 'rbd-device'
  | 'aoe-device'
  | 'dm-crypt';

/** A process as the journal names it: pid, its start time in clock ticks since boot, and the boot it ran in. */
export interface JournalProcess {
  pid: number;
  /** Field 22 of `/proc/<pid>/stat` (`starttime`), as a decimal string; empty when unreadable. */
  start: string;
  /** `/proc/sys/kernel/random/boot_id` of the boot the process ran in. */
  bootId: string;
}

/**
 * The identity of one attachment: what the volume is on the wire, independent of which device
 * it got. `targets` are protocol-specific strings such as `iqn.2010-10.org.openstack:vol-1,10.0.0.1:3260`
 * (iSCSI, one per portal), `nqn.x,tcp,10.0.0.1,4420` (NVMe-oF), a WWPN (FC), a path (local,
 * NFS export), `pool/image` (RBD); `lun` is the LUN, namespace id or shelf.slot.
 */
export interface AttachmentIdentity {
  targets: string[];
  lun?: number | string;
  /** The volume's WWID, NGUID or UUID when the properties give one. */
  wwid?: string;
}

/** An attachment record (see the module notes). JSON keys are camelCase: this is Brick's own file. */
export interface AttachmentEntry {
  version: 1;
  key: string;
  protocol: string;
  identity: AttachmentIdentity;
  /** The connection properties, secrets masked. */
  properties: Record<string, unknown>;
  operation: 'attach' | 'detach';
  phase: 'running' | 'done' | 'failed';
  process: JournalProcess;
  /** ISO 8601 times. */
  startedAt: string;
  updatedAt: string;
  /** What `connectVolume` returned, once it has. */
  deviceInfo?: DeviceInfo;
  /** Why the operation failed (phase `failed`). */
  error?: string;
}

/** A resource record (see the module notes). */
export interface ResourceEntry {
  version: 1;
  kind: JournalResourceKind;
  /**
   * The resource's name, by kind: `iscsi-node` and `iscsi-session` `<iqn>,<portal>`;
   * `scsi-device` `h:c:t:l`; `multipath-map` the map name (WWID); `nvme-controller`
   * `<subsysnqn>,<transport>,<traddr>,<trsvcid>`; `mount` the mount point; `loop-device`,
   * `rbd-device`, `aoe-device`, `dm-crypt` the device path.
   */
  name: string;
  /** Key of the attachment whose operation created it. */
  attachment: string;
  /** Facts that pin the resource (a SCSI device's `wwid`, a loop device's `backingFile`, ...). */
  attrs: Record<string, string>;
  process: JournalProcess;
  at: string;
}

/** Options for {@link AttachJournal}. */
export interface AttachJournalOptions {
  /** Clock, for tests. */
  now?: () => Date;
  /** Reads `/proc` paths (`boot_id`, `<pid>/stat`); default the real `/proc`. For tests. */
  readProc?: (path: string) => string | undefined;
  /** Whether to create and check the directory as private (default true; tests over a fixture may pass false). */
  privateDirectory?: boolean;
  /**
   * Called before each record is written, with `intent:<kind>` (a resource is about to be
   * recorded, so everything recorded before it exists), `attached` (the attach is complete,
   * before phase `done` is written), `detach` (a detach starts). Fault injection for crash
   * tests: the CLI kills itself here when `BRICK_TEST_KILL_AT` names the event.
   */
  onEvent?: (event: string) => void;
}

function realReadProc(path: string): string | undefined {
  try {
    return fs.readFileSync(join('/proc', path), 'utf8');
  } catch {
    return undefined;
  }
}

/** Field 22 of a `/proc/<pid>/stat` line (the command name may hold spaces and parentheses). */
export function parseStatStart(stat: string | undefined): string {
  if (!stat) return '';
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19] ?? '';
}

/** Stable JSON: object keys sorted, so equal identities hash equally. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The attachment key for a protocol and identity: `<protocol lower case>-<24 hex digits>` of a
 * SHA-256 over the identity with its targets sorted. The same volume on the same targets always
 * gets the same key, whatever order the portals came in.
 */
export function attachmentKey(protocol: string, identity: AttachmentIdentity): string {
  const id = { ...identity, targets: [...identity.targets].sort() };
  const h = createHash('sha256').update(`${protocol.toUpperCase()}\n${canonical(id)}`).digest('hex');
  return `${protocol.toLowerCase().replace(/[^a-z0-9]/g, '')}-${h.slice(0, 24)}`;
}

function resourceFile(kind: JournalResourceKind, name: string): string {
  return `${kind}~${createHash('sha256').update(name).digest('hex').slice(0, 32)}.json`;
}

/** Read one JSON record, not following a symlink; undefined when missing or unreadable as JSON. */
function readRecord<T>(path: string): T | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return undefined;
    return JSON.parse(fs.readFileSync(fd, 'utf8')) as T;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Write `content` to `path` atomically and durably (temporary file, fsync, rename, fsync of the directory). */
function writeAtomic(dir: string, path: string, content: string): void {
  const tmp = join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
  syncDirectory(dir);
}

function syncDirectory(dir: string): void {
  const d = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(d);
  } finally {
    fs.closeSync(d);
  }
}

function listRecords<T>(dir: string): T[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    .sort()
    .map((n) => readRecord<T>(join(dir, n)))
    .filter((r): r is T => r !== undefined && typeof r === 'object' && r !== null);
}

/**
 * The journal over one directory. Methods are synchronous system calls behind promises (each
 * record is a few hundred bytes), so a record is on disk when the promise resolves.
 */
export class AttachJournal {
  /** The journal directory. */
  readonly dir: string;
  private readonly now: () => Date;
  private readonly readProc: (path: string) => string | undefined;
  private readonly privateDirectory: boolean;
  private readonly onEvent: (event: string) => void;
  private ready = false;
  private selfProcess?: JournalProcess;

  /**
   * @param dir the journal directory (absolute); created private (0700) on first write
   */
  constructor(dir: string, options: AttachJournalOptions = {}) {
    this.dir = dir;
    this.now = options.now ?? (() => new Date());
    this.readProc = options.readProc ?? realReadProc;
    this.privateDirectory = options.privateDirectory ?? true;
    this.onEvent = options.onEvent ?? (() => undefined);
  }

  private get attachmentsDir(): string {
    return join(this.dir, 'attachments');
  }

  private get resourcesDir(): string {
    return join(this.dir, 'resources');
  }

  /**
   * Create the directories (private, 0700) when missing.
   * @throws {@link InvalidConfigError} (field `journal`) when the directory is unsafe (see `private-dir.ts`)
   */
  private prepare(): void {
    if (this.ready) return;
    if (this.privateDirectory) {
      const uid = process.geteuid?.() ?? 0;
      ensurePrivateDirectory(this.dir, uid, 'journal');
      ensurePrivateDirectory(this.attachmentsDir, uid, 'journal');
      ensurePrivateDirectory(this.resourcesDir, uid, 'journal');
    } else {
      fs.mkdirSync(this.attachmentsDir, { recursive: true, mode: 0o700 });
      fs.mkdirSync(this.resourcesDir, { recursive: true, mode: 0o700 });
    }
    this.ready = true;
  }

  /** The current boot's id (`/proc/sys/kernel/random/boot_id`), or '' when unreadable. */
  bootId(): string {
    return (this.readProc('sys/kernel/random/boot_id') ?? '').trim();
  }

  /** This process as the journal names it. */
  process(): JournalProcess {
    this.selfProcess ??= { pid: process.pid, start: parseStatStart(this.readProc(`${process.pid}/stat`)), bootId: this.bootId() };
    return this.selfProcess;
  }

  /**
   * Whether `p` is a process that still runs: same boot, the pid exists and has the same start
   * time (so a recycled pid does not count). A record from an earlier boot is never alive.
   */
  isAlive(p: JournalProcess): boolean {
    if (p.bootId !== this.bootId()) return false;
    const stat = this.readProc(`${p.pid}/stat`);
    if (stat === undefined) return false;
    return p.start === '' || parseStatStart(stat) === p.start;
  }

  private attachmentPath(key: string): string {
    if (!/^[a-z0-9]+-[0-9a-f]{24}$/.test(key)) throw new Error(`not an attachment key: ${key}`);
    return join(this.attachmentsDir, `${key}.json`);
  }

  /** The attachment record with this key, or undefined. */
  async attachment(key: string): Promise<AttachmentEntry | undefined> {
    return readRecord<AttachmentEntry>(this.attachmentPath(key));
  }

  /** Every attachment record, in key order. */
  async attachments(): Promise<AttachmentEntry[]> {
    return listRecords<AttachmentEntry>(this.attachmentsDir);
  }

  /** Every resource record. */
  async resources(): Promise<ResourceEntry[]> {
    return listRecords<ResourceEntry>(this.resourcesDir);
  }

  /** The resource records an attachment's operations created. */
  async resourcesOf(key: string): Promise<ResourceEntry[]> {
    return (await this.resources()).filter((r) => r.attachment === key);
  }

  /** The resource record of this kind and name, or undefined. */
  async resource(kind: JournalResourceKind, name: string): Promise<ResourceEntry | undefined> {
    return readRecord<ResourceEntry>(join(this.resourcesDir, resourceFile(kind, name)));
  }

  /**
   * Record that an attach or detach of the volume with this identity starts (phase `running`),
   * keeping the device info of an earlier completed attach. Returns the entry as it was before
   * (undefined when there was none): a detach learns the device info an attach recorded.
   * @throws the file system's error when the record cannot be written (nothing is then created on the host)
   */
  async begin(operation: 'attach' | 'detach', protocol: string, properties: Record<string, unknown>, identity: AttachmentIdentity): Promise<AttachmentEntry | undefined> {
    this.prepare();
    if (operation === 'detach') this.onEvent('detach');
    const key = attachmentKey(protocol, identity);
    const before = await this.attachment(key);
    const at = this.now().toISOString();
    const entry: AttachmentEntry = {
      version: 1,
      key,
      protocol: protocol.toUpperCase(),
      identity,
      properties: maskObject(properties),
      operation,
      phase: 'running',
      process: this.process(),
      startedAt: at,
      updatedAt: at,
      ...(before?.deviceInfo ? { deviceInfo: before.deviceInfo } : {}),
    };
    writeAtomic(this.attachmentsDir, this.attachmentPath(key), JSON.stringify(entry));
    return before;
  }

  private async update(key: string, change: Partial<AttachmentEntry>): Promise<void> {
    const cur = await this.attachment(key);
    if (!cur) return;
    const next = { ...cur, ...change, updatedAt: this.now().toISOString() };
    writeAtomic(this.attachmentsDir, this.attachmentPath(key), JSON.stringify(next));
  }

  /** Record that the attach finished: phase `done`, with the device info. */
  async attached(key: string, deviceInfo: DeviceInfo): Promise<void> {
    this.onEvent('attached');
    await this.update(key, { operation: 'attach', phase: 'done', deviceInfo });
  }

  /**
   * Record that the operation failed. When it left no resource record behind (a failed attach
   * that cleaned up after itself), the attachment record is removed; otherwise it stays in
   * phase `failed` with the message, for `host cleanup` to finish.
   */
  async failed(key: string, error: string): Promise<void> {
    const cur = await this.attachment(key);
    if (!cur) return;
    if (cur.operation === 'attach' && (await this.resourcesOf(key)).length === 0) {
      await this.forget(key);
      return;
    }
    await this.update(key, { phase: 'failed', error });
  }

  /** Remove the attachment record (a detach finished). Resource records stay until their removal is recorded. */
  async forget(key: string): Promise<void> {
    const path = this.attachmentPath(key);
    try {
      fs.rmSync(path, { force: true });
      syncDirectory(this.attachmentsDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /**
   * Record the intent to create a resource, before the program that creates it runs. A record
   * that exists already is kept (the first creator owns it).
   * @throws the file system's error when the record cannot be written
   */
  async intent(attachment: string, kind: JournalResourceKind, name: string, attrs: Record<string, string> = {}): Promise<void> {
    this.prepare();
    this.onEvent(`intent:${kind}`);
    const path = join(this.resourcesDir, resourceFile(kind, name));
    const cur = readRecord<ResourceEntry>(path);
    if (cur && this.sameBoot(cur.process)) {
      if (Object.entries(attrs).every(([k, v]) => cur.attrs[k] === v)) return;
    }
    const rec: ResourceEntry = { version: 1, kind, name, attachment: cur && this.sameBoot(cur.process) ? cur.attachment : attachment, attrs: { ...(cur?.attrs ?? {}), ...attrs }, process: this.process(), at: this.now().toISOString() };
    writeAtomic(this.resourcesDir, path, JSON.stringify(rec));
  }

  /** Record that a resource is gone (its record is removed); a missing record is not an error. */
  async removed(kind: JournalResourceKind, name: string): Promise<void> {
    const path = join(this.resourcesDir, resourceFile(kind, name));
    if (!fs.existsSync(path)) return;
    fs.rmSync(path, { force: true });
    syncDirectory(this.resourcesDir);
  }

  private sameBoot(p: JournalProcess): boolean {
    return p.bootId === this.bootId();
  }
}

/**
 * One operation's view of the journal, handed to a connector's internals: `intent` before it
 * creates a resource, `removed` after it removes one. Without a journal (a bare connector with
 * no state directory) every method does nothing.
 */
export interface JournalScope {
  /** The attachment key, or '' without a journal. */
  readonly key: string;
  /** What the journal held for this attachment before this operation started. */
  readonly before?: AttachmentEntry;
  intent(kind: JournalResourceKind, name: string, attrs?: Record<string, string>): Promise<void>;
  removed(kind: JournalResourceKind, name: string): Promise<void>;
  /** The resource records earlier operations on this attachment left (for a detach to finish them). */
  resources(): Promise<ResourceEntry[]>;
  /** The operation succeeded: an attach records its device info, a detach removes the entry. */
  succeeded(deviceInfo?: DeviceInfo): Promise<void>;
  /** The operation failed with this error. */
  failed(err: unknown): Promise<void>;
}

const NO_SCOPE: JournalScope = {
  key: '',
  intent: async () => undefined,
  removed: async () => undefined,
  resources: async () => [],
  succeeded: async () => undefined,
  failed: async () => undefined,
};

/**
 * Start an operation in `journal` (or a scope that does nothing when `journal` is undefined).
 * @throws the file system's error when the journal cannot be written: the operation must then not start
 */
export async function openJournalScope(journal: AttachJournal | undefined, operation: 'attach' | 'detach', protocol: string, properties: Record<string, unknown>, identity: AttachmentIdentity): Promise<JournalScope> {
  if (!journal) return NO_SCOPE;
  const before = await journal.begin(operation, protocol, properties, identity);
  const key = attachmentKey(protocol, identity);
  return {
    key,
    ...(before ? { before } : {}),
    intent: (kind, name, attrs) => journal.intent(key, kind, name, attrs),
    removed: (kind, name) => journal.removed(kind, name),
    resources: () => journal.resourcesOf(key),
    succeeded: async (deviceInfo) => {
      if (operation === 'attach') await journal.attached(key, deviceInfo ?? { type: 'block', path: '' });
      else await journal.forget(key);
    },
    failed: (err) => journal.failed(key, err instanceof Error ? err.message : String(err)),
  };
}

/**
 * Run one connector operation inside `scope`: `succeeded` with the device info `info` picks from
 * the result (an attach) once `fn` resolves, `failed` when it throws (call it after the
 * operation's own cleanup, which `fn` does before it throws). A journal write that fails after
 * the operation is logged, not thrown: the host is in the state the operation says, and the
 * record left behind (phase `running`) tells `host cleanup` to look.
 * @throws what `fn` throws
 */
export async function runJournaled<T>(scope: JournalScope, logger: Logger, fn: () => Promise<T>, info?: (result: T) => DeviceInfo | undefined): Promise<T> {
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    await scope.failed(err).catch((e: unknown) => logger.warn({ attachment: scope.key, err: (e as Error).message }, 'journal: could not record the failure'));
    throw err;
  }
  await scope.succeeded(info?.(result)).catch((e: unknown) => logger.warn({ attachment: scope.key, err: (e as Error).message }, 'journal: could not record the outcome'));
  return result;
}
