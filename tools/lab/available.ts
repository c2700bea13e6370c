/**
 * Whether the lab can run on this host, and with what: QEMU, a kernel with its modules, a
 * static busybox, bash. Cheap checks only (files and PATH); no process is started, except by
 * {@link qemuVersion}.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { findKernel, isBuiltin, moduleFiles, type LabKernel } from './kernel.js';
import { findBusybox, INITRAMFS_MODULES } from './initramfs.js';

/** What {@link labAvailable} found. */
export interface LabAvailability {
  /** True when a VM can be booted: qemu, a kernel with its modules, a static busybox. */
  ok: boolean;
  /** Human-readable reasons when `ok` is false (one per missing piece), naming the Debian package. */
  problems: string[];
  /** The kernel that would be booted, when one was found. */
  kernel?: LabKernel;
  /** The QEMU binary path, when found. */
  qemu?: string;
}

/** The first executable named `name` in the directories of env `PATH`, or undefined. */
function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** What keeps `kernel` from booting the lab: an image this user cannot read, initramfs modules it lacks. */
function kernelProblems(kernel: LabKernel): string[] {
  const problems: string[] = [];
  try {
    fs.accessSync(kernel.image, fs.constants.R_OK);
  } catch {
    problems.push(`${kernel.image} is not readable by this user (run as root)`);
  }
  for (const m of INITRAMFS_MODULES) {
    if (moduleFiles(kernel, m).length === 0 && !isBuiltin(kernel, m)) problems.push(`kernel module ${m} not found for ${kernel.version}`);
  }
  return problems;
}

/**
 * Whether a lab VM can be booted on this machine: `qemu-system-x86_64` on PATH (Debian
 * `qemu-system-x86`), a kernel image with its modules (`linux-image-amd64`), a statically
 * linked busybox (`busybox-static`), and a kernel image readable by this user. The lead's test
 * orchestrator calls this to decide whether the lab suite runs. Cheap: no process is started.
 */
export function labAvailable(): LabAvailability {
  const problems: string[] = [];
  const qemu = findOnPath('qemu-system-x86_64');
  if (!qemu) problems.push('qemu-system-x86_64 not found on PATH (Debian package qemu-system-x86)');
  const kernel = findKernel();
  if (!kernel) problems.push('no kernel with modules found (/boot/vmlinuz-<v> + /lib/modules/<v>; Debian package linux-image-amd64)');
  else problems.push(...kernelProblems(kernel));
  if (!findBusybox()) problems.push('no statically linked busybox at /bin/busybox (Debian package busybox-static)');
  if (!findOnPath('bash')) problems.push('bash not found on PATH');
  const result: LabAvailability = { ok: problems.length === 0, problems };
  if (kernel) result.kernel = kernel;
  if (qemu) result.qemu = qemu;
  return result;
}

/** Which QEMU would be used and its version line (for reports); undefined when not installed. */
export function qemuVersion(): string | undefined {
  const q = findOnPath('qemu-system-x86_64');
  if (!q) return undefined;
  const r = spawnSync(q, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.stdout.split('\n')[0];
}
