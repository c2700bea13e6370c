/**
 * The `RBD` connector: Ceph RADOS block devices mapped with the kernel client (krbd).
 *
 * Follows os-brick's `RBDConnector` in its local-attach mode (`do_local_attach`, the mode
 * cinderlib uses): connection properties `name` (`pool/image`), `hosts` and `ports` (monitors),
 * `auth_username`, `cluster_name`, and `keyring` (the keyring's contents, which cinderlib
 * passes; Cinder itself stopped sending it, OSSN-0085). Attach runs
 * `rbd map <image> --pool <pool> --id <user> --mon_host <mons> [--conf <file>]` and returns
 * `/dev/rbd/<pool>/<image>` (the udev link) or `/dev/rbdN`; detach runs `rbd unmap /dev/rbdN`.
 *
 * Secrets: the keyring never reaches argv or a log. It is written by Node to a 0600 file in a
 * private 0700 temporary directory, referenced from a generated ceph.conf passed with `--conf`,
 * and both are deleted as soon as `rbd map` returns (the kernel keeps the key; unmapping needs
 * none). os-brick keeps its conf file until detach; Brick does not need it that long.
 *
 * A key the monitors refuse (`rbd map` exit status 13, "couldn't connect to the cluster!", as
 * the lab shows with a wrong key) is an `AuthenticationError` naming `keyring`; os-brick lets
 * the process error through.
 *
 * Mappings are found in sysfs (`/sys/bus/rbd/devices/<id>/{pool,name,current_snap}`) rather
 * than by parsing `rbd showmapped`. The lock is per image (`rbd-<pool>-<image>`).
 *
 * @module
 */
