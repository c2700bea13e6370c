/**
 * The kernel the lab boots and its modules: which Debian kernel is installed (image plus module
 * tree), and which module files must be loaded, in order, to get a given module, read from the
 * tree's `modules.dep` and `modules.builtin` as modprobe reads them.
 *
 * @module
 */
import * as fs from 'node:fs';
import { join } from 'node:path';

/** The Debian kernel the lab boots: its version and file paths. */
export interface LabKernel {
  /** Kernel release, e.g. `6.1.0-56-amd64` (the name of its `/lib/modules` directory). */
  version: string;
  /** The kernel image, e.g. `/boot/vmlinuz-6.1.0-56-amd64`. */
  image: string;
  /** The module tree, e.g. `/lib/modules/6.1.0-56-amd64`. */
  modulesDir: string;
}

/** Orders kernel release strings (`6.1.0-9-amd64` before `6.1.0-56-amd64`): numeric parts as numbers, the rest as text. */
function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    if (x !== y) return Number.isFinite(nx) && Number.isFinite(ny) && x !== '' && y !== '' ? nx - ny : x < y ? -1 : 1;
  }
  return 0;
}

/**
 * The newest kernel that has both `/boot/vmlinuz-<v>` and `/lib/modules/<v>/modules.dep`
 * (what Debian's `linux-image-amd64` installs). Env `LAB_KERNEL` picks a version explicitly.
 * @returns undefined when none is installed
 */
export function findKernel(): LabKernel | undefined {
  let versions: string[];
  try {
    versions = fs.readdirSync('/lib/modules');
  } catch {
    return undefined;
  }
  const wanted = process.env.LAB_KERNEL;
  const usable = versions
    .filter((v) => (wanted ? v === wanted : true))
    .filter((v) => fs.existsSync(`/boot/vmlinuz-${v}`) && fs.existsSync(`/lib/modules/${v}/modules.dep`))
    .sort(compareVersions);
  const version = usable.at(-1);
  if (!version) return undefined;
  return { version, image: `/boot/vmlinuz-${version}`, modulesDir: `/lib/modules/${version}` };
}

/**
 * Module path (relative to the tree) to the paths it depends on, from `modules.dep`.
 * @throws Error when the tree has no readable `modules.dep`
 */
export function readModulesDep(kernel: LabKernel): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of fs.readFileSync(join(kernel.modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const mod = line.slice(0, colon);
    map.set(mod, line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
  }
  return map;
}

/** The name modprobe knows a module file by: `kernel/fs/9p/9p.ko.xz` -> `9p`, dashes as underscores. */
function moduleName(path: string): string {
  return (path.split('/').at(-1) ?? '').replace(/\.ko(\.[a-z]+)?$/, '').replace(/-/g, '_');
}

/** True when `name` is built into the kernel image (listed in `modules.builtin`), so there is no file to load. */
export function isBuiltin(kernel: LabKernel, name: string): boolean {
  try {
    return fs
      .readFileSync(join(kernel.modulesDir, 'modules.builtin'), 'utf8')
      .split('\n')
      .some((l) => moduleName(l) === name);
  } catch {
    return false;
  }
}

/**
 * The module files (paths relative to the module tree) needed to load `name`, dependencies
 * first, as modprobe would load them.
 * @param deps the parsed `modules.dep` (read once and passed in when resolving several modules)
 * @param seen files already listed by an earlier call; they are not listed again
 * @returns an empty list when no module of that name is in the tree
 * @throws Error when `modules.dep` cannot be read and `deps` was not given
 */
export function moduleFiles(kernel: LabKernel, name: string, deps = readModulesDep(kernel), seen = new Set<string>()): string[] {
  const entry = [...deps.keys()].find((k) => moduleName(k) === name);
  if (!entry) return [];
  const out: string[] = [];
  const visit = (mod: string): void => {
    if (seen.has(mod)) return;
    seen.add(mod);
    for (const d of [...(deps.get(mod) ?? [])].reverse()) visit(d);
    out.push(mod);
  };
  visit(entry);
  return out;
}
