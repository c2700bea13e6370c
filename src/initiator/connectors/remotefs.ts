/**
 * The remote-filesystem connectors: `NFS`, `GLUSTERFS`, `QUOBYTE`.
 *
 * Follows os-brick's `RemoteFsConnector` with its `RemoteFsClient`: connection properties
 * `export` (the share, e.g. `192.0.2.10:/srv/cinder`), `name` (the volume file inside it) and
 * optional `options` (extra mount flags, e.g. `-o nfsvers=3`); the share is mounted at
 * `<mount_point_base>/<md5(export)>` unless `/proc/mounts` shows it there already, NFS trying
 * 4.2, 4.1, then the default version; the device info is `{ type: 'file', path: <mount point>/<name> }`.
 *
 * Beyond os-brick, whose disconnect leaves every share mounted forever: each connect records a
 * reference (`<mount_point_base>/.brick-refs/<md5>/<name>`) and disconnect removes it and
 * unmounts the share (then removes the empty mount point) when no reference is left. A failed
 * connect unmounts what it mounted. Locks are per share (`remotefs-<md5>`).
 *
 * Connector options: `mountPointBase` (or os-brick's `<type>_mount_point_base` /
 * `mount_point_base`; default `/var/lib/brick/mnt`) and `mountOptions` (or `<type>_mount_options`).
 *
 * @module
 */
import { posix } from 'node:path';
import { InvalidInputError, VolumeDeviceNotFoundError, VolumePathNotRemovedError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { makeHostDir, removeHostDir, removeHostFile, statHostPath, writeHostFile } from '../../host/files.js';
import { listDir, pathExists } from '../../host/sysfs.js';
import { checkReadable } from '../../host/blockdev.js';
import { findMount, mountFs, mountPointFor, nfsMountAttempts, shareHash, unmountFs } from '../../host/mount.js';
import { presentAndReadable } from '../../host/condition.js';
import type { ConnectionProperties, Connector, DeviceInfo, DisconnectOptions, VolumeCondition } from '../connector.js';
import { openJournalScope, runJournaled, type AttachmentIdentity, type JournalScope } from '../../host/journal.js';
import { registerConnector, type ResolvedConnectorOptions } from '../factory.js';

/** Default mount point base when none is configured. */
export const DEFAULT_MOUNT_POINT_BASE = '/var/lib/brick/mnt';

/** Validated remote-filesystem connection properties. */
export interface RemoteFsVolume {
  /** The share (`host:/path`). */
  export: string;
  /** Volume file name inside the share. */
  name: string;
  /** Extra mount flags (argv tokens) from `options`. */
  flags: string[];
}

const OPTION_VALUE = /^[\w.,=:/@+-]+$/;

/**
 * Split and check `options` (os-brick splits it on whitespace and passes it to mount): only
 * `-o <opts>` / `-o<opts>` / `--options <opts>` and `-r`/`-w` are allowed, so remote input
 * cannot add `--bind`, `-t` or a second source.
 * @throws {@link InvalidInputError} (field `options`)
 */
export function parseMountFlags(options: unknown): string[] {
  if (options === undefined || options === null || options === '') return [];
  if (typeof options !== 'string') throw new InvalidInputError('options', `must be a string, got ${typeof options}`);
  const tokens = options.trim().split(/\s+/);
  const out: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const tk = tokens[i]!;
    if (tk === '-o' || tk === '--options') {
      const v = tokens[++i];
      if (v === undefined || !OPTION_VALUE.test(v)) throw new InvalidInputError('options', `${tk} needs a value of mount options, got ${JSON.stringify(v)}`);
      out.push('-o', v);
    } else if (/^-o./.test(tk) && OPTION_VALUE.test(tk.slice(2))) {
      out.push('-o', tk.slice(2));
    } else if (tk === '-r' || tk === '-w') {
      out.push(tk);
    } else {
      throw new InvalidInputError('options', `mount flag ${JSON.stringify(tk)} is not allowed (use -o <options>)`);
    }
  }
  return out;
}

/** The attach journal identity of the volume (`host/journal.ts`): the export, and the volume file's name as `lun`. */
export function remoteFsIdentity(v: RemoteFsVolume): AttachmentIdentity {
  return { targets: [v.export], lun: v.name };
}

/**
 * Validate remote-filesystem connection properties for mount type `fstype`.
 * @throws {@link InvalidInputError} naming `export`, `name` or `options`
 */
export function parseRemoteFsProperties(props: ConnectionProperties, fstype: string): RemoteFsVolume {
  if (props === null || typeof props !== 'object' || Array.isArray(props)) throw new InvalidInputError('connection_properties', 'must be an object');
  const share = props.export;
  if (typeof share !== 'string' || share.trim() === '' || /\s/.test(share.trim())) throw new InvalidInputError('export', `must be a share such as host:/path, got ${JSON.stringify(share)}`);
  if (share.startsWith('-')) throw new InvalidInputError('export', 'must not start with "-"');
  if (fstype === 'nfs' && !/^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]]+):\/\S*$/.test(share.trim())) throw new InvalidInputError('export', `${JSON.stringify(share)} is not an NFS share (host:/path)`);
  const name = props.name;
  if (typeof name !== 'string' || name === '' || name.startsWith('/') || name.split('/').some((s) => s === '..' || s === '') || name.includes('\0')) {
    throw new InvalidInputError('name', `must be a relative file name inside the share, got ${JSON.stringify(name)}`);
  }
  return { export: share.trim(), name, flags: parseMountFlags(props.options) };
}

