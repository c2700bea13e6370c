/**
 * LVM volume-group operations for the LVM driver: Cinder's `cinder/brick/local_dev/lvm.py`
 * (`LVM` class) in TypeScript, every command an argv through the Executor with a timeout.
 *
 * Reports are read with `vgs`/`lvs --noheadings --units b --nosuffix --separator |` so sizes
 * are exact bytes (Cinder reads GiB floats with `--unit=g`). Sizes given to `lvcreate` /
 * `lvextend` are GiB integers (`<n>g`) as Cinder's `_sizestr`, or bytes (`<n>b`) where the
 * exact size of another LV is meant.
 *
 * @module
 */
import { BackendError, InvalidStateError, NotFoundError, ProcessExecutionError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';

const SEP = '|';
const REPORT = ['--noheadings', '--units', 'b', '--nosuffix', '--separator', SEP];
/** The `lvs` columns {@link parseLvs} reads. */
const LV_FIELDS = 'lv_name,lv_size,lv_attr,origin,pool_lv,data_percent';

/** One volume group as `vgs` reports it (bytes). */
export interface VgInfo {
  name: string;
  sizeBytes: number;
  freeBytes: number;
  lvCount: number;
  uuid: string;
}

/** One logical volume as `lvs` reports it (bytes). */
export interface LvInfo {
  name: string;
  sizeBytes: number;
  /** `lv_attr`, e.g. `-wi-a-----`, `owi-aos---`, `swi-a-s---`, `Vwi-a-tz--`, `twi-aotz--`. */
  attr: string;
  /** Origin LV of a snapshot ('' when none). */
  origin: string;
  /** Thin pool of a thin LV ('' when none). */
  pool: string;
  /** Data use of a thin pool or snapshot in percent (NaN when not applicable). */
  dataPercent: number;
}

function num(field: string | undefined): number {
  const s = (field ?? '').trim();
  if (s === '') return NaN;
  return Number(s.replace(/B$/i, ''));
}

/** Parse `vgs --noheadings --units b --nosuffix --separator | -o vg_name,vg_size,vg_free,lv_count,vg_uuid`. Pure. */
export function parseVgs(text: string): VgInfo[] {
  const out: VgInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.trim().split(SEP);
    if (f.length < 5) continue;
    out.push({ name: f[0]!.trim(), sizeBytes: num(f[1]), freeBytes: num(f[2]), lvCount: num(f[3]), uuid: f[4]!.trim() });
  }
  return out;
}

/** Parse `lvs --noheadings --units b --nosuffix --separator | -o lv_name,lv_size,lv_attr,origin,pool_lv,data_percent`. Pure. */
export function parseLvs(text: string): LvInfo[] {
  const out: LvInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.trim().split(SEP);
    if (f.length < 6) continue;
    out.push({ name: f[0]!.trim(), sizeBytes: num(f[1]), attr: f[2]!.trim(), origin: f[3]!.trim(), pool: f[4]!.trim(), dataPercent: num(f[5]) });
  }
  return out;
}

/**
 * Whether LV `name` in the VG report `all` is the origin of a snapshot: a thick origin's `o`/`O`
 * attribute, or any LV (a thin snapshot) whose origin it is (Cinder's `LVM.lv_has_snapshot`).
 * False when `name` is not in the report. Pure.
 */
export function hasSnapshotsIn(all: readonly LvInfo[], name: string): boolean {
  const me = all.find((l) => l.name === name);
  if (!me) return false;
  if (me.attr[0] === 'o' || me.attr[0] === 'O') return true;
  return all.some((l) => l.origin === name);
}

/** LVM reserves LV names starting with `snapshot`: Cinder stores them as `_snapshot-...` (`_escape_snapshot`). */
export function escapeSnapshotName(name: string): string {
  return name.startsWith('snapshot') ? `_${name}` : name;
}

/** `/dev/mapper` name of an LV: dashes doubled in VG and LV names (Cinder's `local_path`). */
export function mapperName(vg: string, lv: string): string {
  return `${vg.replace(/-/g, '--')}-${lv.replace(/-/g, '--')}`;
}

/** A valid LVM VG or LV name (LVM's rules: [A-Za-z0-9+_.-], not starting with '-', not '.' or '..'). */
export function isValidLvmName(name: string): boolean {
  return /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/.test(name) && name !== '.' && name !== '..' && name.length <= 127;
}

