/**
 * The per-run half of the guest's boot: the stage-2 script that the initramfs `switch_root`s
 * into, and the control files it reads (the command's argv, environment and working directory,
 * all NUL-separated or plain text, so no shell string is ever built from them). They are
 * written to the run's control directory on the results share (`/out/.lab` in the guest), where
 * the guest also leaves `booted`, `stdout`, `stderr` and `rc` for the host to poll.
 *
 * @module
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CONTROL } from './initramfs.js';

/**
 * The stage-2 script, run by bash as PID 1 in the switched root. It prepares what the storage
 * tools expect (tmpfs `/run` and `/tmp`, `/run/lock`, configfs, `127.0.0.2` on `lo`), then runs
 * the argv from `argv` (NUL-separated) with the environment from `env` (NUL-separated
 * `NAME=value`) in the directory named by `cwd`, and records its exit status in `rc`.
 */
function stage2Script(): string {
  const c = `/out/${CONTROL}`;
  return `# brick lab stage 2 (PID 1 in the guest); written by tools/lab/stage2.ts for each run
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# A working directory under /tmp or /run (a checkout there, as CI may make) would vanish under
# the fresh tmpfs mounts below: set it aside first and put it back at the same path after.
workdir="$(cat ${c}/cwd)"
keep=""
case "$workdir" in /tmp/*|/run/*) mkdir -p /.brick-keep && mount --bind "$workdir" /.brick-keep && keep=1 ;; esac
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
if [ -n "$keep" ]; then mkdir -p "$workdir" && mount --move /.brick-keep "$workdir"; fi
mkdir -p /run/lock /run/lvm /run/udev /var/lock /run/multipath
modprobe configfs 2>/dev/null
mount -t configfs none /sys/kernel/config 2>/dev/null
ip link set lo up
ip addr add 127.0.0.2/8 dev lo 2>/dev/null
hostname lab
read -r up _ < /proc/uptime
printf '%s\\n' "$up" > ${c}/booted
echo "brick-lab: stage 2 up after $up s of guest time; running the command" 
mapfile -d '' -t argv < ${c}/argv
mapfile -d '' -t envv < ${c}/env
cd "$(cat ${c}/cwd)" || cd /
env -i "\${envv[@]}" "\${argv[@]}" > ${c}/stdout 2> ${c}/stderr < /dev/null
printf '%s\\n' "$?" > ${c}/rc.tmp
sync
mv ${c}/rc.tmp ${c}/rc
sync
echo o > /proc/sysrq-trigger
sleep 60
`;
}

/** The guest command's environment: a fixed base, then `extra`, then `BRICK_LAB=1` and `LAB_OUT=/out`, which `extra` cannot override. */
function guestEnv(extra: Readonly<Record<string, string>>): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    ...extra,
    BRICK_LAB: '1',
    LAB_OUT: '/out',
  };
}

/**
 * Refuses a command or environment that cannot pass through the NUL-separated control files and env(1).
 * @throws Error when a name is not a shell variable name, a value or an argument holds a NUL byte, or the program name holds `=`
 */
function checkCommand(argv: readonly string[], env: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`runInVm: invalid environment variable name ${JSON.stringify(k)}`);
    if (v.includes('\0')) throw new Error(`runInVm: environment variable ${k} contains a NUL byte`);
  }
  for (const a of argv) if (a.includes('\0')) throw new Error('runInVm: an argument contains a NUL byte');
  if (argv[0]!.includes('=')) throw new Error('runInVm: the program name must not contain "=" (env(1) would read it as an assignment)');
}

/**
 * Writes the control files of one run into `control` (an existing directory): `argv`, `env`,
 * `cwd` and `stage2.sh`.
 * @param argv the guest command; its first element names the program
 * @param extraEnv variables added to the guest's base environment (see {@link guestEnv})
 * @param cwd the guest working directory (a host path; the guest sees the host root at the same paths)
 * @throws Error when the command or environment cannot be passed safely (see {@link checkCommand})
 */
export function writeControlFiles(control: string, argv: readonly string[], extraEnv: Readonly<Record<string, string>>, cwd: string): void {
  const env = guestEnv(extraEnv);
  checkCommand(argv, env);
  fs.writeFileSync(join(control, 'argv'), argv.map((a) => `${a}\0`).join(''));
  fs.writeFileSync(join(control, 'env'), Object.entries(env).map(([k, v]) => `${k}=${v}\0`).join(''));
  fs.writeFileSync(join(control, 'cwd'), cwd);
  fs.writeFileSync(join(control, 'stage2.sh'), stage2Script());
}
