/**
 * The core of the fake SCSI kernels of the iSCSI and Fibre Channel unit tests: a host root laid
 * out as a Linux 6.x kernel with dm-multipath lays it out, and the kernel's (and multipathd's)
 * part when Brick acts on it. The protocol layers (`test/unit/iscsi/fake-kernel.ts` for
 * sessions and iscsiadm, `test/unit/connectors/fc-kernel.ts` for HBAs and remote ports) decide
 * where a LUN's disk hangs and what a scan finds; this core makes disks and maps and removes them.
 *
 * The kernel reacts to sysfs writes whichever way they arrive: written directly (no root
 * helper; polled every few ms) or through the root helper as `tee -a PATH` (answered at once):
 * - "C T L" into `/sys/class/scsi_host/hostH/scan` goes to the layer's {@link FakeScsiKernel.onScan};
 * - `1` into `H:C:T:L/delete` (by address, or `/sys/block/sdX/device/delete`) removes the SCSI
 *   device and its disk, holders' slave links and udev links;
 * - `1` into `/sys/block/sdX/device/rescan` re-reads the LUN's capacity.
 * `multipath -f` and `dmsetup remove` remove a map (both refuse one listed in `openMaps`),
 * `multipathd del map` removes it whatever, `dmsetup create` loads one, `multipathd add path`
 * puts a disk in its map, `multipathd resize map` takes the paths' size.
 *
 * Layout of a disk (same relative symlinks as sysfs): `<parent>/targetH:C:T/H:C:T:L/{wwid,state,
 * delete,rescan,block/sdX/{size,dev,holders/,device}}`, `/sys/block/sdX`,
 * `/sys/bus/scsi/devices/H:C:T:L`, `/dev/sdX` (one readable 4 KiB block), udev's
 * `/dev/disk/by-path/<name>` and `/dev/disk/by-id/scsi-<wwid>`; of a map:
 * `/sys/devices/virtual/block/dm-N/{dm/name,dm/uuid,slaves/sdX,size}`, `/sys/block/dm-N`,
 * `/dev/dm-N`, `/dev/disk/by-id/{dm-uuid-mpath-<wwid>,scsi-<wwid>}`.
 */
import * as fs from 'node:fs';
import { join, dirname, relative } from 'node:path';
import type { RecordingExecutor } from '../../src/exec/recording.js';
import type { HostContext } from '../../src/host/context.js';

/** What a device node holds in the fixture: one readable 4 KiB block. */
const BLOCK = Buffer.alloc(4096);

/** A LUN's disk to make, as a layer describes it. */
export interface NewDisk {
  /** Host path of the sysfs parent the target directory hangs under (a session, an rport). */
  parent: string;
  host: number;
  channel: number;
  target: number;
  lun: number;
  /** udev-form WWID (`36001405...`); sysfs `wwid` shows it as `naa.<rest>`. */
  wwid: string;
  /** The LUN's size in bytes now; the disk re-reads it on a rescan. */
  sizeBytes: () => number;
  /** Name of the udev by-path link (`ip-...-iscsi-...-lun-0`, `pci-...-fc-0x...-lun-1`). */
  byPath: string;
  /** Extra attributes of the SCSI device (`vendor`, `model`). */
  attrs?: Record<string, string>;
  /** Make only the SCSI device, no block device yet (a slow probe). */
  blockless?: boolean;
}

/** The shared core; see the module notes. */
export abstract class FakeScsiKernel {
  readonly root: string;
  readonly executor: RecordingExecutor;
  readonly ctx: HostContext;
  /** Make multipathd build maps for new disks on its own. */
  multipathd = true;
  /** Tables loaded with `dmsetup create`, by map name. */
  readonly dmTables = new Map<string, string>();
  /** Map names something holds open: `dmsetup remove` and `multipath -f` refuse them (EBUSY / "map in use"). */
  readonly openMaps = new Set<string>();
  /** Give a new disk the lowest free `sdX` name, as the kernel's sd driver does (its index is freed when a disk goes), instead of always a fresh one. */
  reuseNames = false;
  /** Leave the `/dev/disk/by-id` links of removed disks behind (udev has not caught up): Brick must unlink them (os-brick `_remove_scsi_symlinks`). */
  lingeringByIdLinks = false;
  /** Disks dm-multipath has failed: `dmsetup status` marks them `F` (with a fail count of 1). */
  readonly failedPaths = new Set<string>();
  /** Device paths (`/dev/dm-0`) whose read fails: `dd` exits 1, as on an I/O error. */
  readonly unreadable = new Set<string>();
  /** Called after a disk has been removed (the kernel's reaction to a `delete` write). */
  onDiskRemoved?: (disk: string) => void;
  /** Every scan seen: `hostH C T L`. */
  readonly scans: string[] = [];
  /** Disks whose capacity was re-read after a write to `rescan`. */
  readonly rescanned: string[] = [];
  private nextDisk = 1;
  private nextDm = 0;
  private readonly sizes = new Map<string, () => number>();
  /** How much of each host's `scan` file has been handled, in characters. */
  private readonly scanRead = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly removeRoot: () => void;

