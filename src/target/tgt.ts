/**
 * `tgtadm`: the user-space SCSI target daemon tgtd, driven with `tgtadm`.
 *
 * Same export model as Cinder's `TgtAdm` (one target per volume named `target_prefix +
 * volume.name`, the LV on LUN 1 since tgt's LUN 0 is the controller, `scsi_id`/`scsi_sn` set
 * to the volume id so hosts see a stable, distinct WWN), with two differences:
 * - Cinder writes `<target>` blocks into `volumes_dir` and runs `tgt-admin --update`; Brick
 *   issues the individual `tgtadm` operations and keeps only the mapped initiators in its
 *   state directory, so `ensure_export` can replay them after tgtd restarts.
 * - Cinder's tgt targets accept every initiator (no `initiator-address`/`initiator-name`
 *   binding); Brick binds only the initiators `initialize_connection` is given
 *   (`--op bind --initiator-name`) and unbinds them on `terminate_connection`.
 *
 * CHAP secrets and process listings: `tgtadm --mode account --op new` takes the password as an
 * argument, and `tgt-admin` (which reads `incominguser` from a config file) runs that same
 * command with the password in its argv, so a config file does not keep the secret out of
 * the process table. Brick therefore creates the CHAP account by speaking tgtd's management
 * protocol on its Unix socket (`/var/run/tgtd/socket.0`, the protocol of tgt's `tgtadm.c`:
 * a `struct tgtadm_req` header followed by `user=<u>,password=<p>\0`), which puts the secret
 * in no argv at all. tgtd accepts that socket only from a peer with its own uid (root); when
 * Brick is not root (it runs privileged commands through a root helper) the socket refuses,
 * and Brick falls back to `tgtadm --password` through the Executor with the secret masked in
 * logs and errors, logging a warning that the secret is briefly visible in the process table.
 *
 * @module
 */
import { connect } from 'node:net';
import { BackendError, InvalidStateError, ProcessExecutionError } from '../errors.js';
import type { ConnectionInfo, DriverContext, DriverVolume, ModelUpdate } from '../drivers/driver.js';
import { hostPath } from '../host/context.js';
import { delay } from '../host/retry.js';
import type { ConnectorProperties } from '../initiator/properties.js';
import type { TargetConfig } from './config.js';
import {
  configuredPortals,
  formatIscsiLocation,
  formatProviderAuth,
  generateChap,
  iscsiConnectionData,
  MappingStore,
  parseIscsiLocation,
  parseProviderAuth,
  requireInitiator,
  requireLocation,
  type ChapCredentials,
} from './common.js';
import type { TargetHelper } from './helper.js';

const LUN = 1;
const TIMEOUT = 30_000;
/** How long {@link TgtTarget.extendTarget} retries deleting a LUN that tgtd reports busy, in ms. */
export const TGT_LUN_BUSY_MS = 15_000;

/** One target as `tgtadm --op show --mode target` prints it. */
export interface TgtTargetInfo {
  tid: number;
  iqn: string;
  /** LUN numbers (0 is the controller). */
  luns: number[];
  /** Backing store path per LUN. */
  backingStores: Record<number, string>;
  /** Bound incoming CHAP users. */
  accounts: string[];
  /** ACL entries (initiator addresses such as `ALL`, and initiator names). */
  acls: string[];
  /** Number of I_T nexuses (logged-in sessions). */
  sessions: number;
}