/** Connector for volumes that are files on a remote filesystem. */
export class RemoteFsConnector implements Connector {
  readonly protocol: string;
  readonly mountPointBase: string;
  /** The `mount -t` type: `nfs`, `glusterfs` or `quobyte`. */
  readonly fstype: string;
  private readonly mountOptions: string | undefined;

  /**
   * @param ctx the host seams (mounts run through its executor; records live under its host root)
   * @param options `fstype` (`nfs`, `glusterfs` or `quobyte`, the `mount -t` type), `protocol`
   *   (`NFS`, `GLUSTERFS`, `QUOBYTE`), `mountPointBase` (absolute; default {@link DEFAULT_MOUNT_POINT_BASE})
   *   and `mountOptions` (comma-separated `-o` options)
   * @throws {@link InvalidInputError} (field `mountPointBase`) for a relative base
   */
  constructor(
    private readonly ctx: HostContext,
    options: { fstype: string; protocol: string; mountPointBase?: string; mountOptions?: string },
  ) {
    this.fstype = options.fstype;
    this.protocol = options.protocol;
    const base = options.mountPointBase ?? DEFAULT_MOUNT_POINT_BASE;
    if (!base.startsWith('/')) throw new InvalidInputError('mountPointBase', `must be an absolute path, got ${JSON.stringify(base)}`);
    this.mountPointBase = posix.normalize(base).replace(/(.)\/$/, '$1');
    this.mountOptions = options.mountOptions;
  }

  /** The mount point for `share`: `<base>/<md5(share)>`. */
  getMountPoint(share: string): string {
    return mountPointFor(this.mountPointBase, share);
  }

  private refDir(share: string): string {
    return posix.join(this.mountPointBase, '.brick-refs', shareHash(share));
  }

  /** Path of the reference file `volumeName` leaves on `share` while attached. */
  private refFile(share: string, volumeName: string): string {
    return posix.join(this.refDir(share), encodeURIComponent(volumeName));
  }

  private refs(share: string): Promise<string[]> {
    return listDir(this.ctx, this.refDir(share));
  }

  private exists(p: string): Promise<boolean> {
    return pathExists(this.ctx, p);
  }

  private async mountShare(v: RemoteFsVolume, mp: string): Promise<void> {
    await makeHostDir(this.ctx, mp);
    const attempts = this.fstype === 'nfs' ? nfsMountAttempts(this.mountOptions) : [{ label: this.fstype, options: this.mountOptions }];
    const errors: Record<string, string> = {};
    for (const a of attempts) {
      try {
        await mountFs(this.ctx, { fstype: this.fstype, source: v.export, target: mp, ...(a.options ? { options: a.options } : {}), flags: v.flags });
        this.ctx.logger.debug({ share: v.export, attempt: a.label }, 'share mounted');
        return;
      } catch (e) {
        // "already mounted" from a concurrent mount by another program still counts when /proc/mounts agrees.
        if (await findMount(this.ctx, mp)) return;
        errors[a.label] = (e as Error).message;
      }
    }
    await removeHostDir(this.ctx, mp);
    throw new VolumeDeviceNotFoundError(`mounting ${this.fstype} share ${v.export} failed: ${Object.entries(errors).map(([k, m]) => `${k}: ${m}`).join('; ')}`, {
      field: 'export',
      details: { share: v.export, errors },
    });
  }