  constructor(setup: { root: string; executor: RecordingExecutor; ctx: HostContext; removeRoot: () => void }) {
    this.root = setup.root;
    this.executor = setup.executor;
    this.ctx = setup.ctx;
    this.removeRoot = setup.removeRoot;
    for (const d of ['sys/class/scsi_host', 'sys/bus/scsi/devices', 'sys/block', 'sys/devices/virtual/block', 'dev/disk/by-id', 'dev/disk/by-path']) fs.mkdirSync(this.p(d), { recursive: true });
    this.installHandlers();
    this.timer = setInterval(() => this.tick(), 3);
    this.timer.unref();
  }

  /** What a scan of `"C T L"` (`-` wildcards) on SCSI host `host` finds: the layer adds the disks. */
  protected abstract onScan(host: number, value: string): void;

  /** Stop the kernel and remove the host root. */
  dispose(): void {
    clearInterval(this.timer);
    this.removeRoot();
  }

  /** The real path of host path `hostPathText`. */
  p(hostPathText: string): string {
    return join(this.root, hostPathText);
  }

  protected link(linkHostPath: string, targetHostPath: string): void {
    const l = this.p(linkHostPath);
    fs.mkdirSync(dirname(l), { recursive: true });
    fs.rmSync(l, { force: true });
    fs.symlinkSync(relative(dirname(l), this.p(targetHostPath)), l);
  }

  protected write(hostPathText: string, content: string | Buffer): void {
    fs.mkdirSync(dirname(this.p(hostPathText)), { recursive: true });
    fs.writeFileSync(this.p(hostPathText), content);
  }

  /** Make a LUN's SCSI device and (unless `blockless`) its disk; returns the disk name, or the existing one. */
  addScsiDisk(d: NewDisk): string | undefined {
    const hctl = `${d.host}:${d.channel}:${d.target}:${d.lun}`;
    const ddir = `${d.parent}/target${d.host}:${d.channel}:${d.target}/${hctl}`;
    if (fs.existsSync(this.p(`${ddir}/block`))) return fs.readdirSync(this.p(`${ddir}/block`))[0];
    this.write(`${ddir}/wwid`, `naa.${d.wwid.slice(1)}\n`);
    this.write(`${ddir}/state`, 'running\n');
    this.write(`${ddir}/delete`, '');
    this.write(`${ddir}/rescan`, '');
    for (const [k, v] of Object.entries(d.attrs ?? {})) this.write(`${ddir}/${k}`, v);
    this.link(`/sys/bus/scsi/devices/${hctl}`, ddir);
    if (d.blockless) return undefined;
    const name = this.newDiskName();
    const bdir = `${ddir}/block/${name}`;
    this.write(`${bdir}/size`, `${d.sizeBytes() / 512}\n`);
    this.write(`${bdir}/dev`, `8:${(this.nextDisk - 1) * 16}\n`);
    fs.mkdirSync(this.p(`${bdir}/holders`), { recursive: true });
    this.link(`${bdir}/device`, ddir);
    this.link(`/sys/block/${name}`, bdir);
    this.write(`/dev/${name}`, BLOCK);
    this.sizes.set(name, d.sizeBytes);
    this.link(`/dev/disk/by-path/${d.byPath}`, `/dev/${name}`);
    if (!fs.existsSync(this.p(`/dev/disk/by-id/scsi-${d.wwid}`))) this.link(`/dev/disk/by-id/scsi-${d.wwid}`, `/dev/${name}`);
    if (this.multipathd) this.addToMap(d.wwid, name, d.sizeBytes());
    return name;
  }

