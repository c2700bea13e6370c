/**
 * A fake kernel for the Fibre Channel tests, over the fixture tree test/fixtures/fc/three-hbas
 * (three HBA ports, array target ports seen through fc_transport and fc_remote_ports). It plays
 * the kernel's part when Brick writes to sysfs through the root helper (`tee -a PATH`):
 * a targeted "C T L" scan, or a wildcard "- - L" scan, makes the LUN's disk appear with the
 * sysfs layout of a real SCSI disk (H:C:T:L under the rport's target, /sys/block, /sys/bus/scsi,
 * /dev, udev's by-path and by-id links), multipathd (when on) builds a map over the paths, a
 * write to `device/delete` removes the disk, `multipath -f` or `dmsetup remove` removes the map.
 */
import * as fs from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fixtureCopy, fixtureHost } from './helpers.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import type { HostContext } from '../../../src/host/context.js';

/** A LUN the "array" maps: its WWID (sysfs naa. form) and, optionally, only to some initiator WWPNs. */
export interface ArrayLun {
  /** LUN number as the SCSI layer sees it (after addressing). */
  lun: number;
  /** Target port WWPNs exporting it. */
  wwpns: string[];
  naa: string;
  sizeBytes: number;
  /** Initiator WWPNs it is masked to; default all. */
  initiators?: string[];
}

const HBA_PCI: Record<number, string> = {
  6: 'pci0000:00/0000:00:03.0/0000:05:00.0',
  7: 'pci0000:00/0000:00:03.0/0000:05:00.1',
  8: 'pci0000:00/0000:00:1c.0/0000:0b:00.0',
};

export class FcKernel {
  readonly root: string;
  readonly ex = new RecordingExecutor({ rootHelper: ['sudo'] });
  readonly host: HostContext;
  readonly scans: string[] = [];
  readonly luns: ArrayLun[] = [];
  multipathd = false;
  private nextDisk = 1;
  private readonly cleanupFx: () => void;