/** Options for {@link VolumeGroup}. */
export interface VolumeGroupOptions {
  /** Timeout for quick LVM commands, ms. Default 60 000. */
  timeoutMs?: number;
}

/** Operations on one volume group. */
export class VolumeGroup {
  private readonly timeoutMs: number;

  constructor(
    private readonly ctx: HostContext,
    readonly name: string,
    options: VolumeGroupOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  private run(argv: string[], checkExitCode: boolean | number[] = true) {
    return this.ctx.executor.run(argv, { timeoutMs: this.timeoutMs, checkExitCode });
  }

  /**
   * The VG's report, or undefined when it does not exist.
   * @throws {@link ProcessExecutionError} when `vgs` fails for another reason (e.g. without privilege)
   * @throws {@link ProcessTimeoutError} when `vgs` does not finish within the group's timeout
   */
  async info(): Promise<VgInfo | undefined> {
    const r = await this.run(['vgs', ...REPORT, '-o', 'vg_name,vg_size,vg_free,lv_count,vg_uuid', this.name], false);
    if (r.exitCode !== 0) {
      if (/not found|Volume group .* not found|No such/i.test(r.stderr) || r.exitCode === 5) return undefined;
      throw new ProcessExecutionError(['vgs', this.name], r.exitCode, r.stdout, r.stderr);
    }
    return parseVgs(r.stdout).find((v) => v.name === this.name);
  }

  /** Every LV of the VG. */
  async lvs(): Promise<LvInfo[]> {
    const { stdout } = await this.run(['lvs', ...REPORT, '-o', LV_FIELDS, this.name]);
    return parseLvs(stdout);
  }

  /**
   * Every LV of the VG from one `lvs` report, or undefined when the VG does not exist. One report
   * answers what {@link lv} and {@link hasSnapshots} would ask in two (each LVM command costs
   * a metadata scan: about 0.6 s under emulation in the lab).
   * @throws {@link ProcessExecutionError} when `lvs` fails for another reason than a missing VG (e.g. without privilege)
   * @throws {@link ProcessTimeoutError} when `lvs` does not finish within the group's timeout
   */
  lvsIfPresent(): Promise<LvInfo[] | undefined> {
    return this.lvsReport(this.name, /not found|No such/i);
  }

  /** The `lvs` report of `target` (`<vg>` or `<vg>/<lv>`), or undefined when `lvs` says (by `missing` or exit status 5) it does not exist. */
  private async lvsReport(target: string, missing: RegExp): Promise<LvInfo[] | undefined> {
    const r = await this.run(['lvs', ...REPORT, '-o', LV_FIELDS, target], false);
    if (r.exitCode !== 0) {
      if (missing.test(r.stderr) || r.exitCode === 5) return undefined;
      throw new ProcessExecutionError(['lvs', target], r.exitCode, r.stdout, r.stderr);
    }
    return parseLvs(r.stdout);
  }

  /**
   * One LV, or undefined when it does not exist.
   * @throws {@link ProcessExecutionError} when `lvs` fails for another reason than a missing LV or VG (e.g. without privilege)
   * @throws {@link ProcessTimeoutError} when `lvs` does not finish within the group's timeout
   */
  async lv(name: string): Promise<LvInfo | undefined> {
    return (await this.lvsReport(`${this.name}/${name}`, /not found|Failed to find/i))?.find((l) => l.name === name);
  }

  /** `/dev/<vg>/<lv>`. */
  devicePath(lv: string): string {
    return `/dev/${this.name}/${lv}`;
  }

  /**
   * Create a thin pool using 95% of the VG's free space (Cinder's `_calculate_thin_pool_size`),
   * rounded down to whole MiB.
   * @throws {@link NotFoundError} (field `volume_group`) when the VG does not exist
   * @throws {@link BackendError} (field `volume_group`) when the VG has no free space
   */
  async createThinPool(pool: string): Promise<void> {
    const vg = await this.info();
    if (!vg) throw new NotFoundError('volume group', this.name, { field: 'volume_group' });
    const mib = Math.floor((vg.freeBytes * 0.95) / 2 ** 20);
    if (mib < 8) throw new BackendError(`volume group ${this.name} has no free space for thin pool ${pool}`, { field: 'volume_group' });
    await this.run(['lvcreate', '-T', '-L', `${mib}m`, `${this.name}/${pool}`]);
  }

  /** Thick LV of `sizeGiB` (`lvcreate -n NAME VG -L <n>g`), or thin (`lvcreate -T -V <n>g -n NAME VG/POOL`). */
  async createVolume(name: string, sizeGiB: number, thinPool?: string): Promise<void> {
    if (thinPool) await this.run(['lvcreate', '-T', '-V', `${sizeGiB}g`, '-n', name, `${this.name}/${thinPool}`]);
    else await this.run(['lvcreate', '-n', name, this.name, '-L', `${sizeGiB}g`]);
  }

  /**
   * Snapshot `source` as `name`: a thin snapshot (no size) when `thin`, else a thick COW
   * snapshot as large as the origin (Cinder's `create_lv_snapshot`).
   * @throws {@link NotFoundError} when the source LV does not exist
   */
  async createSnapshot(name: string, source: string, thin: boolean): Promise<void> {
    const src = await this.lv(source);
    if (!src) throw new NotFoundError('logical volume', `${this.name}/${source}`);
    const argv = ['lvcreate', '--name', name, '--snapshot', `${this.name}/${source}`];
    if (!thin) argv.push('-L', `${src.sizeBytes}b`);
    await this.run(argv);
  }

  /**
   * Activate an LV (`lvchange -a y --yes`); for thin snapshots `-K` ignores the
   * activation-skip flag, `permanent` clears it (`-k n`), as Cinder's `activate_lv`.
   */
  async activate(name: string, options: { ignoreSkip?: boolean; permanent?: boolean } = {}): Promise<void> {
    const argv = ['lvchange', '-a', 'y', '--yes'];
    if (options.permanent) argv.push('-k', 'n');
    else if (options.ignoreSkip) argv.push('-K');
    argv.push(`${this.name}/${name}`);
    await this.run(argv);
  }

  /** Deactivate an LV (`lvchange -a n`). */
  async deactivate(name: string): Promise<void> {
    await this.run(['lvchange', '-a', 'n', `${this.name}/${name}`]);
  }

  /**
   * Remove an LV (`lvremove -f` with `retry_deactivation`), retrying once after `udevadm settle`
   * with `ignore_suspended_devices`, as Cinder's `LVM.delete`. A missing LV is not an error.
   * @throws {@link ProcessExecutionError} when the second `lvremove` fails too (e.g. the LV is open)
   * @throws {@link ProcessTimeoutError} when a command does not finish within the group's timeout
   */
  async remove(name: string): Promise<void> {
    const base = 'activation { retry_deactivation = 1 }';
    const first = await this.run(['lvremove', '--config', base, '-f', `${this.name}/${name}`], false);
    if (first.exitCode === 0) return;
    if (/not found|Failed to find/i.test(first.stderr)) return;
    await this.run(['udevadm', 'settle', '--timeout=30'], false);
    const second = await this.run(['lvremove', '--config', `${base} devices { ignore_suspended_devices = 1 }`, '-f', `${this.name}/${name}`], false);
    if (second.exitCode === 0 || /not found|Failed to find/i.test(second.stderr)) return;
    throw new ProcessExecutionError(['lvremove', '-f', `${this.name}/${name}`], second.exitCode, second.stdout, second.stderr);
  }

  /** True when `name` is the origin of a snapshot (thick `o`/`O` attr, or any thin LV whose origin it is). */
  async hasSnapshots(name: string): Promise<boolean> {
    return hasSnapshotsIn(await this.lvs(), name);
  }

  /** Grow an LV to `sizeGiB` (`lvextend -L <n>g`). */
  async extend(name: string, sizeGiB: number): Promise<void> {
    await this.run(['lvextend', '-L', `${sizeGiB}g`, `${this.name}/${name}`]);
  }

  /** Rename an LV (`lvrename VG OLD NEW`). */
  async rename(from: string, to: string): Promise<void> {
    await this.run(['lvrename', this.name, from, to]);
  }

  /** @throws {@link InvalidStateError} when the LV is open (in use) */
  async assertNotOpen(name: string): Promise<void> {
    const lv = await this.lv(name);
    if (lv && lv.attr[5] === 'o') throw new InvalidStateError(`logical volume ${this.name}/${name} is open (in use)`);
  }
}
