/**
 * LVM as the RecordingExecutor plays it for the LVM driver's unit tests: one volume group
 * with 4 MiB extents, thick and thin LVs, thick and thin snapshots, reports printed in the
 * `--noheadings --units b --nosuffix --separator |` shape real `vgs`/`lvs` use (two leading
 * spaces, empty fields for what does not apply), and LVM's error texts and exit status 5.
 */
import type { RecordingExecutor } from '../../../src/exec/recording.js';

export interface FakeLv {
  size: number;
  attr: string;
  origin: string;
  pool: string;
  dataPercent: string;
}

const EXTENT = 4 * 2 ** 20;
const GiB = 2 ** 30;

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([bmg])$/i.exec(s);
  if (!m) throw new Error(`fake lvm: bad size ${s}`);
  const n = Number(m[1]);
  const unit = m[2]!.toLowerCase();
  const bytes = unit === 'g' ? n * GiB : unit === 'm' ? n * 2 ** 20 : n;
  return Math.ceil(bytes / EXTENT) * EXTENT;
}

export class FakeLvm {
  readonly lvs = new Map<string, FakeLv>();
  readonly dd: string[][] = [];
  /** Make the nth dd call fail (1-based), to test roll-back. */
  failDdAt = 0;

  constructor(
    readonly vg: string,
    readonly vgSize: number,
  ) {}

  get free(): number {
    let used = 0;
    for (const lv of this.lvs.values()) if (lv.pool === '') used += lv.size;
    return this.vgSize - used;
  }

  private line(name: string, lv: FakeLv): string {
    return `  ${name}|${lv.size}|${lv.attr}|${lv.origin}|${lv.pool}|${lv.dataPercent}`;
  }

  private refreshOrigins(): void {
    for (const [name, lv] of this.lvs) {
      if (lv.pool !== '' || lv.attr[0] === 's' || lv.attr[0] === 't') continue;
      const hasSnap = [...this.lvs.values()].some((x) => x.origin === name && x.pool === '');
      lv.attr = (hasSnap ? 'o' : '-') + lv.attr.slice(1);
    }
  }

  install(exec: RecordingExecutor): void {
    const notFound = (what: string) => ({ exitCode: 5, stderr: `  Failed to find logical volume "${what}"\n` });
    exec.on(['vgs'], (argv) => {
      const name = argv[argv.length - 1];
      if (name !== this.vg) return { exitCode: 5, stderr: `  Volume group "${name}" not found\n  Cannot process volume group ${name}\n` };
      return { stdout: `  ${this.vg}|${this.vgSize}|${this.free}|${this.lvs.size}|Ab12Cd-34Ef-56Gh-78Ij-90Kl-12Mn-34OpQr\n` };
    });
    exec.on(['lvs'], (argv) => {
      const target = argv[argv.length - 1]!;
      if (target === this.vg) return { stdout: [...this.lvs].map(([n, lv]) => this.line(n, lv) + '\n').join('') };
      const [vg, lvName] = target.split('/');
      const lv = vg === this.vg ? this.lvs.get(lvName!) : undefined;
      return lv ? { stdout: this.line(lvName!, lv) + '\n' } : notFound(target);
    });
    exec.on(['lvcreate'], (argv) => {
      if (argv[1] === '-T' && argv[2] === '-L') {
        const [, pool] = argv[4]!.split('/');
        this.lvs.set(pool!, { size: parseSize(argv[3]!), attr: 'twi-aotz--', origin: '', pool: '', dataPercent: '0.00' });
        return {};
      }
      if (argv[1] === '-T' && argv[2] === '-V') {
        const name = argv[5]!;
        const [, pool] = argv[6]!.split('/');
        if (!this.lvs.has(pool!)) return notFound(argv[6]!);
        this.lvs.set(name, { size: parseSize(argv[3]!), attr: 'Vwi-a-tz--', origin: '', pool: pool!, dataPercent: '0.00' });
        return {};
      }
      if (argv[1] === '--name' && argv[3] === '--snapshot') {
        const name = argv[2]!;
        const [, src] = argv[4]!.split('/');
        const s = this.lvs.get(src!);
        if (!s) return notFound(argv[4]!);
        if (this.lvs.has(name)) return { exitCode: 5, stderr: `  Logical Volume "${name}" already exists in volume group "${this.vg}"\n` };
        if (s.pool !== '') this.lvs.set(name, { size: s.size, attr: 'Vwi---tz-k', origin: src!, pool: s.pool, dataPercent: '' });
        else {
          const size = parseSize(argv[argv.indexOf('-L') + 1]!);
          if (size > this.free) return { exitCode: 5, stderr: '  Insufficient free space\n' };
          this.lvs.set(name, { size, attr: 'swi-a-s---', origin: src!, pool: '', dataPercent: '0.00' });
          this.refreshOrigins();
        }
        return {};
      }
      if (argv[1] === '-n') {
        const size = parseSize(argv[argv.indexOf('-L') + 1]!);
        if (size > this.free) return { exitCode: 5, stderr: `  Volume group "${this.vg}" has insufficient free space\n` };
        this.lvs.set(argv[2]!, { size, attr: '-wi-a-----', origin: '', pool: '', dataPercent: '' });
        return {};
      }
      return { exitCode: 3, stderr: `fake lvm: unexpected lvcreate ${argv.join(' ')}` };
    });
    exec.on(['lvchange'], (argv) => {
      const [, name] = argv[argv.length - 1]!.split('/');
      const lv = this.lvs.get(name!);
      if (!lv) return notFound(argv[argv.length - 1]!);
      const a = lv.attr.split('');
      a[4] = argv[2] === 'y' ? 'a' : '-';
      if (argv.includes('-k') && argv[argv.indexOf('-k') + 1] === 'n') a[9] = '-';
      lv.attr = a.join('');
      return {};
    });
    exec.on(['lvremove'], (argv) => {
      const [, name] = argv[argv.length - 1]!.split('/');
      if (!this.lvs.delete(name!)) return notFound(argv[argv.length - 1]!);
      this.refreshOrigins();
      return {};
    });
    exec.on(['lvextend'], (argv) => {
      const [, name] = argv[argv.length - 1]!.split('/');
      const lv = this.lvs.get(name!);
      if (!lv) return notFound(argv[argv.length - 1]!);
      lv.size = parseSize(argv[2]!);
      return {};
    });
    exec.on(['lvrename'], (argv) => {
      const lv = this.lvs.get(argv[2]!);
      if (!lv) return notFound(`${argv[1]}/${argv[2]}`);
      this.lvs.delete(argv[2]!);
      this.lvs.set(argv[3]!, lv);
      return {};
    });
    exec.on(['dd'], (argv) => {
      this.dd.push(argv);
      if (this.failDdAt > 0 && this.dd.length === this.failDdAt) return { exitCode: 1, stderr: 'dd: error writing: Input/output error\n' };
      return { stderr: '1024+0 records in\n1024+0 records out\n' };
    });
    exec.on(['udevadm', 'settle'], {});
  }
}
