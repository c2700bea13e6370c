/**
 * `brick host doctor`: check this host before its first attach, and say for each problem how to
 * fix it (issue #16). Every check reads files under `ctx.hostRoot` or runs a program through
 * `ctx.executor`, so unit tests run it against a fixture tree and a recording executor; nothing
 * is started, created, loaded or changed.
 *
 * The checks, in order:
 * - `iscsid`: running (its pid file names a live `iscsid`), or its socket listening
 *   (`@ISCSIADM_ABSTRACT_NAMESPACE` in `/proc/net/unix`, systemd's `iscsid.socket`): iscsiadm
 *   otherwise fails with "can't connect to iscsid" and no login works.
 * - `iscsi initiator name`: `InitiatorName=` in `/etc/iscsi/initiatorname.iscsi` (os-brick's
 *   `get_initiator`), the connector property `initiator` a backend maps to.
 * - `iscsi manual scan`: iscsiadm knows `node.session.scan`. os-brick decides this by searching
 *   the iscsiadm program for that string (`os_brick/initiator/utils.py`, `check_manual_scan`:
 *   `grep -F node.session.scan /sbin/iscsiadm`); the doctor does the same by reading the
 *   program under the host root, and also reports `iscsiadm --version` (upstream open-iscsi has
 *   the key from 2.0.874; RHEL's 6.2.0.873 builds carry it backported, hence the search).
 *   Brick's iSCSI connector always writes `node.session.scan = manual` into the node records it
 *   makes (`initiator/connectors/iscsi/portal-queue.ts`); an iscsiadm without the key ignores
 *   it, and every LUN of the target is then scanned in automatically.
 * - the multipath checks of `doctor-multipath.ts` (multipathd, `find_multipaths`,
 *   `user_friendly_names`, `skip_kpartx`);
 * - `udev`: `/run/udev/control` exists, else `udevadm control --ping` answers;
 * - `nvme hostnqn`, `nvme hostid`: `/etc/nvme/hostnqn` and `/etc/nvme/hostid` (os-brick's
 *   connector properties `nqn` and `nvme_hostid`);
 * - `module <name>`: loaded (`/sys/module/<name>`) or loadable (`modprobe -n -v <name>`):
 *   iscsi_tcp, dm_multipath, nvme_fabrics, nvme_tcp, loop, scsi_transport_fc;
 * - `lock_path`, `data_dir`: the rules of `ensurePrivateDirectory` (`private-dir.ts`), judged
 *   without creating anything ({@link privateDirectoryProblem}).
 *
 * A failed check is an `error` when an attach over a protocol this host uses would fail, a
 * `warning` when attaches work but not as they should (or only an unused protocol would fail).
 *
 * @module
 */
import { InvalidInputError, ProcessExecutionError } from '../errors.js';
import type { HostContext } from './context.js';
import { multipathChecks } from './doctor-multipath.js';
import { daemonRunning, listeningUnixSocket, type DoctorCheck, type DoctorReport, type DoctorSeverity } from './doctor-types.js';
import { privateDirectoryProblem } from './private-dir.js';
import { entryExists, readAttr, readBinaryAttr, readFilePrivileged } from './sysfs.js';

export * from './doctor-types.js';
export { parseMultipathDefaults, multipathChecks, type MultipathDoctorOptions } from './doctor-multipath.js';

/** The protocols whose host requirements the doctor knows (os-brick's connector protocol names). */
export const DOCTOR_PROTOCOLS = ['ISCSI', 'NVMEOF', 'FIBRE_CHANNEL'] as const;
/** A protocol of {@link DOCTOR_PROTOCOLS}. */
export type DoctorProtocol = (typeof DOCTOR_PROTOCOLS)[number];

/** Options of {@link runHostDoctor}. */
export interface HostDoctorOptions {
  /**
   * The protocols this host attaches with: what they need is an `error` when missing, what only
   * other protocols need a `warning`. Default `ISCSI` and `NVMEOF`.
   */
  protocols?: readonly string[];
  /** The host attaches with multipath (multipathd and dm_multipath problems are errors). Default true. */
  multipath?: boolean;
  /** The file backend's loop devices are used here (a missing `loop` module is an error). Default true. */
  loopDevices?: boolean;
  /** Brick's directories to judge, by configuration key: `{ lock_path: '/run/brick/locks', data_dir: '/var/lib/brick' }`. */
  directories?: Readonly<Record<string, string>>;
  /** The user Brick runs as, for the directory rules. Default the effective uid of this process. */
  uid?: number;
  /** Timeout of each program the doctor runs, ms. Default 10 000. */
  timeoutMs?: number;
}

