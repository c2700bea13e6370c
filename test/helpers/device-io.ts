/**
 * Test helpers: write a recognisable text pattern through a block device and read it back,
 * with direct I/O so the data really crosses the device (not just the page cache).
 */
import { ProcessExecutor } from '../../src/exec/executor.js';

const ex = new ProcessExecutor();

/** A 1 MiB ASCII pattern unique to `tag`. */
export function pattern(tag: string): string {
  const line = `brick-test ${tag} `.padEnd(63, '.') + '\n';
  return line.repeat(Math.ceil((1024 * 1024) / 64)).slice(0, 1024 * 1024);
}

/** Write `data` (1 MiB) at MiB offset `mib` of `device`. */
export async function writeAt(device: string, mib: number, data: string): Promise<void> {
  await ex.run(['dd', `of=${device}`, 'bs=1M', 'count=1', `seek=${mib}`, 'iflag=fullblock', 'oflag=direct', 'conv=fsync,notrunc', 'status=none'], { input: data, root: false });
}

/** Read 1 MiB at MiB offset `mib` of `device`. */
export async function readAt(device: string, mib: number): Promise<string> {
  const r = await ex.run(['dd', `if=${device}`, 'bs=1M', 'count=1', `skip=${mib}`, 'iflag=direct', 'status=none'], { root: false });
  return r.stdout;
}

/**
 * Which pattern the 1 MiB block at `mib` holds: the tag when it is exactly `pattern(tag)`,
 * otherwise a short description (`zeros`, or the first distinct line) so failures read well.
 */
export async function blockTag(device: string, mib: number): Promise<string> {
  const data = await readAt(device, mib);
  const m = /^brick-test (\S+) /.exec(data);
  if (m && data === pattern(m[1]!)) return m[1]!;
  if (/^\0*$/.test(data)) return `zeros(${data.length})`;
  return `other(${data.length} bytes, starts ${JSON.stringify(data.slice(0, 40))})`;
}