  /**
   * Mount the share (unless mounted) and return `{ type: 'file', path: <mount point>/<name> }`.
   * @throws {@link InvalidInputError} for bad properties, before anything runs
   * @throws {@link VolumeDeviceNotFoundError} when the mount fails (field `export`) or the file is absent (field `name`); a mount this call made is undone
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const v = parseRemoteFsProperties(properties, this.fstype);
    const mp = this.getMountPoint(v.export);
    return this.ctx.locks.withLock(`remotefs-${shareHash(v.export)}`, async () => {
      const journal = await openJournalScope(this.ctx.journal, 'attach', this.protocol, properties, remoteFsIdentity(v));
      return runJournaled(journal, this.ctx.logger, () => this.connectLocked(v, mp, journal), (info) => info);
    });
  }

  private async connectLocked(v: RemoteFsVolume, mp: string, journal: JournalScope): Promise<DeviceInfo> {
    let mountedHere = false;
    if (!(await findMount(this.ctx, mp))) {
      await journal.intent('mount', mp, { export: v.export, fstype: this.fstype });
      try {
        await this.mountShare(v, mp);
      } catch (e) {
        if (!(await findMount(this.ctx, mp))) await journal.removed('mount', mp);
        throw e;
      }
      mountedHere = true;
    }
    const path = posix.join(mp, v.name);
    if (!(await this.exists(path))) {
      if (mountedHere && (await this.refs(v.export)).length === 0) {
        await unmountFs(this.ctx, mp).catch(() => undefined);
        await removeHostDir(this.ctx, mp);
        if (!(await findMount(this.ctx, mp))) await journal.removed('mount', mp);
      }
      throw new VolumeDeviceNotFoundError(`volume file ${v.name} not found on ${v.export}`, { field: 'name', details: { share: v.export, name: v.name } });
    }
    await makeHostDir(this.ctx, this.refDir(v.export));
    await writeHostFile(this.ctx, this.refFile(v.export, v.name), `${new Date().toISOString()}\n`);
    return { type: 'file', path };
  }

  /**
   * Drop this volume's reference; when none is left, unmount the share and remove the mount
   * point. `force` falls back to a lazy unmount when the share is busy; `ignoreErrors` logs instead of throwing.
   * @throws {@link VolumePathNotRemovedError} when the unmount fails
   */
  async disconnectVolume(properties: ConnectionProperties, _deviceInfo: DeviceInfo | null, options: DisconnectOptions = {}): Promise<void> {
    const v = parseRemoteFsProperties(properties, this.fstype);
    const mp = this.getMountPoint(v.export);
    await this.ctx.locks.withLock(`remotefs-${shareHash(v.export)}`, async () => {
      const journal = await openJournalScope(this.ctx.journal, 'detach', this.protocol, properties, remoteFsIdentity(v));
      await runJournaled(journal, this.ctx.logger, async () => {
        await this.disconnectLocked(v, mp, options);
        if (!(await findMount(this.ctx, mp))) await journal.removed('mount', mp);
      });
    });
  }

  private async disconnectLocked(v: RemoteFsVolume, mp: string, options: DisconnectOptions): Promise<void> {
    await removeHostFile(this.ctx, this.refFile(v.export, v.name)).catch(() => undefined);
    const left = await this.refs(v.export);
    if (left.length > 0) {
      this.ctx.logger.debug({ share: v.export, left: left.length }, 'share still used by other volumes; left mounted');
      return;
    }
    await removeHostDir(this.ctx, this.refDir(v.export));
    if (await findMount(this.ctx, mp)) {
      try {
        await unmountFs(this.ctx, mp);
      } catch (e) {
        if (options.force) {
          await unmountFs(this.ctx, mp, { lazy: true }).catch(() => undefined);
        }
        if (await findMount(this.ctx, mp)) {
          const err = new VolumePathNotRemovedError(`could not unmount ${v.export} from ${mp}: ${(e as Error).message}`, { cause: e, details: { share: v.export, mount_point: mp } });
          if (options.ignoreErrors) {
            this.ctx.logger.warn({ share: v.export, err: err.message }, 'unmount error ignored');
            return;
          }
          throw err;
        }
      }
    }
    await removeHostDir(this.ctx, mp);
  }

  /**
   * The volume file's size in bytes (a file-backed volume grows in place; nothing to rescan).
   * @throws {@link VolumeDeviceNotFoundError} when the share is not mounted or the file is absent
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const v = parseRemoteFsProperties(properties, this.fstype);
    const path = posix.join(this.getMountPoint(v.export), v.name);
    const st = await statHostPath(this.ctx, path);
    if (!st) throw new VolumeDeviceNotFoundError(`volume file ${path} is not reachable`, { field: 'name' });
    return st.size;
  }

  /** `[<mount point>/<name>]`: where the file is (or would be) once mounted. Nothing is mounted. */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    const v = parseRemoteFsProperties(properties, this.fstype);
    return [posix.join(this.getMountPoint(v.export), v.name)];
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  /**
   * The volume's condition (see `Connector.checkVolumeCondition`): the share is mounted, the file is there and its first block reads.
   * @throws {@link InvalidInputError} for bad properties
   */
  async checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    const v = parseRemoteFsProperties(properties, this.fstype);
    const mp = this.getMountPoint(v.export);
    if (!(await findMount(this.ctx, mp))) return { abnormal: true, message: `share ${v.export} is not mounted at ${mp}`, paths: [] };
    return presentAndReadable(this.ctx, deviceInfo.path, 'file');
  }

  /** The mount point base. */
  getSearchPath(): string | null {
    return this.mountPointBase;
  }
}

function optString(o: ResolvedConnectorOptions, ...keys: string[]): string | undefined {
  for (const k of keys) {
    const v = o[k];
    if (typeof v === 'string' && v !== '') return v;
  }
  return undefined;
}

for (const [protocol, fstype] of [['NFS', 'nfs'], ['GLUSTERFS', 'glusterfs'], ['QUOBYTE', 'quobyte']] as const) {
  registerConnector(protocol, (ctx, o) => {
    const base = optString(o, 'mountPointBase', `${fstype}_mount_point_base`, 'mount_point_base');
    const opts = optString(o, 'mountOptions', `${fstype}_mount_options`);
    return new RemoteFsConnector(ctx, { fstype, protocol, ...(base ? { mountPointBase: base } : {}), ...(opts ? { mountOptions: opts } : {}) });
  });
}