const INITIATOR_FILE = '/etc/iscsi/initiatorname.iscsi';
const IQN_RE = /^(iqn\.\d{4}-\d{2}\.[^\s]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?)$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const GENERATE_INITIATOR = `echo "InitiatorName=$(iscsi-iname)" > ${INITIATOR_FILE} && systemctl restart iscsid`;

function passed(name: string, message: string): DoctorCheck {
  return { name, ok: true, severity: 'info', message, fix: null };
}

function failed(name: string, severity: DoctorSeverity, message: string, fix: string): DoctorCheck {
  return { name, ok: false, severity, message, fix };
}

/** iscsid running, or its socket listening. */
async function iscsidCheck(ctx: HostContext, sev: DoctorSeverity): Promise<DoctorCheck> {
  if (await daemonRunning(ctx, 'iscsid', '/run/iscsid.pid')) return passed('iscsid', 'iscsid is running');
  if (await listeningUnixSocket(ctx, '@ISCSIADM_ABSTRACT_NAMESPACE')) return passed('iscsid', 'iscsid.socket listens (iscsid starts at the first iscsiadm call)');
  return failed('iscsid', sev, "iscsid is not running and nothing listens on its socket: iscsiadm fails with \"can't connect to iscsid\" and no iSCSI login works", 'systemctl enable --now iscsid.socket iscsid (or run: iscsid)');
}

/** `InitiatorName=` set in /etc/iscsi/initiatorname.iscsi. */
async function initiatorNameCheck(ctx: HostContext, sev: DoctorSeverity): Promise<DoctorCheck> {
  const name = 'iscsi initiator name';
  const text = await readFilePrivileged(ctx, INITIATOR_FILE);
  if (text === undefined) return failed(name, sev, `${INITIATOR_FILE} is missing (or unreadable): this host has no iSCSI initiator name for a backend to map volumes to`, GENERATE_INITIATOR);
  const m = /^\s*InitiatorName\s*=\s*(\S+)/m.exec(text);
  if (m && IQN_RE.test(m[1]!)) return passed(name, `InitiatorName=${m[1]!}`);
  if (m) return failed(name, sev, `${INITIATOR_FILE} holds InitiatorName=${m[1]!}, which is not an iqn., eui. or naa. name`, GENERATE_INITIATOR);
  if (/^\s*GenerateName\s*=\s*yes/m.test(text)) return failed(name, sev, `${INITIATOR_FILE} holds GenerateName=yes: no name has been generated yet (the distribution's iscsid unit generates it at its first start)`, GENERATE_INITIATOR);
  return failed(name, sev, `${INITIATOR_FILE} has no InitiatorName= line`, GENERATE_INITIATOR);
}

/** `iscsiadm --version`: the version text, `missing` when the program is not there, or undefined. */
async function iscsiadmVersion(ctx: HostContext, timeoutMs: number): Promise<string | 'missing' | undefined> {
  try {
    const r = await ctx.executor.run(['iscsiadm', '--version'], { root: false, timeoutMs, checkExitCode: false });
    if (r.exitCode === 127) return 'missing';
    return /(\d+\.\d+\.\d+)/.exec(r.stdout)?.[1];
  } catch (err) {
    return err instanceof ProcessExecutionError && err.exitCode === 127 ? 'missing' : undefined;
  }
}

/** True when version text `v` (`2.1.8`) is at least 2.0.874. */
function knowsManualScan(v: string): boolean {
  const [a = 0, b = 0, c = 0] = v.split('.').map(Number);
  return a > 2 || (a === 2 && (b > 0 || c >= 874));
}