  constructor() {
    const fx = fixtureCopy('fc/three-hbas');
    this.root = fx.root;
    this.cleanupFx = fx.cleanup;
    for (const d of ['sys/block', 'sys/bus/scsi/devices', 'dev/disk/by-path', 'dev/disk/by-id', 'sys/devices/virtual/block']) fs.mkdirSync(join(this.root, d), { recursive: true });
    this.host = fixtureHost(this.root, this.ex).host;
    this.ex.on((a) => a[0] === 'tee' && a[1] === '-a' && /\/scan$/.test(a[2]!), (argv, o) => {
      const h = Number(/host(\d+)\/scan$/.exec(argv[2]!)![1]);
      const v = String(o.input ?? '').trim();
      this.scans.push(`host${h} ${v}`);
      this.scan(h, v);
      return {};
    });
    this.ex.on((a) => a[0] === 'tee' && a[1] === '-a' && /\/device\/delete$/.test(a[2]!), (argv) => {
      this.removeDisk(/\/sys\/block\/(sd[a-z]+)\//.exec(argv[2]!)![1]!);
      return {};
    });
    // The same attribute reached through the SCSI address, as pinned devices are deleted.
    this.ex.on((a) => a[0] === 'tee' && a[1] === '-a' && /^\/sys\/bus\/scsi\/devices\/[\d:]+\/delete$/.test(a[2]!), (argv) => {
      const blk = this.p(`${dirname(argv[2]!)}/block`);
      if (fs.existsSync(blk)) for (const name of fs.readdirSync(blk)) this.removeDisk(name);
      return {};
    });
    this.ex.on((a) => a[0] === 'tee' && a[1] === '-a' && /\/device\/rescan$/.test(a[2]!), (argv) => {
      const name = /\/sys\/block\/(sd[a-z]+)\//.exec(argv[2]!)![1]!;
      const lun = this.lunOfDisk(name);
      if (lun) fs.writeFileSync(this.p(`/sys/block/${name}/size`), `${lun.sizeBytes / 512}\n`);
      return {};
    });
    this.ex.on(['blockdev', '--flushbufs'], {});
    this.ex.on(['multipath', '-f'], (argv) => {
      this.removeMap(argv[2]!);
      return {};
    });
    this.ex.on(['dmsetup', 'remove', '--noudevsync'], (argv) => {
      this.removeMap(argv[3]!);
      return {};
    });
    this.ex.on(['multipathd', 'resize', 'map'], { stdout: 'ok\n' });
    this.ex.on(['rm', '-f'], (argv) => {
      fs.rmSync(this.p(argv[2]!), { force: true });
      return {};
    });
  }

  cleanup(): void {
    this.cleanupFx();
  }

  p(hostPathStr: string): string {
    return join(this.root, hostPathStr);
  }

  private link(at: string, target: string): void {
    fs.mkdirSync(dirname(this.p(at)), { recursive: true });
    fs.symlinkSync(relative(dirname(this.p(at)), this.p(target)), this.p(at));
  }

  /** rport directories of HBA `h`: [{dir, channel, targetId, wwpn}] (targetId -1 = not a SCSI target). */
  private rports(h: number): { dir: string; channel: number; targetId: number; wwpn: string }[] {
    const base = `/sys/devices/${HBA_PCI[h]}/host${h}`;
    return fs.readdirSync(this.p(base)).filter((d) => d.startsWith('rport-')).map((d) => {
      const rp = `${base}/${d}/fc_remote_ports/${d}`;
      return {
        dir: `${base}/${d}`,
        channel: Number(/^rport-\d+:(\d+)-/.exec(d)![1]),
        targetId: Number(fs.readFileSync(this.p(`${rp}/scsi_target_id`), 'utf8').trim()),
        wwpn: fs.readFileSync(this.p(`${rp}/port_name`), 'utf8').trim().replace(/^0x/, ''),
      };
    });
  }

  private initiatorOf(h: number): string {
    return fs.readFileSync(this.p(`/sys/class/fc_host/host${h}/port_name`), 'utf8').trim().replace(/^0x/, '');
  }

  private scan(h: number, v: string): void {
    const [c, t, l] = v.split(' ');
    for (const rp of this.rports(h)) {
      if (rp.targetId < 0) continue;
      if (c !== '-' && Number(c) !== rp.channel) continue;
      if (t !== '-' && Number(t) !== rp.targetId) continue;
      for (const lun of this.luns) {
        if (l !== '-' && Number(l) !== lun.lun) continue;
        if (!lun.wwpns.includes(rp.wwpn)) continue;
        if (lun.initiators && !lun.initiators.includes(this.initiatorOf(h))) continue;
        this.addDisk(h, rp, lun);
      }
    }
  }

  private addDisk(h: number, rp: { dir: string; channel: number; targetId: number; wwpn: string }, lun: ArrayLun): void {
    const hctl = `${h}:${rp.channel}:${rp.targetId}:${lun.lun}`;
    if (fs.existsSync(this.p(`/sys/bus/scsi/devices/${hctl}`))) return;
    const name = `sd${String.fromCharCode(97 + this.nextDisk++)}`;
    const ldir = `${rp.dir}/target${h}:${rp.channel}:${rp.targetId}/${hctl}`;
    const w = (rel: string, v: string) => {
      fs.mkdirSync(dirname(this.p(`${ldir}/${rel}`)), { recursive: true });
      fs.writeFileSync(this.p(`${ldir}/${rel}`), v);
    };
    w('wwid', `naa.${lun.naa}\n`);
    w('state', 'running\n');
    w('vendor', 'IBM     \n');
    w('model', '2145            \n');
    w('delete', '');
    w('rescan', '');
    w(`block/${name}/size`, `${lun.sizeBytes / 512}\n`);
    fs.mkdirSync(this.p(`${ldir}/block/${name}/holders`), { recursive: true });
    fs.symlinkSync('../../../' + hctl, this.p(`${ldir}/block/${name}/device`));
    this.link(`/sys/block/${name}`, `${ldir}/block/${name}`);
    this.link(`/sys/bus/scsi/devices/${hctl}`, ldir);
    fs.writeFileSync(this.p(`/dev/${name}`), '');
    const lunName = lun.lun < 256 ? String(lun.lun) : `0x${(lun.lun & 0xffff).toString(16).padStart(4, '0')}${((lun.lun >>> 16) & 0xffff).toString(16).padStart(4, '0')}00000000`;
    const pci = HBA_PCI[h]!.split('/').pop()!;
    this.link(`/dev/disk/by-path/pci-${pci}-fc-0x${rp.wwpn}-lun-${lunName}`, `/dev/${name}`);
    if (!fs.existsSync(this.p(`/dev/disk/by-id/scsi-3${lun.naa}`))) this.link(`/dev/disk/by-id/scsi-3${lun.naa}`, `/dev/${name}`);
    if (this.multipathd) this.addToMap(name, lun);
  }

  private addToMap(name: string, lun: ArrayLun): void {
    const wwid = `3${lun.naa}`;
    let dm = fs.readdirSync(this.p('/sys/block')).find((d) => d.startsWith('dm-') && fs.readFileSync(this.p(`/sys/block/${d}/dm/uuid`), 'utf8').trim() === `mpath-${wwid}`);
    if (!dm) {
      dm = `dm-${fs.readdirSync(this.p('/sys/block')).filter((d) => d.startsWith('dm-')).length}`;
      const dd = `/sys/devices/virtual/block/${dm}`;
      fs.mkdirSync(this.p(`${dd}/dm`), { recursive: true });
      fs.mkdirSync(this.p(`${dd}/slaves`), { recursive: true });
      fs.writeFileSync(this.p(`${dd}/dm/name`), `${wwid}\n`);
      fs.writeFileSync(this.p(`${dd}/dm/uuid`), `mpath-${wwid}\n`);
      fs.writeFileSync(this.p(`${dd}/size`), `${lun.sizeBytes / 512}\n`);
      this.link(`/sys/block/${dm}`, dd);
      fs.writeFileSync(this.p(`/dev/${dm}`), '');
    }
    this.link(`/sys/devices/virtual/block/${dm}/slaves/${name}`, `/sys/block/${name}`);
    this.link(`/sys/block/${name}/holders/${dm}`, `/sys/devices/virtual/block/${dm}`);
  }

  private removeMap(nameOrDm: string): void {
    for (const d of fs.readdirSync(this.p('/sys/block')).filter((x) => x.startsWith('dm-'))) {
      const n = fs.readFileSync(this.p(`/sys/block/${d}/dm/name`), 'utf8').trim();
      if (n !== nameOrDm && d !== nameOrDm) continue;
      for (const s of fs.readdirSync(this.p(`/sys/block/${d}/slaves`))) fs.rmSync(this.p(`/sys/block/${s}/holders/${d}`), { force: true });
      fs.rmSync(this.p(`/sys/devices/virtual/block/${d}`), { recursive: true, force: true });
      fs.rmSync(this.p(`/sys/block/${d}`), { force: true });
      fs.rmSync(this.p(`/dev/${d}`), { force: true });
    }
  }

  private lunOfDisk(name: string): ArrayLun | undefined {
    const naa = fs.readFileSync(this.p(`/sys/block/${name}/device/wwid`), 'utf8').trim().replace(/^naa\./, '');
    return this.luns.find((l) => l.naa === naa);
  }

  private removeDisk(name: string): void {
    const ldir = fs.realpathSync(this.p(`/sys/block/${name}/device`));
    const hctl = ldir.split('/').pop()!;
    fs.rmSync(ldir, { recursive: true, force: true });
    fs.rmSync(this.p(`/sys/block/${name}`), { force: true });
    fs.rmSync(this.p(`/sys/bus/scsi/devices/${hctl}`), { force: true });
    fs.rmSync(this.p(`/dev/${name}`), { force: true });
    for (const l of fs.readdirSync(this.p('/dev/disk/by-path'))) {
      if (fs.readlinkSync(this.p(`/dev/disk/by-path/${l}`)).endsWith(`/${name}`)) fs.rmSync(this.p(`/dev/disk/by-path/${l}`));
    }
  }

  /** Block devices present now. */
  disks(): string[] {
    return fs.readdirSync(this.p('/sys/block')).filter((d) => d.startsWith('sd')).sort();
  }
}
