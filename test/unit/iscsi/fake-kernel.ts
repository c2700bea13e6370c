/**
 * A small stand-in for the kernel and open-iscsi in unit tests: it lays out a host root (sysfs,
 * /dev, /etc/iscsi) the way a real Linux kernel (6.x, iscsi_tcp, dm-multipath) does, and plays
 * the kernel's part when Brick acts: `iscsiadm --login` makes a session appear, a write of
 * "C T L" to a host's `scan` file makes that LUN's disk appear (and multipathd's map, when
 * enabled), a write to a device's `delete` file removes it, `multipath -f` or `dmsetup remove` removes a
 * map (both refuse one listed in `openMaps`).
 *
 * Layout (same relative symlinks as sysfs):
 *   /sys/devices/platform/hostH/{scsi_host/hostH/scan, iscsi_host/hostH}
 *   /sys/devices/platform/hostH/sessionS/{iscsi_session/sessionS/{targetname,tpgt,state,ifacename},
 *       connectionS:0/iscsi_connection/connectionS:0/{persistent_address,persistent_port},
 *       targetH:0:0/H:0:0:L/{wwid,state,delete,rescan,block/sdX/{size,holders/}}}
 *   /sys/class/{iscsi_session,iscsi_connection,scsi_host,iscsi_host}/* -> ../../devices/...
 *   /sys/block/sdX -> ../devices/platform/hostH/sessionS/targetH:0:0/H:0:0:L/block/sdX
 *   /sys/bus/scsi/devices/H:0:0:L -> ../../../devices/platform/hostH/sessionS/targetH:0:0/H:0:0:L
 *   /sys/devices/virtual/block/dm-N/{dm/name,dm/uuid,slaves/sdX,size}; /sys/block/dm-N -> ...
 *   /dev/sdX, /dev/dm-N (plain files), /dev/disk/by-id/scsi-<wwid> -> ../../sdX (or dm-N),
 *   /dev/disk/by-path/ip-<addr>:<port>-iscsi-<iqn>-lun-<L> -> ../../sdX
 *   /etc/iscsi/nodes/<iqn>/<addr>,<port> (flat node record, as `iscsiadm -o new` writes it)
 */
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { createHostContext, type HostContext } from '../../../src/host/context.js';
import { LockManager } from '../../../src/host/lock.js';
import { createCapturingLogger } from '../../../src/log.js';

export interface FakeLun {
  lun: number;
  wwid: string; // udev form, 36001405...
  sizeBytes: number;
}

export interface FakeTarget {
  iqn: string;
  portals: string[]; // 'addr:port'
  luns: FakeLun[];
  chap?: { username: string; password: string };
  down: Set<string>;
}

interface Session {
  id: number;
  host: number;
  iqn: string;
  portal: string;
  dir: string; // host path of the session device dir
}

/** What a device node holds in the fixture: one readable 4 KiB block. */
const BLOCK = Buffer.alloc(4096);

const RECORD_TEMPLATE = fs.readFileSync(new URL('../../../../test/fixtures/iscsi/node-record-2.1.8.txt', import.meta.url), 'utf8');

