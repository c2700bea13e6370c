/**
 * `lioadm`: the Linux-IO (LIO) iSCSI target, written through configfs directly (no targetcli,
 * no rtslib, no cinder-rtstool).
 *
 * Behaviour follows Cinder's `LioAdm` + `cinder-rtstool`: one target per volume named
 * `target_prefix + volume.name`, TPG 1 with `authentication=1` and no demo mode
 * (`generate_node_acls=0`), a block (iblock) backstore on the LV named after the volume, LUN 0,
 * a network portal per configured address, per-volume CHAP credentials (generated on the first
 * export, kept in `provider_auth`), and a node ACL with those credentials for each initiator
 * that `initialize_connection` is given, removed again by `terminate_connection`. Where
 * Cinder saves the whole LIO configuration with `rtstool save`, Brick records each export's
 * mapped initiators in the driver's state directory, so `ensure_export` rebuilds a lost
 * target (after a reboot or module reload) from `provider_location`, `provider_auth` and that record.
 *
 * configfs layout used (all under `/sys/kernel/config/target`, read through the host root):
 * `core/iblock_<n>/<volume name>/{control,udev_path,enable,wwn/vpd_unit_serial}`,
 * `iscsi/<iqn>/tpgt_1/{enable,attrib/*,lun/lun_0/<link>,np/<ip:port>,acls/<initiator>/{auth/userid,auth/password,lun_0/<link>}}`.
 *
 * @module
 */
import { lstat } from 'node:fs/promises';
import { BackendError, InvalidStateError } from '../errors.js';
import type { ConnectionInfo, DriverContext, DriverVolume, ModelUpdate } from '../drivers/driver.js';
import type { ConnectorProperties } from '../initiator/properties.js';
import type { TargetConfig } from './config.js';
import { Configfs } from './configfs.js';
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

const ROOT = '/sys/kernel/config/target';
const TPG = 'tpgt_1';
const LUN = 0;
const LINK = 'brick_lun';

/** Options for {@link LioTarget}. */
export interface LioOptions {
  /** configfs access; default one on the context's host root (tests inject a kernel emulation). */
  configfs?: Configfs;
}

/** The `lioadm` target helper. */
export class LioTarget implements TargetHelper {
  readonly helperName = 'lioadm';
  readonly storageProtocol = 'iSCSI';
  readonly connectorProtocol = 'ISCSI';
  private readonly fs: Configfs;
  private readonly mappings: MappingStore;

  constructor(
    private readonly cfg: TargetConfig,
    private readonly ctx: DriverContext,
    options: LioOptions = {},
  ) {
    this.fs = options.configfs ?? new Configfs(ctx.hostRoot);
    this.mappings = new MappingStore(ctx.stateDir, 'lioadm');
  }

  private iqn(volume: DriverVolume): string {
    return `${this.cfg.prefix}${volume.name}`;
  }

  private tpg(iqn: string): string {
    return `${ROOT}/iscsi/${iqn}/${TPG}`;
  }

  private lock<T>(fn: () => Promise<T>): Promise<T> {
    // One lock for LIO changes, as Cinder's `lioadm` external lock: backstore HBA numbering is global.
    return this.ctx.locks.withLock('target-lio', fn, { timeoutMs: 120_000 });
  }

  /**
   * Checks configfs is mounted and the LIO core is loaded (loading `target_core_mod` once
   * if needed), and creates the iSCSI fabric directory (which loads `iscsi_target_mod`).
   * @throws {@link BackendError} (field `target_helper`) when LIO is unavailable
   */
  async checkForSetupError(): Promise<void> {
    if (!(await this.fs.exists(ROOT))) {
      await this.ctx.executor.run(['modprobe', 'target_core_mod'], { timeoutMs: 60_000, checkExitCode: false });
    }
    if (!(await this.fs.exists(ROOT))) {
      throw new BackendError(`target_helper lioadm: ${ROOT} does not exist (is configfs mounted and target_core_mod available?)`, { field: 'target_helper' });
    }
    try {
      await this.fs.mkdir(`${ROOT}/iscsi`);
    } catch (e) {
      throw new BackendError('target_helper lioadm: the LIO iSCSI fabric (iscsi_target_mod) cannot be loaded', { field: 'target_helper', cause: e });
    }
  }

  /** The backstore directory of `name`, if one exists (`core/iblock_<n>/<name>`). */
  private async findBackstore(name: string): Promise<string | undefined> {
    for (const hba of await this.fs.list(`${ROOT}/core`)) {
      if (!/^iblock_\d+$/.test(hba)) continue;
      if ((await this.fs.list(`${ROOT}/core/${hba}`)).includes(name)) return `${ROOT}/core/${hba}/${name}`;
    }
    return undefined;
  }