/** iscsiadm installed and knowing `node.session.scan` (see the module notes). */
async function manualScanCheck(ctx: HostContext, sev: DoctorSeverity, timeoutMs: number): Promise<DoctorCheck> {
  const name = 'iscsi manual scan';
  const version = await iscsiadmVersion(ctx, timeoutMs);
  if (version === 'missing') return failed(name, sev, 'iscsiadm is not installed: no iSCSI attach can work', 'apt-get install open-iscsi (Debian, Ubuntu) or dnf install iscsi-initiator-utils (RHEL, Fedora)');
  let found: boolean | undefined;
  for (const p of ['/usr/sbin/iscsiadm', '/sbin/iscsiadm', '/usr/bin/iscsiadm', '/bin/iscsiadm']) {
    const program = await readBinaryAttr(ctx, p);
    if (program) {
      found = program.includes('node.session.scan');
      break;
    }
  }
  const shown = version ? `iscsiadm ${version}` : 'iscsiadm';
  if (found === true || (found === undefined && version !== undefined && knowsManualScan(version))) return passed(name, `${shown} supports node.session.scan = manual`);
  const fix = 'upgrade open-iscsi to 2.0.874 or later (RHEL: iscsi-initiator-utils 6.2.0.873-35 or later)';
  if (found === false) return failed(name, 'warning', `${shown} does not know node.session.scan: logins scan every LUN of the target in, not only the volume's`, fix);
  return failed(name, 'warning', `cannot tell whether ${shown} supports node.session.scan (program not found under /usr/sbin, /sbin, /usr/bin, /bin)`, fix);
}

/** udev running: its control socket, else `udevadm control --ping`. */
async function udevCheck(ctx: HostContext, timeoutMs: number): Promise<DoctorCheck> {
  if (await entryExists(ctx, '/run/udev/control')) return passed('udev', 'systemd-udevd is running (/run/udev/control)');
  try {
    const r = await ctx.executor.run(['udevadm', 'control', '--ping'], { timeoutMs, checkExitCode: false });
    if (r.exitCode === 0) return passed('udev', 'udevadm control --ping answers');
  } catch {
    // udevadm missing or hung: udev is not usable either way
  }
  return failed('udev', 'error', 'udev is not running: /dev/disk/by-id links and device-mapper udev events never come, so attaches time out', 'systemctl start systemd-udevd');
}

/** /etc/nvme/hostnqn and /etc/nvme/hostid present and well formed. */
async function nvmeIdentityChecks(ctx: HostContext, sev: DoctorSeverity): Promise<DoctorCheck[]> {
  const also = ' (or run `brick connector properties` as root, which creates both as os-brick does)';
  const nqn = await readAttr(ctx, '/etc/nvme/hostnqn');
  const id = await readAttr(ctx, '/etc/nvme/hostid');
  return [
    nqn && nqn.startsWith('nqn.')
      ? passed('nvme hostnqn', nqn)
      : failed('nvme hostnqn', sev, nqn ? `/etc/nvme/hostnqn holds ${JSON.stringify(nqn)}, not an NQN` : '/etc/nvme/hostnqn is missing: this host has no NVMe host NQN for a backend to map namespaces to', `mkdir -p /etc/nvme && nvme gen-hostnqn > /etc/nvme/hostnqn${also}`),
    id && UUID_RE.test(id)
      ? passed('nvme hostid', id)
      : failed('nvme hostid', sev, id ? `/etc/nvme/hostid holds ${JSON.stringify(id)}, not a UUID` : '/etc/nvme/hostid is missing: nvme connect would use a new host id each time', `mkdir -p /etc/nvme && uuidgen > /etc/nvme/hostid${also}`),
  ];
}

/** A kernel module and what fails without it. */
interface ModuleNeed {
  module: string;
  severity: DoctorSeverity;
  usedBy: string;
}

/** `module` loaded, or loadable by `modprobe -n -v`. */
async function moduleCheck(ctx: HostContext, need: ModuleNeed, timeoutMs: number): Promise<DoctorCheck> {
  const name = `module ${need.module}`;
  if (await entryExists(ctx, `/sys/module/${need.module}`)) return passed(name, 'loaded');
  try {
    const r = await ctx.executor.run(['modprobe', '-n', '-v', need.module], { root: false, timeoutMs, checkExitCode: false });
    if (r.exitCode === 0) return passed(name, `not loaded; loadable (${r.stdout.trim().split('\n')[0] || 'modprobe -n found it'})`);
    if (r.exitCode === 127) throw new Error('modprobe is not installed');
    const why = (r.stderr || r.stdout).trim().split('\n')[0] ?? '';
    return failed(name, need.severity, `not loaded and not loadable (${why}): ${need.usedBy} fail`, `install the kernel modules package of the running kernel (e.g. linux-modules-extra-$(uname -r)), then: modprobe ${need.module}`);
  } catch (err) {
    return failed(name, need.severity === 'error' ? 'warning' : need.severity, `not loaded, and modprobe could not tell whether it loads: ${(err as Error).message}`, `install kmod, then: modprobe ${need.module}`);
  }
}