  private newDiskName(): string {
    const name = `sd${String.fromCharCode(97 + this.nextDisk++)}`;
    if (!this.reuseNames) return name;
    for (let i = 0; ; i++) {
      const n = `sd${String.fromCharCode(97 + i)}`;
      if (!fs.existsSync(this.p(`/sys/block/${n}`))) return n;
    }
  }

  /** Block devices (`sdX`) present now, sorted. */
  disks(): string[] {
    return fs.readdirSync(this.p('/sys/block')).filter((d) => d.startsWith('sd')).sort();
  }

  /** The dm device (`dm-N`) of the map for `wwid`, if any. */
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

  /** Put `disk` into the map for `wwid`, making the map first if there is none; returns the dm name. */
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

  /** Remove map `dm` and its links. */
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

  /** Remove the SCSI device at H:C:T:L (its disk too, when it has one). */
  protected deleteAt(hctl: string): void {
    const bus = this.p(`/sys/bus/scsi/devices/${hctl}`);
    if (!fs.existsSync(bus)) return;
    const blk = join(bus, 'block');
    const disk = fs.existsSync(blk) ? fs.readdirSync(blk)[0] : undefined;
    if (disk) return this.removeDisk(disk);
    fs.rmSync(fs.realpathSync(bus), { recursive: true, force: true });
    fs.rmSync(bus, { force: true });
  }

  private removeDisk(disk: string): void {
    const blk = fs.realpathSync(this.p(`/sys/block/${disk}`)).slice(this.root.length);
    const ddir = dirname(dirname(blk));
    for (const h of fs.readdirSync(this.p(`${blk}/holders`))) fs.rmSync(this.p(`/sys/devices/virtual/block/${h}/slaves/${disk}`), { force: true });
    fs.rmSync(this.p(ddir), { recursive: true, force: true });
    fs.rmSync(this.p(`/sys/bus/scsi/devices/${ddir.split('/').pop()!}`), { force: true });
    fs.rmSync(this.p(`/sys/block/${disk}`), { force: true });
    fs.rmSync(this.p(`/dev/${disk}`), { force: true });
    this.sizes.delete(disk);
    for (const dir of this.lingeringByIdLinks ? ['/dev/disk/by-path'] : ['/dev/disk/by-path', '/dev/disk/by-id']) {
      for (const l of fs.readdirSync(this.p(dir))) {
        if (fs.readlinkSync(this.p(`${dir}/${l}`)).endsWith(`/${disk}`)) fs.rmSync(this.p(`${dir}/${l}`), { force: true });
      }
    }
    this.onDiskRemoved?.(disk);
  }

  /** Re-read the capacity of `disk` (a write of 1 to its `rescan`). */
  private rescan(disk: string): void {
    const size = this.sizes.get(disk);
    if (!size) return;
    fs.writeFileSync(this.p(`/sys/block/${disk}/size`), `${size() / 512}\n`);
    this.rescanned.push(disk);
  }

