/**
 * The multipath part of `brick host doctor`: is multipathd running, and does its configuration
 * carry the settings documented for hosts that attach Cinder volumes.
 *
 * The settings and where they come from:
 * - `user_friendly_names no`, `skip_kpartx yes`, `find_multipaths yes`: the basic
 *   `multipath.conf` of the Cinder operator's user guide, written by os-brick's maintainers
 *   (openstack-k8s-operators/cinder-operator, `docs/user-guide/cinder.md`, §3.4 Multipathing:
 *   "A basic `multipath.conf` file would be: defaults { user_friendly_names no; recheck_wwid yes;
 *   skip_kpartx yes; find_multipaths yes }"). os-brick's own documentation gives no
 *   `multipath.conf`; kolla-ansible ships the same three lines.
 * - `skip_kpartx yes` in particular: kolla-ansible's release note for os-brick bug 2078973
 *   ("Add `skip_kpartx yes` to multipath.conf `defaults` section to prevent kpartx scanning
 *   multipath devices and unlock `multipathd del map` operation of os-brick for volume detaching
 *   operations"): partition maps that kpartx makes over a guest's partition table hold the map,
 *   so the detach's flush fails.
 * - `user_friendly_names no`: map names are the WWID, the same on every host (os-brick's and
 *   Brick's lookups work either way, by the map's dm uuid, but `mpathN` names differ per host).
 * - `find_multipaths`: `yes`, `smart` and `strict` all work with Brick, which adds the WWID
 *   (`multipath -a`) and the path (`multipathd add path`) itself as os-brick does; `no` (or
 *   `greedy`) makes multipathd claim every SCSI disk, local ones included.
 *
 * Only the `defaults` section is judged; a `devices { device { ... } }` entry may still
 * override a setting for one array model.
 *
 * @module
 */
import type { HostContext } from './context.js';
import { isMultipathdRunning } from './multipath.js';
import { listeningUnixSocket, type DoctorCheck, type DoctorSeverity } from './doctor-types.js';

/** The abstract socket multipathd (or systemd's `multipathd.socket` for it) listens on. */
const MULTIPATHD_SOCKET = '@/org/kernel/linux/storage/multipathd';

/**
 * The `defaults` section of a multipath configuration as `multipathd show config` or
 * `multipath -t` print it (or as `/etc/multipath.conf` holds it): keys to values, surrounding
 * double quotes removed, comments (`#`, `!`) and nested sections skipped. A key given twice keeps
 * the last value (as multipathd reads it). Pure.
 */
export function parseMultipathDefaults(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let depth = 0;
  let inDefaults = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s[#!].*$/, '').replace(/^\s*[#!].*$/, '').trim();
    if (line === '') continue;
    if (line.endsWith('{')) {
      if (depth === 0 && /^defaults\s*\{$/.test(line)) inDefaults = true;
      depth += 1;
      continue;
    }
    if (line === '}') {
      depth = Math.max(0, depth - 1);
      if (depth === 0) inDefaults = false;
      continue;
    }
    if (!inDefaults || depth !== 1) continue;
    const m = /^(\S+)\s+(.+)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim().replace(/^"(.*)"$/, '$1'));
  }
  return out;
}

/** One setting the doctor judges: the accepted values and the line to put in `defaults`. */
interface WantedSetting {
  key: string;
  accepted: readonly string[];
  /** The multipathd default when the key is absent from the printed configuration. */
  fallback: string;
  line: string;
  why: string;
}

const WANTED: readonly WantedSetting[] = [
  {
    key: 'find_multipaths',
    accepted: ['yes', 'on', 'smart', 'strict'],
    fallback: 'strict',
    line: 'find_multipaths yes',
    why: 'with no/greedy multipathd claims every SCSI disk, local disks included',
  },
  {
    key: 'user_friendly_names',
    accepted: ['no', 'off'],
    fallback: 'no',
    line: 'user_friendly_names no',
    why: 'mpathN names differ from host to host; maps named by WWID are the same everywhere',
  },
  {
    key: 'skip_kpartx',
    accepted: ['yes', 'on'],
    fallback: 'no',
    line: 'skip_kpartx yes',
    why: "kpartx maps over a volume's partitions hold the map and make the detach's flush fail (os-brick bug 2078973)",
  },
];