  private async createBackstore(volume: DriverVolume, devicePath: string): Promise<string> {
    const existing = await this.findBackstore(volume.name);
    if (existing) {
      const udev = await this.fs.read(`${existing}/udev_path`);
      if (udev && udev !== devicePath) throw new BackendError(`LIO backstore ${volume.name} already serves ${udev}, not ${devicePath}`, { details: { backstore: existing } });
      if ((await this.fs.read(`${existing}/enable`)) === '1') return existing;
      await this.configureBackstore(existing, volume, devicePath);
      return existing;
    }
    const used = new Set((await this.fs.list(`${ROOT}/core`)).filter((h) => /^iblock_\d+$/.test(h)).map((h) => Number(h.slice(7))));
    let n = 0;
    while (used.has(n)) n++;
    const hba = `${ROOT}/core/iblock_${n}`;
    await this.fs.mkdir(hba);
    const so = `${hba}/${volume.name}`;
    try {
      await this.fs.mkdir(so);
      await this.configureBackstore(so, volume, devicePath);
    } catch (e) {
      await this.fs.rmdir(so).catch(() => undefined);
      await this.fs.rmdir(hba).catch(() => undefined);
      throw e;
    }
    return so;
  }

  private async configureBackstore(so: string, volume: DriverVolume, devicePath: string): Promise<void> {
    await this.fs.write(`${so}/control`, `udev_path=${devicePath}`);
    await this.fs.write(`${so}/udev_path`, devicePath);
    // A distinct unit serial per volume: LIO derives the NAA WWN hosts see from it.
    await this.fs.write(`${so}/wwn/vpd_unit_serial`, volume.id);
    await this.fs.write(`${so}/enable`, '1');
  }

  private async buildTarget(volume: DriverVolume, devicePath: string, chap: ChapCredentials, portals: string[], hosts: string[]): Promise<void> {
    const iqn = this.iqn(volume);
    const so = await this.createBackstore(volume, devicePath);
    const tpg = this.tpg(iqn);
    await this.fs.mkdir(`${ROOT}/iscsi/${iqn}`);
    await this.fs.mkdir(tpg);
    await this.fs.write(`${tpg}/attrib/authentication`, '1');
    await this.fs.write(`${tpg}/attrib/generate_node_acls`, '0');
    await this.fs.write(`${tpg}/attrib/demo_mode_write_protect`, '1');
    await this.fs.mkdir(`${tpg}/lun/lun_${LUN}`);
    if (!(await this.linkIn(`${tpg}/lun/lun_${LUN}`))) await this.fs.link(so, `${tpg}/lun/lun_${LUN}/${LINK}`);
    for (const portal of portals) await this.fs.mkdir(`${tpg}/np/${portal}`);
    for (const host of hosts) await this.addAcl(tpg, host, chap);
    if ((await this.fs.read(`${tpg}/enable`)) !== '1') await this.fs.write(`${tpg}/enable`, '1');
  }

  /** The name of a symlink inside `dir`, if any (a LUN's backstore link, a mapped LUN's link). */
  private async linkIn(dir: string): Promise<string | undefined> {
    for (const e of await this.fs.list(dir)) {
      try {
        if ((await lstat(this.fs.p(`${dir}/${e}`))).isSymbolicLink()) return e;
      } catch {
        /* raced away */
      }
    }
    return undefined;
  }

  private async addAcl(tpg: string, initiator: string, chap: ChapCredentials): Promise<void> {
    const acl = `${tpg}/acls/${initiator}`;
    await this.fs.mkdir(acl);
    await this.fs.write(`${acl}/auth/userid`, chap.username);
    await this.fs.write(`${acl}/auth/password`, chap.password, true);
    await this.fs.mkdir(`${acl}/lun_${LUN}`);
    if (!(await this.linkIn(`${acl}/lun_${LUN}`))) await this.fs.link(`${tpg}/lun/lun_${LUN}`, `${acl}/lun_${LUN}/${LINK}`);
  }

  private async removeAcl(tpg: string, initiator: string): Promise<void> {
    const acl = `${tpg}/acls/${initiator}`;
    if (!(await this.fs.exists(acl))) return;
    for (const e of await this.fs.list(acl)) {
      if (!/^lun_\d+$/.test(e)) continue;
      let link: string | undefined;
      while ((link = await this.linkIn(`${acl}/${e}`))) await this.fs.unlink(`${acl}/${e}/${link}`);
      await this.fs.rmdir(`${acl}/${e}`);
    }
    await this.fs.rmdir(acl);
  }

  /** Create the target (idempotent). Returns `provider_location` and `provider_auth` (`CHAP user secret`). */
  async createExport(volume: DriverVolume, devicePath: string): Promise<ModelUpdate> {
    const chap = parseProviderAuth(volume.provider_auth) ?? generateChap();
    const portals = configuredPortals(this.cfg);
    await this.lock(() => this.buildTarget(volume, devicePath, chap, portals, []).catch(async (e: unknown) => {
      await this.teardown(volume).catch(() => undefined);
      throw e;
    }));
    return {
      provider_location: formatIscsiLocation({ portals, tid: 1, iqn: this.iqn(volume), lun: LUN }),
      provider_auth: formatProviderAuth(chap),
    };
  }