/** Parse `tgtadm --lld iscsi --op show --mode target` output. Pure. */
export function parseTgtShow(text: string): TgtTargetInfo[] {
  const out: TgtTargetInfo[] = [];
  let cur: TgtTargetInfo | undefined;
  let section = '';
  let lun = -1;
  for (const line of text.split('\n')) {
    const t = /^Target (\d+): (\S+)\s*$/.exec(line);
    if (t) {
      cur = { tid: Number(t[1]), iqn: t[2]!, luns: [], backingStores: {}, accounts: [], acls: [], sessions: 0 };
      out.push(cur);
      section = '';
      continue;
    }
    if (!cur) continue;
    const s1 = /^ {4}(\S.*):\s*$/.exec(line);
    if (s1) {
      section = s1[1]!;
      continue;
    }
    const item = line.trim();
    if (!item) continue;
    if (section === 'LUN information') {
      const l = /^LUN: (\d+)$/.exec(item);
      if (l) {
        lun = Number(l[1]);
        cur.luns.push(lun);
      }
      const b = /^Backing store path: (.+)$/.exec(item);
      if (b && lun >= 0 && b[1] !== 'None') cur.backingStores[lun] = b[1]!;
    } else if (section === 'Account information') {
      if (/^ {8}\S/.test(line) && !item.endsWith('(outgoing)')) cur.accounts.push(item);
    } else if (section === 'ACL information') {
      if (/^ {8}\S/.test(line)) cur.acls.push(item);
    } else if (section === 'I_T nexus information') {
      if (/^I_T nexus: \d+$/.test(item)) cur.sessions++;
    }
  }
  return out;
}