export class FakeKernel {
  readonly root: string;
  readonly executor = new RecordingExecutor();
  readonly log = createCapturingLogger('debug');
  readonly ctx: HostContext;
  readonly targets: FakeTarget[] = [];
  readonly sessions: Session[] = [];
  /** Make multipathd build maps for new disks on its own. */
  multipathd = true;
  /** Tables loaded with `dmsetup create`, by map name. */
  readonly dmTables = new Map<string, string>();
  /** Map names something holds open: `dmsetup remove` and `multipath -f` refuse them (EBUSY / "map in use"). */
  readonly openMaps = new Set<string>();
  /** Let block devices appear only after this many scans of their LUN (simulates slow probes). */
  scansBeforeDisk = 1;
  /** LUNs whose disks never appear. */
  readonly deadLuns = new Set<number>();
  private nextSession = 1;
  private nextHost = 2;
  private nextDisk = 1;
  /**
   * Give a new disk the lowest free `sdX` name, as the kernel's sd driver does (its index is
   * freed when a disk goes), instead of always a fresh one.
   */
  reuseNames = false;
  /** Called after a disk has been removed (the kernel's reaction to a `delete` write). */
  onDiskRemoved?: (disk: string) => void;
  private nextDm = 0;
  private readonly scanCount = new Map<string, number>();
  /** How much of each host's `scan` file has been handled, in characters. */
  private readonly scanRead = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'brick-iscsi-'));
    for (const d of ['sys/class/iscsi_session', 'sys/class/iscsi_connection', 'sys/class/scsi_host', 'sys/class/iscsi_host', 'sys/bus/scsi/devices', 'sys/block', 'sys/devices/platform', 'sys/devices/virtual/block', 'dev/disk/by-id', 'dev/disk/by-path', 'etc/iscsi/nodes']) {
      fs.mkdirSync(join(this.root, d), { recursive: true });
    }
    this.ctx = createHostContext({ executor: this.executor, hostRoot: this.root, logger: this.log.logger, locks: new LockManager(join(this.root, 'locks'), 10_000) });
    this.installHandlers();
    this.timer = setInterval(() => this.tick(), 3);
    this.timer.unref();
  }

  dispose(): void {
    clearInterval(this.timer);
    rmSync(this.root, { recursive: true, force: true });
  }

  p(hostPathText: string): string {
    return join(this.root, hostPathText);
  }

  private link(linkHostPath: string, targetHostPath: string): void {
    const l = this.p(linkHostPath);
    fs.mkdirSync(dirname(l), { recursive: true });
    try {
      fs.unlinkSync(l);
    } catch {
      /* none */
    }
    fs.symlinkSync(relative(dirname(l), this.p(targetHostPath)), l);
  }

  private write(hostPathText: string, content: string | Buffer): void {
    fs.mkdirSync(dirname(this.p(hostPathText)), { recursive: true });
    fs.writeFileSync(this.p(hostPathText), content);
  }

  addTarget(t: Omit<FakeTarget, 'down'>): FakeTarget {
    const full = { ...t, down: new Set<string>() };
    this.targets.push(full);
    return full;
  }

  private target(iqn: string): FakeTarget | undefined {
    return this.targets.find((t) => t.iqn === iqn);
  }

  private split(portal: string): { addr: string; port: string } {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(portal)!;
    return { addr: m[1]!, port: m[2]! };
  }

  recordPath(iqn: string, portal: string): string {
    const { addr, port } = this.split(portal);
    return `/etc/iscsi/nodes/${iqn}/${addr},${port}`;
  }

  hasRecord(iqn: string, portal: string): boolean {
    return fs.existsSync(this.p(this.recordPath(iqn, portal)));
  }

  /** Make a session exist (as iscsid would after a login). */
  addSession(iqn: string, portal: string): Session {
    const id = this.nextSession++;
    const host = this.nextHost++;
    const { addr, port } = this.split(portal);
    const hostDir = `/sys/devices/platform/host${host}`;
    this.write(`${hostDir}/scsi_host/host${host}/scan`, '');
    this.write(`${hostDir}/scsi_host/host${host}/proc_name`, 'iscsi_tcp\n');
    fs.mkdirSync(this.p(`${hostDir}/iscsi_host/host${host}`), { recursive: true });
    this.link(`/sys/class/scsi_host/host${host}`, `${hostDir}/scsi_host/host${host}`);
    this.link(`/sys/class/iscsi_host/host${host}`, `${hostDir}/iscsi_host/host${host}`);
    const dir = `${hostDir}/session${id}`;
    const sdir = `${dir}/iscsi_session/session${id}`;
    this.write(`${sdir}/targetname`, `${iqn}\n`);
    this.write(`${sdir}/tpgt`, '1\n');
    this.write(`${sdir}/state`, 'LOGGED_IN\n');
    this.write(`${sdir}/ifacename`, 'default\n');
    this.link(`${sdir}/device`, dir);
    this.link(`/sys/class/iscsi_session/session${id}`, sdir);
    const cdir = `${dir}/connection${id}:0/iscsi_connection/connection${id}:0`;
    this.write(`${cdir}/persistent_address`, `${addr}\n`);
    this.write(`${cdir}/persistent_port`, `${port}\n`);
    this.write(`${cdir}/address`, `${addr}\n`);
    this.write(`${cdir}/port`, `${port}\n`);
    this.link(`/sys/class/iscsi_connection/connection${id}:0`, cdir);
    const s = { id, host, iqn, portal, dir };
    this.sessions.push(s);
    return s;
  }

  removeSession(s: Session): void {
    fs.rmSync(this.p(s.dir), { recursive: true, force: true });
    fs.rmSync(this.p(`/sys/devices/platform/host${s.host}`), { recursive: true, force: true });
    for (const l of [`/sys/class/iscsi_session/session${s.id}`, `/sys/class/iscsi_connection/connection${s.id}:0`, `/sys/class/scsi_host/host${s.host}`, `/sys/class/iscsi_host/host${s.host}`]) {
      fs.rmSync(this.p(l), { force: true });
    }
    this.sessions.splice(this.sessions.indexOf(s), 1);
  }

  sessionDisks(s: Session): { lun: number; disk: string | undefined }[] {
    const out: { lun: number; disk: string | undefined }[] = [];
    const tdir = this.p(`${s.dir}/target${s.host}:0:0`);
    if (!fs.existsSync(tdir)) return out;
    for (const d of fs.readdirSync(tdir)) {
      const m = /^\d+:0:0:(\d+)$/.exec(d);
      if (!m) continue;
      const blk = join(tdir, d, 'block');
      out.push({ lun: Number(m[1]), disk: fs.existsSync(blk) ? fs.readdirSync(blk)[0] : undefined });
    }
    return out;
  }

  /** Make LUN `lun` of the session's target appear as a disk (what a scan does). Returns the disk name. */
  addDisk(s: Session, lun: number, withBlock = true): string | undefined {
    const t = this.target(s.iqn)!;
    const l = t.luns.find((x) => x.lun === lun);
    if (!l) return undefined;
    const hctl = `${s.host}:0:0:${lun}`;
    const tdir = `${s.dir}/target${s.host}:0:0`;
    const ddir = `${tdir}/${hctl}`;
    if (fs.existsSync(this.p(`${ddir}/block`))) return fs.readdirSync(this.p(`${ddir}/block`))[0];
    this.write(`${ddir}/wwid`, `naa.${l.wwid.slice(1)}\n`);
    this.write(`${ddir}/state`, 'running\n');
    this.write(`${ddir}/delete`, '');
    this.write(`${ddir}/rescan`, '');
    this.link(`/sys/bus/scsi/devices/${hctl}`, ddir);
    if (!withBlock) return undefined;
    let name = `sd${String.fromCharCode(97 + this.nextDisk++)}`;
    if (this.reuseNames) {
      for (let i = 0; ; i++) {
        const n = `sd${String.fromCharCode(97 + i)}`;
        if (!fs.existsSync(this.p(`/sys/block/${n}`))) {
          name = n;
          break;
        }
      }
    }
    const bdir = `${ddir}/block/${name}`;
    this.write(`${bdir}/size`, `${l.sizeBytes / 512}\n`);
    this.write(`${bdir}/dev`, `8:${(this.nextDisk - 1) * 16}\n`);
    fs.mkdirSync(this.p(`${bdir}/holders`), { recursive: true });
    this.link(`${bdir}/device`, ddir);
    this.link(`/sys/block/${name}`, bdir);
    this.write(`/dev/${name}`, BLOCK);
    const { addr, port } = this.split(s.portal);
    this.link(`/dev/disk/by-path/ip-${addr}:${port}-iscsi-${s.iqn}-lun-${lun}`, `/dev/${name}`);
    if (!fs.existsSync(this.p(`/dev/disk/by-id/scsi-${l.wwid}`))) this.link(`/dev/disk/by-id/scsi-${l.wwid}`, `/dev/${name}`);
    if (this.multipathd) this.addToMap(l.wwid, name, l.sizeBytes);
    return name;
  }

  mapOf(wwid: string): string | undefined {
    for (const dm of fs.readdirSync(this.p('/sys/block'))) {
      if (!dm.startsWith('dm-')) continue;
      if (fs.readFileSync(this.p(`/sys/block/${dm}/dm/uuid`), 'utf8').trim() === `mpath-${wwid}`) return dm;
    }
    return undefined;
  }

  /** Show a running multipathd process (`/run/multipathd.pid` and `/proc/PID/comm`), or remove it. */
  setMultipathdProcess(running: boolean): void {
    if (running) {
      this.write('/run/multipathd.pid', '4242\n');
      this.write('/proc/4242/comm', 'multipathd\n');
    } else {
      fs.rmSync(this.p('/run/multipathd.pid'), { force: true });
      fs.rmSync(this.p('/proc/4242'), { recursive: true, force: true });
    }
  }

  addToMap(wwid: string, disk: string, sizeBytes: number): string {
    let dm = this.mapOf(wwid);
    if (!dm) {
      dm = `dm-${this.nextDm++}`;
      const d = `/sys/devices/virtual/block/${dm}`;
      this.write(`${d}/dm/name`, `${wwid}\n`);
      this.write(`${d}/dm/uuid`, `mpath-${wwid}\n`);
      this.write(`${d}/size`, `${sizeBytes / 512}\n`);
      fs.mkdirSync(this.p(`${d}/slaves`), { recursive: true });
      this.link(`/sys/block/${dm}`, d);
      this.write(`/dev/${dm}`, BLOCK);
      this.link(`/dev/disk/by-id/dm-uuid-mpath-${wwid}`, `/dev/${dm}`);
      this.link(`/dev/disk/by-id/scsi-${wwid}`, `/dev/${dm}`);
    }
    const blk = fs.realpathSync(this.p(`/sys/block/${disk}`)).slice(this.root.length);
    this.link(`/sys/devices/virtual/block/${dm}/slaves/${disk}`, blk);
    this.link(`${blk}/holders/${dm}`, `/sys/devices/virtual/block/${dm}`);
    return dm;
  }

  removeMap(dm: string): void {
    const d = `/sys/devices/virtual/block/${dm}`;
    const wwid = fs.readFileSync(this.p(`${d}/dm/name`), 'utf8').trim();
    for (const s of fs.readdirSync(this.p(`${d}/slaves`))) fs.rmSync(this.p(`/sys/block/${s}/holders/${dm}`), { force: true });
    fs.rmSync(this.p(d), { recursive: true, force: true });
    fs.rmSync(this.p(`/sys/block/${dm}`), { force: true });
    fs.rmSync(this.p(`/dev/${dm}`), { force: true });
    fs.rmSync(this.p(`/dev/disk/by-id/dm-uuid-mpath-${wwid}`), { force: true });
    fs.rmSync(this.p(`/dev/disk/by-id/scsi-${wwid}`), { force: true });
  }

  private removeDisk(disk: string): void {
    const blk = fs.realpathSync(this.p(`/sys/block/${disk}`)).slice(this.root.length);
    const ddir = dirname(dirname(blk));
    for (const h of fs.readdirSync(this.p(`${blk}/holders`))) fs.rmSync(this.p(`/sys/devices/virtual/block/${h}/slaves/${disk}`), { force: true });
    fs.rmSync(this.p(ddir), { recursive: true, force: true });
    const hctl = ddir.split('/').pop()!;
    fs.rmSync(this.p(`/sys/bus/scsi/devices/${hctl}`), { force: true });
    fs.rmSync(this.p(`/sys/block/${disk}`), { force: true });
    fs.rmSync(this.p(`/dev/${disk}`), { force: true });
    for (const dir of ['/dev/disk/by-path', '/dev/disk/by-id']) {
      for (const l of fs.readdirSync(this.p(dir))) {
        if (fs.readlinkSync(this.p(`${dir}/${l}`)).endsWith(`/${disk}`)) fs.rmSync(this.p(`${dir}/${l}`), { force: true });
      }
    }
    this.onDiskRemoved?.(disk);
  }

  /** The kernel's reaction to sysfs writes: scans and deletes. */
  private tick(): void {
    try {
      this.applyRescans();
      for (const s of [...this.sessions]) {
        const scan = this.p(`/sys/devices/platform/host${s.host}/scsi_host/host${s.host}/scan`);
        if (!fs.existsSync(scan)) continue;
        // Scans are appended (tee -a); everything after what was already handled is new.
        const all = fs.readFileSync(scan, 'utf8');
        const done = this.scanRead.get(scan) ?? 0;
        const nl = all.lastIndexOf('\n');
        if (nl + 1 > done) this.scanRead.set(scan, nl + 1);
        for (const v of all.slice(done, nl + 1).split('\n').map((x) => x.trim()).filter(Boolean)) {
          this.scans.push(`host${s.host} ${v}`);
          const m = /^(\S+) (\S+) (\S+)$/.exec(v);
          if (m) {
            const lun = Number(m[3]);
            const key = `${s.id}:${lun}`;
            const n = (this.scanCount.get(key) ?? 0) + 1;
            this.scanCount.set(key, n);
            if (!this.deadLuns.has(lun)) this.addDisk(s, lun, n >= this.scansBeforeDisk);
          }
        }
        for (const d of this.sessionDisks(s)) {
          const del = this.p(`${s.dir}/target${s.host}:0:0/${s.host}:0:0:${d.lun}/delete`);
          if (fs.existsSync(del) && fs.readFileSync(del, 'utf8').trim() === '1') {
            if (d.disk) this.removeDisk(d.disk);
            else fs.rmSync(dirname(del), { recursive: true, force: true });
          }
        }
      }
    } catch {
      /* racing with the code under test; next tick */
    }
  }

  private installHandlers(): void {
    const ex = this.executor;
    const arg = (argv: string[], flag: string): string => argv[argv.indexOf(flag) + 1]!;
    ex.on(['iscsiadm', '-m', 'node'], (argv) => {
      const iqn = arg(argv, '-T');
      const portal = arg(argv, '-p');
      const rec = this.recordPath(iqn, portal);
      if (argv.includes('new')) {
        const { addr, port } = this.split(portal);
        this.write(rec, RECORD_TEMPLATE.replace(/^node\.name = .*$/m, `node.name = ${iqn}`).replace(/^node\.conn\[0\]\.address = .*$/m, `node.conn[0].address = ${addr}`).replace(/^node\.conn\[0\]\.port = .*$/m, `node.conn[0].port = ${port}`));
        return { stdout: `New iSCSI node [tcp:[hw=,ip=,net_if=,iscsi_if=default] ${addr},${port},-1 ${iqn}] added\n` };
      }
      if (argv.includes('delete')) {
        if (!this.hasRecord(iqn, portal)) return { exitCode: 21, stderr: 'iscsiadm: No records found\n' };
        fs.rmSync(this.p(rec), { force: true });
        return {};
      }
      if (argv.includes('--login')) {
        if (!this.hasRecord(iqn, portal)) return { exitCode: 21, stderr: 'iscsiadm: No records found\n' };
        const t = this.target(iqn);
        if (!t || t.down.has(portal) || !t.portals.includes(portal)) return { exitCode: 8, stderr: 'iscsiadm: Could not login to [iface: default]: connection refused\niscsiadm: initiator reported error (8 - connection timed out)\n' };
        if (this.sessions.some((s) => s.iqn === iqn && s.portal === portal)) return { exitCode: 15, stderr: 'session exists' };
        const text = fs.readFileSync(this.p(rec), 'utf8');
        const get = (k: string): string | undefined => new RegExp(`^${k.replace(/[.[\]]/g, '\\$&')} = (.*)$`, 'm').exec(text)?.[1];
        if (t.chap) {
          if (get('node.session.auth.authmethod') !== 'CHAP' || get('node.session.auth.username') !== t.chap.username || get('node.session.auth.password') !== t.chap.password) {
            return { exitCode: 24, stderr: 'iscsiadm: Could not login to [iface: default, target: x, portal: y].\niscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\n' };
          }
        }
        this.addSession(iqn, portal);
        return { stdout: `Logging in to [iface: default, target: ${iqn}, portal: ${portal}]\nLogin to [...] successful.\n` };
      }
      if (argv.includes('--logout')) {
        const s = this.sessions.find((x) => x.iqn === iqn && x.portal === portal);
        if (!s) return { exitCode: 21, stderr: 'iscsiadm: No matching sessions found\n' };
        this.removeSession(s);
        return {};
      }
      return { exitCode: 7, stderr: `fake: unsupported ${argv.join(' ')}` };
    });
    ex.on(['iscsiadm', '-m', 'discoverydb'], (argv) => {
      const portal = arg(argv, '-p');
      const lines: string[] = [];
      for (const t of this.targets) {
        if (!t.portals.includes(portal) || t.down.has(portal)) continue;
        for (const p of t.portals) lines.push(`${p},1 ${t.iqn}`);
      }
      if (lines.length === 0) return { exitCode: 4, stderr: 'iscsiadm: cannot make connection to ' + portal };
      return { stdout: lines.join('\n') + '\n' };
    });
    ex.on(['multipath', '-a'], { stdout: "wwid '...' added\n" });
    ex.on(['multipathd', 'add', 'path'], (argv) => {
      const disk = argv[3]!.replace('/dev/', '');
      const wwidRaw = fs.readFileSync(this.p(`/sys/block/${disk}/device/wwid`), 'utf8').trim();
      const wwid = `3${wwidRaw.slice(4)}`;
      const size = Number(fs.readFileSync(this.p(`/sys/block/${disk}/size`), 'utf8').trim()) * 512;
      this.addToMap(wwid, disk, size);
      return { stdout: 'ok\n' };
    });
    ex.on(['multipath', '-f'], (argv) => {
      const name = argv[2]!;
      if (this.openMaps.has(name)) return { exitCode: 1, stderr: `${name}: map in use\n` };
      const dm = this.mapOf(name);
      if (dm) this.removeMap(dm);
      return {};
    });
    ex.on(['dmsetup', 'remove', '--noudevsync'], (argv) => {
      const name = argv[3]!;
      const dm = this.mapOf(name);
      if (!dm) return { exitCode: 1, stderr: `Device ${name} not found\nCommand failed.\n` };
      if (this.openMaps.has(name)) return { exitCode: 1, stderr: `device-mapper: remove ioctl on ${name}  failed: Device or resource busy\nCommand failed.\n` };
      this.removeMap(dm);
      return {};
    });
    ex.on(['multipathd', 'del', 'map'], (argv) => {
      const dm = this.mapOf(argv[3]!);
      if (dm) this.removeMap(dm);
      return {};
    });
    ex.on(['multipathd', 'resize', 'map'], (argv) => {
      const dm = this.mapOf(argv[3]!);
      if (!dm) return { stdout: 'fail\n' };
      this.applyRescans();
      const slave = fs.readdirSync(this.p(`/sys/block/${dm}/slaves`))[0]!;
      this.write(`/sys/devices/virtual/block/${dm}/size`, fs.readFileSync(this.p(`/sys/block/${slave}/size`), 'utf8'));
      return { stdout: 'ok\n' };
    });
    ex.on(['dmsetup', 'create'], (argv) => this.dmsetupCreate(argv));
    ex.on(['blockdev', '--flushbufs'], {});
    ex.on(['dd'], (argv) => {
      const dev = argv.find((a) => a.startsWith('if='))!.slice(3);
      return fs.existsSync(this.p(dev)) ? { stdout: '' } : { exitCode: 1, stderr: 'No such device' };
    });
  }

  /** `dmsetup create --noudevsync (--uuid mpath-WWID NAME --table TABLE | --concise 'NAME,UUID,,,TABLE;...')`: maps over the tables' devices; like dmsetup, a concise list stops at the first failure. */
  dmsetupCreate(argv: string[]): { exitCode?: number; stderr?: string } {
    const specs = argv.includes('--concise')
      ? argv[argv.indexOf('--concise') + 1]!.split(';').map((d) => {
          const [name, uuid, , , table] = d.split(',');
          return { name: name!, uuid: uuid!, table: table! };
        })
      : [{ name: argv[argv.indexOf('--table') - 1]!, uuid: argv[argv.indexOf('--uuid') + 1]!, table: argv[argv.indexOf('--table') + 1]! }];
    for (const { name, uuid, table } of specs) {
      const wwid = uuid.replace(/^mpath-/, '');
      if (this.mapOf(wwid)) return { exitCode: 1, stderr: `device-mapper: create ioctl on ${name} failed: Device or resource busy` };
      const devs = table.split(' ').filter((w) => /^\d+:\d+$/.test(w));
      const byDev = new Map(fs.readdirSync(this.p('/sys/block')).filter((n) => n.startsWith('sd')).map((n) => [fs.readFileSync(this.p(`/sys/block/${n}/dev`), 'utf8').trim(), n]));
      const sectors = Number(table.split(' ')[1]);
      for (const d of devs) this.addToMap(wwid, byDev.get(d)!, sectors * 512);
      this.dmTables.set(name, table);
    }
    return {};
  }

  /** Every targeted scan seen: `hostH C T L`. */
  readonly scans: string[] = [];

  /** Disks whose capacity was re-read after a write to `rescan`. */
  readonly rescanned: string[] = [];

  /** Grow a LUN on the "target": only rescans of its disks make the host see the new size. */
  growLun(iqn: string, lun: number, bytes: number): void {
    this.target(iqn)!.luns.find((x) => x.lun === lun)!.sizeBytes = bytes;
  }

  /** Apply pending rescans (the kernel re-reads capacity on a write of 1 to `rescan`). */
  applyRescans(): void {
    for (const s of this.sessions) {
      const t = this.target(s.iqn)!;
      for (const d of this.sessionDisks(s)) {
        if (!d.disk) continue;
        const rescan = this.p(`/sys/block/${d.disk}/device/rescan`);
        if (fs.readFileSync(rescan, 'utf8').trim() === '1') {
          const l = t.luns.find((x) => x.lun === d.lun)!;
          fs.writeFileSync(this.p(`/sys/block/${d.disk}/size`), `${l.sizeBytes / 512}\n`);
          fs.writeFileSync(rescan, '');
          this.rescanned.push(d.disk);
        }
      }
    }
  }
}