  /** Apply pending rescans written directly (the kernel re-reads capacity on a write of 1 to `rescan`). */
  applyRescans(): void {
    for (const disk of this.disks()) {
      const file = this.p(`/sys/block/${disk}/device/rescan`);
      if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim() === '1') {
        this.rescan(disk);
        fs.writeFileSync(file, '');
      }
    }
  }

  private handleScan(host: number, value: string): void {
    this.scans.push(`host${host} ${value}`);
    this.onScan(host, value);
  }

  /** The kernel's reaction to direct sysfs writes: scans, rescans and deletes. */
  private tick(): void {
    try {
      this.applyRescans();
      for (const h of fs.readdirSync(this.p('/sys/class/scsi_host'))) {
        const scan = this.p(`/sys/class/scsi_host/${h}/scan`);
        if (!fs.existsSync(scan)) continue;
        // Scans are appended; everything after what was already handled is new.
        const all = fs.readFileSync(scan, 'utf8');
        const done = this.scanRead.get(scan) ?? 0;
        const nl = all.lastIndexOf('\n');
        if (nl + 1 > done) this.scanRead.set(scan, nl + 1);
        for (const v of all.slice(done, nl + 1).split('\n').map((x) => x.trim()).filter(Boolean)) this.handleScan(Number(h.slice(4)), v);
      }
      for (const hctl of fs.readdirSync(this.p('/sys/bus/scsi/devices'))) {
        const del = this.p(`/sys/bus/scsi/devices/${hctl}/delete`);
        if (fs.existsSync(del) && fs.readFileSync(del, 'utf8').trim() === '1') this.deleteAt(hctl);
      }
    } catch {
      /* racing with the code under test; next tick */
    }
  }

  private installHandlers(): void {
    const ex = this.executor;
    const tee = (re: RegExp) => (a: string[]) => a[0] === 'tee' && a[1] === '-a' && re.test(a[2]!);
    ex.on(tee(/\/host\d+\/scan$/), (argv, o) => {
      this.handleScan(Number(/host(\d+)\/scan$/.exec(argv[2]!)![1]), String(o.input ?? '').trim());
      return {};
    });
    ex.on(tee(/^\/sys\/bus\/scsi\/devices\/[\d:]+\/delete$/), (argv) => {
      this.deleteAt(argv[2]!.split('/')[5]!);
      return {};
    });
    ex.on(tee(/^\/sys\/block\/sd[a-z]+\/device\/delete$/), (argv) => {
      this.removeDisk(argv[2]!.split('/')[3]!);
      return {};
    });
    ex.on(tee(/^\/sys\/block\/sd[a-z]+\/device\/rescan$/), (argv) => {
      this.rescan(argv[2]!.split('/')[3]!);
      return {};
    });
    ex.on(['rm', '-f'], (argv) => {
      fs.rmSync(this.p(argv[2]!), { force: true });
      return {};
    });
    this.installMultipathHandlers();
    ex.on(['blockdev', '--flushbufs'], {});
    ex.on(['dd'], (argv) => {
      const dev = argv.find((a) => a.startsWith('if='))!.slice(3);
      if (this.unreadable.has(dev)) return { exitCode: 1, stderr: `dd: error reading '${dev}': Input/output error\n` };
      return fs.existsSync(this.p(dev)) ? { stdout: '' } : { exitCode: 1, stderr: 'No such device' };
    });
  }

  private installMultipathHandlers(): void {
    const ex = this.executor;
    ex.on(['multipath', '-a'], { stdout: "wwid '...' added\n" });
    ex.on(['multipathd', 'add', 'path'], (argv) => {
      const disk = argv[3]!.replace('/dev/', '');
      const wwid = `3${fs.readFileSync(this.p(`/sys/block/${disk}/device/wwid`), 'utf8').trim().slice(4)}`;
      this.addToMap(wwid, disk, Number(fs.readFileSync(this.p(`/sys/block/${disk}/size`), 'utf8').trim()) * 512);
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
    ex.on(['dmsetup', 'status'], (argv) => this.dmsetupStatus(argv[2]!));
  }

  /** `dmsetup status NAME` of a map: one path group (service-time, two selector values per path), each slave `A`, or `F` when in {@link failedPaths}. */
  dmsetupStatus(name: string): { exitCode?: number; stdout?: string; stderr?: string } {
    const dm = this.mapOf(name);
    if (!dm) return { exitCode: 1, stderr: `Device ${name} not found\nCommand failed.\n` };
    const slaves = fs.readdirSync(this.p(`/sys/block/${dm}/slaves`)).sort();
    const size = fs.readFileSync(this.p(`/sys/block/${dm}/size`), 'utf8').trim();
    const paths = slaves.map((s) => `${fs.readFileSync(this.p(`/sys/block/${s}/dev`), 'utf8').trim()} ${this.failedPaths.has(s) ? 'F 1' : 'A 0'} 0 1`);
    return { stdout: `0 ${size} multipath 2 0 0 0 1 1 A 0 ${slaves.length} 2 ${paths.join(' ')} \n` };
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
      const byDev = new Map(this.disks().map((n) => [fs.readFileSync(this.p(`/sys/block/${n}/dev`), 'utf8').trim(), n]));
      const sectors = Number(table.split(' ')[1]);
      for (const d of devs) this.addToMap(wwid, byDev.get(d)!, sectors * 512);
      this.dmTables.set(name, table);
    }
    return {};
  }
}