/** How to reach multipathd, and what to run for it. */
export interface MultipathDoctorOptions {
  /** Severity of a problem (error when the host wants multipath for iSCSI or FC attaches). */
  severity: DoctorSeverity;
  /** Timeout of each program, ms. */
  timeoutMs: number;
}

/** True when multipathd runs or its socket listens (systemd's socket activation). */
async function multipathdAnswers(ctx: HostContext): Promise<{ up: boolean; how: string }> {
  if (await isMultipathdRunning(ctx)) return { up: true, how: 'multipathd is running' };
  if (await listeningUnixSocket(ctx, MULTIPATHD_SOCKET)) return { up: true, how: 'multipathd.socket listens (socket-activated)' };
  return { up: false, how: 'multipathd is not running and nothing listens on its socket' };
}

/** The configuration multipathd uses (`multipathd show config`), or what `multipath -t` reads when it is down. */
async function readConfig(ctx: HostContext, up: boolean, timeoutMs: number): Promise<{ text?: string; error?: string; source: string }> {
  const argv = up ? ['multipathd', 'show', 'config'] : ['multipath', '-t'];
  try {
    const r = await ctx.executor.run(argv, { timeoutMs, checkExitCode: false });
    if (r.exitCode === 0 && /defaults\s*\{/.test(r.stdout)) return { text: r.stdout, source: argv.join(' ') };
    return { error: `${argv.join(' ')} exited ${String(r.exitCode)}: ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}`, source: argv.join(' ') };
  } catch (err) {
    return { error: `${argv.join(' ')}: ${(err as Error).message}`, source: argv.join(' ') };
  }
}

/**
 * The multipath checks: `multipathd` (running, or socket-activated), then one check per
 * setting of {@link WANTED} from the configuration multipathd uses (`multipathd show config`;
 * `multipath -t` when multipathd is down, which reads the same files). Programs run through
 * `ctx.executor` as root (multipathd's socket is root's). Never throws: a program that cannot
 * run gives a `multipath config` check saying so.
 */
export async function multipathChecks(ctx: HostContext, options: MultipathDoctorOptions): Promise<DoctorCheck[]> {
  const sev = options.severity;
  const daemon = await multipathdAnswers(ctx);
  const checks: DoctorCheck[] = [
    daemon.up
      ? { name: 'multipathd', ok: true, severity: 'info', message: daemon.how, fix: null }
      : {
          name: 'multipathd',
          ok: false,
          severity: sev,
          message: `${daemon.how}: multipath attaches get a single path (and fail with enforce_multipath)`,
          fix: 'systemctl enable --now multipathd (or run: multipathd)',
        },
  ];
  const conf = await readConfig(ctx, daemon.up, options.timeoutMs);
  if (conf.text === undefined) {
    checks.push({ name: 'multipath config', ok: false, severity: 'warning', message: `cannot read the multipath configuration: ${conf.error ?? 'no output'}`, fix: 'install multipath-tools and create /etc/multipath.conf (defaults { user_friendly_names no; find_multipaths yes; skip_kpartx yes })' });
    return checks;
  }
  const defaults = parseMultipathDefaults(conf.text);
  for (const w of WANTED) {
    const value = defaults.get(w.key) ?? w.fallback;
    const good = w.accepted.includes(value.toLowerCase());
    checks.push({
      name: `multipath ${w.key}`,
      ok: good,
      severity: good ? 'info' : 'warning',
      message: good ? `${w.key} ${value} (${conf.source})` : `${w.key} is ${value} (${conf.source}): ${w.why}`,
      fix: good ? null : `in /etc/multipath.conf: defaults { ${w.line} }, then: multipathd reconfigure`,
    });
  }
  return checks;
}