/** Brick's private directories, judged without creating anything. */
function directoryChecks(directories: Readonly<Record<string, string>>, uid: number): DoctorCheck[] {
  return Object.entries(directories).map(([field, dir]) => {
    const v = privateDirectoryProblem(dir, uid, field);
    if (v.problem) return failed(field, 'error', `${v.problem}: brick refuses to use it, so every command that attaches fails`, `give ${field} a directory of its own: mkdir -p -m 0700 ${dir} && chown ${uid} ${dir}, below parents only root or uid ${uid} can write to (or set ${field} in the configuration)`);
    return passed(field, v.missing ? `${dir} does not exist yet; brick creates it (mode 0700) at first use` : `${dir} is a private directory of uid ${uid}`);
  });
}

/** The protocols asked for, checked. @throws {@link InvalidInputError} (field `protocols`) for an unknown protocol */
function protocolsOf(options: HostDoctorOptions): Set<DoctorProtocol> {
  const given = (options.protocols ?? ['ISCSI', 'NVMEOF']).map((p) => p.toUpperCase());
  for (const p of given) {
    if (!(DOCTOR_PROTOCOLS as readonly string[]).includes(p)) throw new InvalidInputError('protocols', `${JSON.stringify(p)} is not one of ${DOCTOR_PROTOCOLS.join(', ')}`);
  }
  return new Set(given as DoctorProtocol[]);
}

/**
 * Check this host for attaching volumes (see the module notes for each check). Reads files
 * under `ctx.hostRoot` and runs `iscsiadm --version`, `multipathd show config` (or `multipath
 * -t`), `modprobe -n -v` and, without `/run/udev/control`, `udevadm control --ping` through
 * `ctx.executor`; changes nothing.
 * @returns every check, and `ok` false when any failed with severity `error` (an attach would fail)
 * @throws {@link InvalidInputError} (field `protocols`) for a protocol not in {@link DOCTOR_PROTOCOLS}, before anything is read
 */
export async function runHostDoctor(ctx: HostContext, options: HostDoctorOptions = {}): Promise<DoctorReport> {
  const protocols = protocolsOf(options);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const multipath = options.multipath ?? true;
  const need = (p: DoctorProtocol): DoctorSeverity => (protocols.has(p) ? 'error' : 'warning');
  const scsiMultipath: DoctorSeverity = multipath && (protocols.has('ISCSI') || protocols.has('FIBRE_CHANNEL')) ? 'error' : 'warning';
  const checks: DoctorCheck[] = [await iscsidCheck(ctx, need('ISCSI')), await initiatorNameCheck(ctx, need('ISCSI')), await manualScanCheck(ctx, need('ISCSI'), timeoutMs)];
  checks.push(...(await multipathChecks(ctx, { severity: scsiMultipath, timeoutMs })));
  checks.push(await udevCheck(ctx, timeoutMs));
  checks.push(...(await nvmeIdentityChecks(ctx, need('NVMEOF'))));
  const modules: ModuleNeed[] = [
    { module: 'iscsi_tcp', severity: need('ISCSI'), usedBy: 'iSCSI attaches' },
    { module: 'dm_multipath', severity: scsiMultipath, usedBy: 'multipath maps' },
    { module: 'nvme_fabrics', severity: need('NVMEOF'), usedBy: 'NVMe-oF attaches' },
    { module: 'nvme_tcp', severity: need('NVMEOF'), usedBy: 'NVMe/TCP attaches' },
    { module: 'loop', severity: (options.loopDevices ?? true) ? 'error' : 'warning', usedBy: "the file backend's loop devices" },
    { module: 'scsi_transport_fc', severity: protocols.has('FIBRE_CHANNEL') ? 'error' : 'info', usedBy: 'Fibre Channel attaches' },
  ];
  for (const m of modules) checks.push(await moduleCheck(ctx, m, timeoutMs));
  checks.push(...directoryChecks(options.directories ?? {}, options.uid ?? process.geteuid?.() ?? 0));
  return { ok: !checks.some((c) => !c.ok && c.severity === 'error'), checks };
}