  /**
   * Rebuild the target, portals and ACLs recorded for `volume` if LIO lost them.
   * @throws {@link InvalidStateError} (field `provider_auth`) when the volume has an export but no CHAP credentials
   * @throws {@link InvalidInputError} (field `provider_location`) for a location that is not Cinder's iSCSI format
   */
  async ensureExport(volume: DriverVolume, devicePath: string): Promise<void> {
    if (!volume.provider_location) return;
    const loc = parseIscsiLocation(volume.provider_location);
    const chap = parseProviderAuth(volume.provider_auth);
    if (!chap) throw new InvalidStateError(`volume ${volume.id} has an export but no provider_auth to rebuild its CHAP settings from`, { field: 'provider_auth' });
    const hosts = await this.mappings.hosts(volume);
    await this.lock(() => this.buildTarget(volume, devicePath, chap, loc.portals, hosts));
  }

  private async teardown(volume: DriverVolume): Promise<void> {
    const iqn = this.iqn(volume);
    const tpg = this.tpg(iqn);
    if (await this.fs.exists(tpg)) {
      if ((await this.fs.read(`${tpg}/enable`)) === '1') await this.fs.write(`${tpg}/enable`, '0').catch(() => undefined);
      for (const a of await this.fs.list(`${tpg}/acls`)) await this.removeAcl(tpg, a);
      for (const l of await this.fs.list(`${tpg}/lun`)) {
        let link: string | undefined;
        while ((link = await this.linkIn(`${tpg}/lun/${l}`))) await this.fs.unlink(`${tpg}/lun/${l}/${link}`);
        await this.fs.rmdir(`${tpg}/lun/${l}`);
      }
      for (const np of await this.fs.list(`${tpg}/np`)) await this.fs.rmdir(`${tpg}/np/${np}`);
      await this.fs.rmdir(tpg);
    }
    await this.fs.rmdir(`${ROOT}/iscsi/${iqn}`);
    const so = await this.findBackstore(volume.name);
    if (so) {
      await this.fs.rmdir(so);
      const hba = so.slice(0, so.lastIndexOf('/'));
      if ((await this.fs.list(hba)).filter((e) => e !== 'hba_info' && e !== 'hba_mode').length === 0) await this.fs.rmdir(hba);
    }
  }

  /** Remove ACLs, LUN, portals, target and backstore; forget the recorded mappings. */
  async removeExport(volume: DriverVolume): Promise<void> {
    await this.lock(() => this.teardown(volume));
    await this.mappings.remove(volume, null);
  }

  /**
   * Add a node ACL (CHAP from `provider_auth`, LUN 0 mapped) for the connector's initiator; return Cinder's iSCSI connection info.
   * @throws {@link InvalidInputError} (field `initiator`) when the connector has no initiator IQN
   * @throws {@link InvalidStateError} (field `provider_auth` or `provider_location`) when the export was not created first
   */
  async initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo> {
    const initiator = requireInitiator(connector);
    requireLocation(volume);
    const chap = parseProviderAuth(volume.provider_auth);
    if (!chap) throw new InvalidStateError(`volume ${volume.id} has no provider_auth: create the export first`, { field: 'provider_auth' });
    const tpg = this.tpg(this.iqn(volume));
    await this.lock(async () => {
      if (!(await this.fs.exists(tpg))) throw new InvalidStateError(`LIO target ${this.iqn(volume)} does not exist: ensure the export first`, { field: 'provider_location' });
      await this.addAcl(tpg, initiator, chap);
    });
    await this.mappings.add(volume, initiator);
    return { driver_volume_type: 'iscsi', data: iscsiConnectionData(volume, connector, this.cfg.reportDiscard) };
  }

  /** Remove the connector's node ACL (every ACL when `connector` is null). */
  async terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null): Promise<void> {
    const initiator = connector === null ? null : requireInitiator(connector);
    const tpg = this.tpg(this.iqn(volume));
    await this.lock(async () => {
      if (initiator !== null) return this.removeAcl(tpg, initiator);
      for (const a of await this.fs.list(`${tpg}/acls`)) await this.removeAcl(tpg, a);
    });
    await this.mappings.remove(volume, initiator);
  }

  validateConnector(connector: ConnectorProperties): void {
    requireInitiator(connector);
  }

  /** Nothing to do: an iblock backstore reports the block device's current size on every READ CAPACITY. */
  async extendTarget(): Promise<void> {}

  /** The initiators with an ACL on `volume`'s target (for tests and diagnostics). */
  async aclInitiators(volume: DriverVolume): Promise<string[]> {
    return this.fs.list(`${this.tpg(this.iqn(volume))}/acls`);
  }
}
