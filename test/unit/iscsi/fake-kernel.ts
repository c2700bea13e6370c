/**
 * A small stand-in for the kernel and open-iscsi in the iSCSI unit tests: the iSCSI layer over
 * the shared fake SCSI kernel (`test/helpers/fake-scsi-kernel.ts`, which makes and removes
 * disks and maps). It lays out sessions the way a real Linux kernel (6.x, iscsi_tcp) does, and
 * plays open-iscsi's part: `iscsiadm --login` makes a session appear, a write of "C T L" to a
 * host's `scan` file makes that LUN's disk appear below the session (and multipathd's map, when
 * enabled), `iscsiadm --logout` removes the session, node records live in `/etc/iscsi/nodes`.
 *
 * Layout (same relative symlinks as sysfs):
 *   /sys/devices/platform/hostH/{scsi_host/hostH/scan, iscsi_host/hostH}
 *   /sys/devices/platform/hostH/sessionS/{iscsi_session/sessionS/{targetname,tpgt,state,ifacename},
 *       connectionS:0/iscsi_connection/connectionS:0/{persistent_address,persistent_port},
 *       targetH:0:0/H:0:0:L/...} (the disk itself: see the core)
 *   /sys/class/{iscsi_session,iscsi_connection,scsi_host,iscsi_host}/* -> ../../devices/...
 *   /dev/disk/by-path/ip-<addr>:<port>-iscsi-<iqn>-lun-<L> -> ../../sdX
 *   /etc/iscsi/nodes/<iqn>/<addr>,<port> (flat node record, as `iscsiadm -o new` writes it)
 */
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { createHostContext } from '../../../src/host/context.js';
import { LockManager } from '../../../src/host/lock.js';
import { createCapturingLogger } from '../../../src/log.js';
import { FakeScsiKernel } from '../../helpers/fake-scsi-kernel.js';

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

const RECORD_TEMPLATE = fs.readFileSync(new URL('../../../../test/fixtures/iscsi/node-record-2.1.8.txt', import.meta.url), 'utf8');

/** Make a scratch host root with the iSCSI directories. */
function iscsiRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'brick-iscsi-'));
  for (const d of ['sys/class/iscsi_session', 'sys/class/iscsi_connection', 'sys/class/iscsi_host', 'sys/devices/platform', 'etc/iscsi/nodes']) fs.mkdirSync(join(root, d), { recursive: true });
  return root;
}

export class FakeKernel extends FakeScsiKernel {
  readonly log: ReturnType<typeof createCapturingLogger>;
  readonly targets: FakeTarget[] = [];
  readonly sessions: Session[] = [];
  /** Let block devices appear only after this many scans of their LUN (simulates slow probes). */
  scansBeforeDisk = 1;
  /** LUNs whose disks never appear. */
  readonly deadLuns = new Set<number>();
  private nextSession = 1;
  private nextHost = 2;
  private readonly scanCount = new Map<string, number>();

  constructor() {
    const root = iscsiRoot();
    const executor = new RecordingExecutor();
    const log = createCapturingLogger('debug');
    super({ root, executor, ctx: createHostContext({ executor, hostRoot: root, logger: log.logger, locks: new LockManager(join(root, 'locks'), 10_000) }), removeRoot: () => rmSync(root, { recursive: true, force: true }) });
    this.log = log;
    this.installIscsiadm();
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
    this.write(`${sdir}/target_id`, '0\n'); // iscsi_tcp: one SCSI host per session, target id 0
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
    const l = this.target(s.iqn)!.luns.find((x) => x.lun === lun);
    if (!l) return undefined;
    const { addr, port } = this.split(s.portal);
    return this.addScsiDisk({ parent: s.dir, host: s.host, channel: 0, target: 0, lun, wwid: l.wwid, sizeBytes: () => l.sizeBytes, byPath: `ip-${addr}:${port}-iscsi-${s.iqn}-lun-${lun}`, blockless: !withBlock });
  }

  /** A scan on a session's host: the LUN's disk appears once it has been scanned `scansBeforeDisk` times. */
  protected onScan(host: number, value: string): void {
    const s = this.sessions.find((x) => x.host === host);
    const m = /^(\S+) (\S+) (\S+)$/.exec(value);
    if (!s || !m) return;
    const lun = Number(m[3]);
    const key = `${s.id}:${lun}`;
    const n = (this.scanCount.get(key) ?? 0) + 1;
    this.scanCount.set(key, n);
    if (!this.deadLuns.has(lun)) this.addDisk(s, lun, n >= this.scansBeforeDisk);
  }

  private installIscsiadm(): void {
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
  }

  /** Grow a LUN on the "target": only rescans of its disks make the host see the new size. */
  growLun(iqn: string, lun: number, bytes: number): void {
    this.target(iqn)!.luns.find((x) => x.lun === lun)!.sizeBytes = bytes;
  }
}
