/**
 * A fake kernel for the Fibre Channel tests: the FC layer over the shared fake SCSI kernel
 * (`test/helpers/fake-scsi-kernel.ts`, which makes and removes disks and maps), on the fixture
 * tree test/fixtures/fc/three-hbas (three HBA ports, array target ports seen through
 * fc_transport and fc_remote_ports). Brick writes to sysfs through the root helper here
 * (`tee -a PATH`): a targeted "C T L" scan, or a wildcard "- - L" scan, makes the LUN's disk
 * appear under the rport's target with udev's by-path (`pci-...-fc-0x<wwpn>-lun-<L>`) and by-id
 * links; multipathd is off unless asked for. udev is slow to drop by-id links here, so the
 * connector's own unlink (`rm -f`) shows.
 */
import * as fs from 'node:fs';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { FakeScsiKernel } from '../../helpers/fake-scsi-kernel.js';
import { fixtureCopy, fixtureHost } from './helpers.js';

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

export class FcKernel extends FakeScsiKernel {
  readonly luns: ArrayLun[] = [];

  constructor() {
    const fx = fixtureCopy('fc/three-hbas');
    const executor = new RecordingExecutor({ rootHelper: ['sudo'] });
    super({ root: fx.root, executor, ctx: fixtureHost(fx.root, executor).host, removeRoot: fx.cleanup });
    this.multipathd = false;
    this.lingeringByIdLinks = true;
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

  protected onScan(h: number, v: string): void {
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
    const lunName = lun.lun < 256 ? String(lun.lun) : `0x${(lun.lun & 0xffff).toString(16).padStart(4, '0')}${((lun.lun >>> 16) & 0xffff).toString(16).padStart(4, '0')}00000000`;
    const pci = HBA_PCI[h]!.split('/').pop()!;
    this.addScsiDisk({
      parent: rp.dir,
      host: h,
      channel: rp.channel,
      target: rp.targetId,
      lun: lun.lun,
      wwid: `3${lun.naa}`,
      sizeBytes: () => lun.sizeBytes,
      byPath: `pci-${pci}-fc-0x${rp.wwpn}-lun-${lunName}`,
      attrs: { vendor: 'IBM     \n', model: '2145            \n' },
    });
  }
}