/** Parse `tgtadm --lld iscsi --op show --mode portal` output (`Portal: 0.0.0.0:3260,1`) into `addr:port` strings. Pure. */
export function parseTgtPortals(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^Portal:\s*(\S+?),\d+\s*$/.exec(line.trim());
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Encode one tgtd management request (tgt's `struct tgtadm_req`, x86-64/aarch64 layout: 120 bytes, little-endian) followed by its NUL-terminated parameters. */
export function encodeTgtRequest(mode: number, op: number, params: string, tid = -1): Buffer {
  const body = Buffer.from(`${params}\0`, 'utf8');
  const hdr = Buffer.alloc(120);
  hdr.writeUInt32LE(mode, 0);
  hdr.writeUInt32LE(op, 4);
  hdr.write('iscsi', 8, 'utf8');
  hdr.writeUInt32LE(120 + body.length, 72);
  hdr.writeInt32LE(tid, 76);
  return Buffer.concat([hdr, body]);
}

/** tgtd management constants (tgt's `tgtadm.h`). */
export const TGT_MODE_ACCOUNT = 7;
/** `OP_NEW`. */
export const TGT_OP_NEW = 0;

/** Options for {@link TgtTarget}. */
export interface TgtOptions {
  /** Bound on the socket exchange with tgtd, ms. Default 10 000. */
  ipcTimeoutMs?: number;
  /** How long extendTarget retries deleting a LUN tgtd reports busy, ms. Default {@link TGT_LUN_BUSY_MS}. */
  lunBusyMs?: number;
}

/** The `tgtadm` target helper. */
export class TgtTarget implements TargetHelper {
  readonly helperName = 'tgtadm';
  readonly storageProtocol = 'iSCSI';
  readonly connectorProtocol = 'ISCSI';
  private readonly mappings: MappingStore;
  private readonly ipcTimeoutMs: number;
  private readonly lunBusyMs: number;

  constructor(
    private readonly cfg: TargetConfig,
    private readonly ctx: DriverContext,
    options: TgtOptions = {},
  ) {
    this.mappings = new MappingStore(ctx.stateDir, 'tgtadm');
    this.ipcTimeoutMs = options.ipcTimeoutMs ?? 10_000;
    this.lunBusyMs = options.lunBusyMs ?? TGT_LUN_BUSY_MS;
  }

  private iqn(volume: DriverVolume): string {
    return `${this.cfg.prefix}${volume.name}`;
  }

  private lock<T>(fn: () => Promise<T>): Promise<T> {
    return this.ctx.locks.withLock('target-tgt', fn, { timeoutMs: 120_000 });
  }

  private tgtadm(args: string[], options: { secrets?: string[]; checkExitCode?: boolean } = {}) {
    return this.ctx.executor.run(['tgtadm', '--lld', 'iscsi', ...args], { timeoutMs: TIMEOUT, ...options });
  }

  /** The targets tgtd has now. */
  async targets(): Promise<TgtTargetInfo[]> {
    const { stdout } = await this.tgtadm(['--op', 'show', '--mode', 'target']);
    return parseTgtShow(stdout);
  }

  private async find(iqn: string): Promise<TgtTargetInfo | undefined> {
    return (await this.targets()).find((t) => t.iqn === iqn);
  }

  /** @throws {@link BackendError} (field `target_helper`) when tgtd does not answer */
  async checkForSetupError(): Promise<void> {
    try {
      await this.tgtadm(['--op', 'show', '--mode', 'target']);
    } catch (e) {
      throw new BackendError('target_helper tgtadm: tgtd does not answer (is the tgt service running?)', { field: 'target_helper', cause: e });
    }
  }

  /** Make tgtd listen on each configured portal unless it already listens there or on the wildcard address with that port. */
  private async ensurePortals(portals: string[]): Promise<void> {
    const { stdout } = await this.tgtadm(['--op', 'show', '--mode', 'portal']);
    const have = parseTgtPortals(stdout);
    for (const p of portals) {
      const port = p.slice(p.lastIndexOf(':') + 1);
      if (have.includes(p) || have.includes(`0.0.0.0:${port}`) || have.includes(`[::]:${port}`)) continue;
      await this.tgtadm(['--op', 'new', '--mode', 'portal', '--params', `portal=${p}`]);
    }
  }

  /** Create a CHAP account in tgtd without putting the secret in any argv when possible (see the module notes). */
  private async createAccount(chap: ChapCredentials): Promise<void> {
    const path = hostPath(this.ctx.hostRoot, this.cfg.tgtSocket);
    const ipc = await this.ipcRequest(path, encodeTgtRequest(TGT_MODE_ACCOUNT, TGT_OP_NEW, `user=${chap.username},password=${chap.password}`));
    if (ipc === 'ok' || ipc === 'exists') return;
    this.ctx.logger.warn({ helper: 'tgtadm', reason: ipc }, 'tgtd management socket unusable: creating the CHAP account with tgtadm, whose argv briefly shows the secret in the process table');
    try {
      await this.tgtadm(['--mode', 'account', '--op', 'new', '--user', chap.username, '--password', chap.password], { secrets: [chap.password] });
    } catch (e) {
      if (e instanceof ProcessExecutionError && /exist/i.test(e.stderr)) return;
      throw e;
    }
  }

  /** One request on tgtd's socket: `ok`, `exists` (TGTADM_USER_EXIST), or why it could not be used. Never throws. */
  private ipcRequest(path: string, request: Buffer): Promise<'ok' | 'exists' | string> {
    return new Promise((resolve) => {
      const sock = connect({ path });
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (v: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(v);
      };
      const timer = setTimeout(() => finish('timeout'), this.ipcTimeoutMs);
      sock.on('connect', () => sock.write(request));
      sock.on('data', (d: Buffer) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (all.length >= 8) {
          const err = all.readUInt32LE(0);
          finish(err === 0 ? 'ok' : err === 14 ? 'exists' : `tgtd error ${err}`);
        }
      });
      sock.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? 'socket error'));
      sock.on('close', () => finish('closed by tgtd (not the same uid as tgtd?)'));
    });
  }

  private async build(volume: DriverVolume, devicePath: string, chap: ChapCredentials, portals: string[], hosts: string[]): Promise<number> {
    const iqn = this.iqn(volume);
    await this.ensurePortals(portals);
    const all = await this.targets();
    let t = all.find((x) => x.iqn === iqn);
    if (!t) {
      const used = new Set(all.map((x) => x.tid));
      let tid = 1;
      while (used.has(tid)) tid++;
      await this.tgtadm(['--op', 'new', '--mode', 'target', '--tid', String(tid), '--targetname', iqn]);
      t = { tid, iqn, luns: [0], backingStores: {}, accounts: [], acls: [], sessions: 0 };
    }
    const tid = String(t.tid);
    if (!t.luns.includes(LUN)) await this.addLun(tid, volume, devicePath);
    else if (t.backingStores[LUN] && t.backingStores[LUN] !== devicePath) {
      throw new BackendError(`tgt target ${iqn} LUN ${LUN} serves ${t.backingStores[LUN]}, not ${devicePath}`);
    }
    if (!t.accounts.includes(chap.username)) {
      await this.createAccount(chap);
      await this.tgtadm(['--op', 'bind', '--mode', 'account', '--tid', tid, '--user', chap.username]);
    }
    for (const h of hosts) if (!t.acls.includes(h)) await this.tgtadm(['--op', 'bind', '--mode', 'target', '--tid', tid, '--initiator-name', h]);
    return t.tid;
  }

  private async addLun(tid: string, volume: DriverVolume, devicePath: string): Promise<void> {
    await this.tgtadm(['--op', 'new', '--mode', 'logicalunit', '--tid', tid, '--lun', String(LUN), '--backing-store', devicePath]);
    const id = volume.id.slice(0, 36);
    await this.tgtadm(['--op', 'update', '--mode', 'logicalunit', '--tid', tid, '--lun', String(LUN), '--params', `scsi_id=${id},scsi_sn=${id}`]);
  }

  /** Create target, LUN 1, CHAP account (idempotent). Returns `provider_location` and `provider_auth`. */
  async createExport(volume: DriverVolume, devicePath: string): Promise<ModelUpdate> {
    const chap = parseProviderAuth(volume.provider_auth) ?? generateChap();
    const portals = configuredPortals(this.cfg);
    const tid = await this.lock(() => this.build(volume, devicePath, chap, portals, []).catch(async (e: unknown) => {
      await this.teardown(volume, chap.username).catch(() => undefined);
      throw e;
    }));
    return { provider_location: formatIscsiLocation({ portals, tid, iqn: this.iqn(volume), lun: LUN }), provider_auth: formatProviderAuth(chap) };
  }

  /**
   * Recreate what tgtd lost (after a restart) from `provider_location`, `provider_auth` and the recorded initiators.
   * @throws {@link InvalidStateError} (field `provider_auth`) when the volume has an export but no CHAP credentials
   * @throws {@link InvalidInputError} (field `provider_location`) for a location that is not Cinder's iSCSI format
   */
  async ensureExport(volume: DriverVolume, devicePath: string): Promise<void> {
    if (!volume.provider_location) return;
    const loc = parseIscsiLocation(volume.provider_location);
    const chap = parseProviderAuth(volume.provider_auth);
    if (!chap) throw new InvalidStateError(`volume ${volume.id} has an export but no provider_auth to rebuild its CHAP account from`, { field: 'provider_auth' });
    const hosts = await this.mappings.hosts(volume);
    await this.lock(() => this.build(volume, devicePath, chap, loc.portals, hosts));
  }

  private async teardown(volume: DriverVolume, user: string | undefined): Promise<void> {
    const t = await this.find(this.iqn(volume));
    if (t) await this.tgtadm(['--op', 'delete', '--mode', 'target', '--tid', String(t.tid), '--force']);
    if (user) {
      const r = await this.tgtadm(['--op', 'delete', '--mode', 'account', '--user', user], { checkExitCode: false });
      if (r.exitCode !== 0 && !/can't find the account|no such|not found|exist/i.test(r.stderr)) {
        throw new BackendError(`tgtadm could not delete the CHAP account of volume ${volume.id}: ${r.stderr.trim()}`);
      }
    }
  }

  /** Delete the target (forcibly, as Cinder's `tgt-admin --delete -f`) and its CHAP account; forget the recorded initiators. */
  async removeExport(volume: DriverVolume): Promise<void> {
    const chap = volume.provider_auth ? parseProviderAuth(volume.provider_auth) : undefined;
    await this.lock(() => this.teardown(volume, chap?.username));
    await this.mappings.remove(volume, null);
  }

  /** Bind the connector's initiator name to the target and return Cinder's iSCSI connection info. */
  async initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo> {
    const initiator = requireInitiator(connector);
    requireLocation(volume);
    await this.lock(async () => {
      const t = await this.find(this.iqn(volume));
      if (!t) throw new InvalidStateError(`tgt target ${this.iqn(volume)} does not exist: ensure the export first`, { field: 'provider_location' });
      if (!t.acls.includes(initiator)) await this.tgtadm(['--op', 'bind', '--mode', 'target', '--tid', String(t.tid), '--initiator-name', initiator]);
    });
    await this.mappings.add(volume, initiator);
    return { driver_volume_type: 'iscsi', data: iscsiConnectionData(volume, connector, this.cfg.reportDiscard) };
  }

  /** Unbind the connector's initiator name (every bound initiator when `connector` is null). */
  async terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null): Promise<void> {
    const initiator = connector === null ? null : requireInitiator(connector);
    await this.lock(async () => {
      const t = await this.find(this.iqn(volume));
      if (!t) return;
      const names = initiator === null ? t.acls.filter((a) => a.includes('.')) : t.acls.includes(initiator) ? [initiator] : [];
      for (const n of names) await this.tgtadm(['--op', 'unbind', '--mode', 'target', '--tid', String(t.tid), '--initiator-name', n]);
    });
    await this.mappings.remove(volume, initiator);
  }

  validateConnector(connector: ConnectorProperties): void {
    requireInitiator(connector);
  }

  /**
   * tgt reads a backing store's size only when the LUN is created, so the LUN is deleted and
   * added again (Cinder's `tgt-admin --update -f` does the same to the whole target): I/O in
   * flight is disrupted, and hosts see the new size after a rescan.
   *
   * tgtd refuses to delete a LUN while it has SCSI commands queued or executing
   * (`tgt_device_destroy` in tgt's usr/target.c answers "this logical unit is still active").
   * On an attached volume that is normal for a moment: udev's probes and multipathd's path
   * checker read a device that has just appeared. The delete is therefore retried with back-off
   * for up to `lunBusyMs` (default {@link TGT_LUN_BUSY_MS}; Cinder wraps its `tgt-admin --update` in `utils.retry`
   * for the same reason).
   * @throws {@link BackendError} (field `target_helper`) when the LUN stays busy that long
   *   (sustained I/O on an attached volume; extend it detached, or pause the I/O)
   * @throws {@link ProcessExecutionError} for any other tgtadm failure
   */
  async extendTarget(volume: DriverVolume, devicePath: string): Promise<void> {
    await this.lock(async () => {
      const t = await this.find(this.iqn(volume));
      if (!t || !t.luns.includes(LUN)) return;
      await this.deleteLun(t.tid, volume);
      await this.addLun(String(t.tid), volume, devicePath);
    });
  }

  private async deleteLun(tid: number, volume: DriverVolume): Promise<void> {
    const argv = ['--op', 'delete', '--mode', 'logicalunit', '--tid', String(tid), '--lun', String(LUN)];
    const deadline = Date.now() + this.lunBusyMs;
    for (let wait = 20, tries = 1; ; wait = Math.min(wait * 2, 200), tries++) {
      try {
        await this.tgtadm(argv);
        if (tries > 1) this.ctx.logger.info({ helper: 'tgtadm', tid, lun: LUN, tries }, 'tgtd released the busy LUN for re-creation');
        return;
      } catch (e) {
        if (!(e instanceof ProcessExecutionError && /still active/i.test(e.stderr))) throw e;
      }
      if (Date.now() + wait > deadline) {
        throw new BackendError(
          `tgt kept LUN ${LUN} of target ${tid} (volume ${volume.id}) busy with SCSI commands for ${this.lunBusyMs / 1000} s (${tries} tries), ` +
            'so it was not re-created at the new size: the LV has grown, but tgtd serves the old size until the LUN is re-created (the next extend does that; pause the I/O or detach first)',
          { field: 'target_helper', details: { tid, lun: LUN, tries } },
        );
      }
      await delay(wait);
    }
  }
}