import { AuthenticationError, InvalidInputError, ProcessExecutionError, VolumeDeviceNotFoundError, VolumePathNotRemovedError, ExtendError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { withPrivateTempDir } from '../../host/files.js';
import { pathExists, readAttr } from '../../host/sysfs.js';
import { listRbdMappings, type RbdMapping } from '../../host/rbd.js';
import { checkReadable } from '../../host/blockdev.js';
import { waitFor } from '../../host/retry.js';
import { presentAndReadable } from '../../host/condition.js';
import type { ConnectionProperties, Connector, DeviceInfo, DisconnectOptions, VolumeCondition } from '../connector.js';
import { openJournalScope, runJournaled, type AttachmentIdentity, type JournalScope } from '../../host/journal.js';
import { registerConnector } from '../factory.js';

/** Validated RBD connection properties. */
export interface RbdVolume {
  pool: string;
  image: string;
  /** Monitors as `host:port` (IPv6 hosts in brackets). */
  monitors: string[];
  user?: string;
  clusterName: string;
  /** Keyring contents (a secret). */
  keyring?: string;
  readOnly: boolean;
}

const CEPH_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function monHost(h: string): string {
  // os-brick's _sanitize_mon_hosts: IPv6 literals go in brackets.
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}

/**
 * Validate RBD connection properties.
 * @throws {@link InvalidInputError} naming `name`, `hosts`, `ports`, `auth_username`, `cluster_name` or `keyring`
 */
export function parseRbdProperties(props: ConnectionProperties): RbdVolume {
  if (props === null || typeof props !== 'object' || Array.isArray(props)) throw new InvalidInputError('connection_properties', 'must be an object');
  const name = props.name;
  if (typeof name !== 'string') throw new InvalidInputError('name', 'is required: pool/image');
  const parts = name.split('/');
  if (parts.length !== 2 || !parts.every((p) => CEPH_NAME.test(p))) throw new InvalidInputError('name', `must be pool/image, got ${JSON.stringify(name)}`);
  const hosts = props.hosts ?? [];
  const ports = props.ports ?? [];
  if (!Array.isArray(hosts) || !hosts.every((h) => typeof h === 'string' && /^[A-Za-z0-9_.:[\]-]+$/.test(h))) throw new InvalidInputError('hosts', 'must be a list of monitor addresses');
  if (!Array.isArray(ports) || ports.length !== hosts.length) throw new InvalidInputError('ports', `must list one port per monitor host (${hosts.length})`);
  const monitors = hosts.map((h, i) => {
    const p = ports[i];
    const n = typeof p === 'string' && /^\d+$/.test(p) ? Number(p) : p;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidInputError(`ports[${i}]`, `must be a port number, got ${JSON.stringify(p)}`);
    return `${monHost(h as string)}:${n}`;
  });
  const out: RbdVolume = { pool: parts[0]!, image: parts[1]!, monitors, clusterName: 'ceph', readOnly: props.access_mode === 'ro' };
  const user = props.auth_username;
  if (user !== undefined && user !== null && user !== '') {
    if (typeof user !== 'string' || !CEPH_NAME.test(user)) throw new InvalidInputError('auth_username', 'must be a Ceph client name such as cinder');
    out.user = user;
  }
  const cluster = props.cluster_name;
  if (cluster !== undefined && cluster !== null && cluster !== '') {
    if (typeof cluster !== 'string' || !CEPH_NAME.test(cluster)) throw new InvalidInputError('cluster_name', 'must be a Ceph cluster name such as ceph');
    out.clusterName = cluster;
  }
  const keyring = props.keyring;
  if (keyring !== undefined && keyring !== null && keyring !== '') {
    if (typeof keyring !== 'string') throw new InvalidInputError('keyring', 'must be the keyring file contents');
    out.keyring = keyring;
  }
  return out;
}

/** The keyring and every `key = ...` value in it, for masking. Pure. */
export function keyringSecrets(keyring: string): string[] {
  const keys = [...keyring.matchAll(/^\s*key\s*=\s*(\S+)\s*$/gm)].map((m) => m[1]!);
  return [keyring, ...keys];
}

export { listRbdMappings, type RbdMapping } from '../../host/rbd.js';

/**
 * `rbd map` exits with status 13 (EACCES) when the monitors refuse the cephx key ("rbd: couldn't
 * connect to the cluster!", seen in the lab with a wrong key): that becomes an
 * {@link AuthenticationError} naming `keyring`, with the (masked) process error as its cause.
 * Other failures are not authentication failures: undefined.
 */
function cephxRefused(e: unknown, v: RbdVolume): AuthenticationError | undefined {
  if (!(e instanceof ProcessExecutionError) || e.exitCode !== 13) return undefined;
  const said = e.stderr.trim().split('\n').slice(-2).join(' | ');
  return new AuthenticationError(`Ceph refused the key of client.${v.user ?? 'admin'} mapping ${v.pool}/${v.image} (rbd map exited with status 13${said ? `: ${said}` : ''})`, { field: 'keyring', cause: e, details: { pool: v.pool, image: v.image, exit_code: 13 } });
}

/** Connector for Ceph RBD volumes through krbd. */
export class RbdConnector implements Connector {
  readonly protocol = 'RBD';

  /** The attach journal identity (`pool/image`) and resource name (the udev link `/dev/rbd/<pool>/<image>`: the `/dev/rbdN` name is known only after the map). */
  private journalNames(v: RbdVolume): { identity: AttachmentIdentity; device: string } {
    return { identity: { targets: [`${v.pool}/${v.image}`] }, device: `/dev/rbd/${v.pool}/${v.image}` };
  }

  /** @param ctx the host seams (`rbd` runs through its executor; sysfs is read under its host root) */
  constructor(private readonly ctx: HostContext) {}

  private async mapping(v: RbdVolume): Promise<RbdMapping | undefined> {
    return (await listRbdMappings(this.ctx)).find((m) => m.pool === v.pool && m.image === v.image && m.snap === '-');
  }

  private exists(p: string): Promise<boolean> {
    return pathExists(this.ctx, p);
  }

  private async pathFor(v: RbdVolume, m: RbdMapping): Promise<string> {
    const link = `/dev/rbd/${v.pool}/${v.image}`;
    return (await this.exists(link)) ? link : m.device;
  }

  /**
   * Run `rbd map <image> --pool <pool> [--id] [--mon_host] [--read-only]`. With a keyring, it goes in a 0600 file in a private temporary
   * directory with a generated `<cluster>.conf` naming it (`--conf`); both are removed when the
   * command returns, successful or not.
   */
  private async map(v: RbdVolume): Promise<void> {
    const argv = ['rbd', 'map', v.image, '--pool', v.pool, ...this.baseArgs(v)];
    if (v.readOnly) argv.push('--read-only');
    const keyring = v.keyring;
    if (!keyring) {
      await this.ctx.executor.run(argv, { timeoutMs: 120_000 });
      return;
    }
    await withPrivateTempDir('brick-rbd-', async (dir) => {
      const keyringPath = await dir.write('keyring', keyring.endsWith('\n') ? keyring : `${keyring}\n`);
      const conf = ['[global]', ...(v.monitors.length ? [`mon_host = ${v.monitors.join(',')}`] : []), `keyring = ${keyringPath}`, ''].join('\n');
      const confPath = await dir.write(`${v.clusterName}.conf`, conf);
      try {
        await this.ctx.executor.run([...argv, '--conf', confPath], { timeoutMs: 120_000, secrets: keyringSecrets(keyring) });
      } catch (e) {
        throw cephxRefused(e, v) ?? e;
      }
    });
  }

  private baseArgs(v: RbdVolume): string[] {
    const a: string[] = [];
    if (v.user) a.push('--id', v.user);
    if (v.monitors.length > 0) a.push('--mon_host', v.monitors.join(','));
    return a;
  }

  /**
   * Map the image (unless mapped) and return `{ type: 'block', path, rbd_device: '/dev/rbdN' }`.
   * @throws {@link InvalidInputError} for bad properties, before anything runs
   * @throws {@link AuthenticationError} (field `keyring`) when the monitors refuse the keyring's key (`rbd map` exit status 13)
   * @throws ProcessExecutionError when `rbd map` fails otherwise (its output masked)
   * @throws {@link VolumeDeviceNotFoundError} when the mapping does not show in sysfs
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const v = parseRbdProperties(properties);
    const names = this.journalNames(v);
    return this.ctx.locks.withLock(`rbd-${v.pool}-${v.image}`, async () => {
      const journal = await openJournalScope(this.ctx.journal, 'attach', this.protocol, properties, names.identity);
      return runJournaled(journal, this.ctx.logger, () => this.connectLocked(v, journal, names.device), (info) => info);
    });
  }

  private async connectLocked(v: RbdVolume, journal: JournalScope, record: string): Promise<DeviceInfo> {
    let m = await this.mapping(v);
    if (!m) {
      await journal.intent('rbd-device', record, { pool: v.pool, image: v.image });
      try {
        await this.map(v);
      } catch (e) {
        if (!(await this.mapping(v))) await journal.removed('rbd-device', record);
        throw e;
      }
      m = await waitFor(() => this.mapping(v), { timeoutMs: 10_000, description: `krbd mapping of ${v.pool}/${v.image}` }).catch(() => undefined);
      if (!m) throw new VolumeDeviceNotFoundError(`rbd map of ${v.pool}/${v.image} succeeded but no mapping shows in /sys/bus/rbd/devices`, { field: 'name' });
      await journal.intent('rbd-device', record, { device: m.device });
    }
    const path = await this.pathFor(v, m);
    this.ctx.logger.info({ image: `${v.pool}/${v.image}`, device: m.device }, 'RBD image mapped');
    return { type: 'block', path, rbd_device: m.device };
  }

  /**
   * `rbd unmap /dev/rbdN` (`-o force` with `force`) when the image is mapped; unmapped is success.
   * @throws {@link VolumePathNotRemovedError} when the unmap fails (unless `ignoreErrors`)
   */
  async disconnectVolume(properties: ConnectionProperties, _deviceInfo: DeviceInfo | null, options: DisconnectOptions = {}): Promise<void> {
    const v = parseRbdProperties(properties);
    const names = this.journalNames(v);
    await this.ctx.locks.withLock(`rbd-${v.pool}-${v.image}`, async () => {
      const journal = await openJournalScope(this.ctx.journal, 'detach', this.protocol, properties, names.identity);
      await runJournaled(journal, this.ctx.logger, async () => {
        const m = await this.mapping(v);
        if (m) {
          const argv = ['rbd', 'unmap', ...(options.force ? ['-o', 'force'] : []), m.device];
          try {
            await this.ctx.executor.run(argv, { timeoutMs: 120_000 });
          } catch (e) {
            const err = new VolumePathNotRemovedError(`rbd unmap ${m.device} (${v.pool}/${v.image}) failed: ${(e as Error).message}`, { cause: e, details: { device: m.device } });
            if (options.ignoreErrors) this.ctx.logger.warn({ device: m.device, err: err.message }, 'RBD unmap error ignored');
            else throw err;
            return;
          }
        }
        await journal.removed('rbd-device', names.device);
      });
    });
  }

  /**
   * The mapped image's size in bytes (`/sys/bus/rbd/devices/N/size`; krbd follows the image header).
   * @throws {@link VolumeDeviceNotFoundError} when the image is not mapped
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const v = parseRbdProperties(properties);
    const m = await this.mapping(v);
    if (!m) throw new VolumeDeviceNotFoundError(`${v.pool}/${v.image} is not mapped`, { field: 'name' });
    const n = Number((await readAttr(this.ctx, `/sys/bus/rbd/devices/${m.id}/size`)) ?? '');
    if (!Number.isFinite(n) || n <= 0) throw new ExtendError(`could not read the size of ${m.device}`);
    return n;
  }

  /** The mapped device's path, or `[]`. Nothing is mapped. */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    const v = parseRbdProperties(properties);
    const m = await this.mapping(v);
    return m ? [await this.pathFor(v, m)] : [];
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  /**
   * The volume's condition (see `Connector.checkVolumeCondition`): the device is there and its first block reads.
   * @throws {@link InvalidInputError} for bad properties
   */
  async checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    parseRbdProperties(properties);
    return presentAndReadable(this.ctx, deviceInfo.path, 'device');
  }

  /** os-brick has none for RBD. */
  getSearchPath(): string | null {
    return null;
  }
}

registerConnector('RBD', (ctx) => new RbdConnector(ctx));
