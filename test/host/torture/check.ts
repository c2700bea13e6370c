/**
 * After the workers: recovery the way an operator runs it, then the invariants of issue 13.
 *
 * Recovery: a fresh process starts the backend (`brick volume list`), then `brick volume detach`
 * runs for every volume that has a connection, a status saying it is (being) attached, or a loop
 * device over its file (an interrupted attach or detach is finished by running detach again).
 *
 * Invariants, read from the store itself (not through the library), the pool directory and
 * `losetup --list`:
 * - nothing is in a transitional status; no connection is left after the detaches;
 * - no snapshot or connection outlives its volume; every record is listed by the CLI;
 * - every pool file is a volume or snapshot with a record, and every usable record has its file;
 * - no loop device serves a pool file;
 * - every block the journals prove written to a volume nobody asked to delete is there;
 * - every snapshot, then every volume, is deleted by the CLI (`--json`, exit 0), after which the
 *   store, the pool and the loop devices are empty.
 */
import { execFile, spawn } from 'node:child_process';
import { open, readdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openStore } from '../../../src/persistence/factory.js';
import type { Store } from '../../../src/persistence/store.js';
import { BLOCK, pattern, readJournals } from './journal.js';
import type { RunEnv } from './run.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const run = promisify(execFile);

const VOLUME_TRANSITIONAL = new Set(['creating', 'deleting', 'extending', 'attaching', 'detaching']);
const SNAPSHOT_TRANSITIONAL = new Set(['creating', 'deleting']);

/** Result of one `brick` command. */
interface CliResult {
  code: number | null;
  json: unknown;
  text: string;
}

/** Run `brick --config <run config> --json ...args` (60 s at most). */
export function brick(env: RunEnv, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, '--config', env.configPath, '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(t);
      let json: unknown = null;
      try {
        json = JSON.parse(out);
      } catch {
        // not JSON: reported through text
      }
      resolve({ code, json, text: `${out.trim()} ${err.trim()}`.trim().replace(/\s+/g, ' ').slice(0, 400) });
    });
  });
}

/** Loop devices whose backing file is under `dir`: device and file (`(deleted)` kept). */
export async function loopsUnder(dir: string): Promise<{ dev: string; file: string }[]> {
  const { stdout } = await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE']);
  const list = stdout.trim() ? (JSON.parse(stdout) as { loopdevices: { name: string; 'back-file': string | null }[] }).loopdevices : [];
  return list.filter((l) => (l['back-file'] ?? '').startsWith(`${dir}/`)).map((l) => ({ dev: l.name, file: l['back-file']! }));
}

async function poolFiles(pool: string): Promise<string[]> {
  return readdir(pool).catch(() => []);
}

function idsOf(json: unknown): Set<string> {
  return new Set(Array.isArray(json) ? json.map((x) => String((x as { id?: unknown }).id)) : []);
}

/** Step 1 and 2: a fresh start, then detach what may be attached. */
async function recover(env: RunEnv, store: Store, v: string[]): Promise<void> {
  const start = await brick(env, ['volume', 'list']);
  if (start.code !== 0) v.push(`recovery: \`volume list\` exited ${start.code}: ${start.text}`);
  const vols = await store.getVolumes();
  const conns = await store.getConnections();
  const loops = await loopsUnder(env.pool);
  for (const vol of vols) {
    const file = join(env.pool, `volume-${vol.id}.img`);
    const attached = conns.some((c) => c.volume_id === vol.id) || ['in-use', 'attaching', 'detaching'].includes(vol.status) || loops.some((l) => l.file.startsWith(file));
    if (!attached) continue;
    const r = await brick(env, ['volume', 'detach', vol.id]);
    if (r.code !== 0) v.push(`recovery: \`volume detach ${vol.id}\` (was ${vol.status}) exited ${r.code}: ${r.text}`);
  }
}

/** Step 3: the store, the pool and losetup agree, and nothing is half-done. */
async function checkState(env: RunEnv, store: Store, v: string[]): Promise<void> {
  const vols = await store.getVolumes();
  const snaps = await store.getSnapshots();
  const conns = await store.getConnections();
  const volIds = new Set(vols.map((x) => x.id));
  const snapIds = new Set(snaps.map((x) => x.id));
  for (const x of vols) if (VOLUME_TRANSITIONAL.has(x.status)) v.push(`volume ${x.id} still ${x.status} after recovery`);
  for (const x of snaps) {
    if (SNAPSHOT_TRANSITIONAL.has(x.status)) v.push(`snapshot ${x.id} still ${x.status} after recovery`);
    if (!volIds.has(x.volume_id)) v.push(`snapshot ${x.id} (${x.status}) outlives its volume ${x.volume_id}`);
  }
  for (const c of conns) v.push(`connection ${c.id} (${c.status}, volume ${c.volume_id}) left after \`volume detach\``);
  for (const x of vols) if (x.status === 'in-use') v.push(`volume ${x.id} still in-use after \`volume detach\``);

  const files = await poolFiles(env.pool);
  for (const f of files) {
    const m = /^(volume|snapshot)-([0-9a-f-]{36})\.img$/.exec(f);
    if (!m) v.push(`pool file ${f} belongs to no object`);
    else if (m[1] === 'volume' && !volIds.has(m[2]!)) v.push(`pool file ${f} has no volume record`);
    else if (m[1] === 'snapshot' && !snapIds.has(m[2]!)) v.push(`pool file ${f} has no snapshot record`);
  }
  for (const x of vols) if (['available', 'in-use'].includes(x.status) && !files.includes(`volume-${x.id}.img`)) v.push(`volume ${x.id} is ${x.status} but its file is missing`);
  for (const x of snaps) if (x.status === 'available' && !files.includes(`snapshot-${x.id}.img`)) v.push(`snapshot ${x.id} is available but its file is missing`);
  for (const l of await loopsUnder(env.pool)) v.push(`loop device ${l.dev} still serves ${l.file.slice(env.pool.length + 1)} after recovery`);

  const [listedVols, listedSnaps] = await Promise.all([brick(env, ['volume', 'list']), brick(env, ['snapshot', 'list'])]);
  for (const id of volIds) if (!idsOf(listedVols.json).has(id)) v.push(`volume ${id} is in the store but not in \`volume list\``);
  for (const id of snapIds) if (!idsOf(listedSnaps.json).has(id)) v.push(`snapshot ${id} is in the store but not in \`snapshot list\``);
}

/** Step 3, data: every block proven written to a volume nobody deleted is on disk. */
async function checkData(env: RunEnv, store: Store, v: string[]): Promise<number> {
  const { deleted, blocks } = readJournals(env.runDir);
  let checked = 0;
  for (const [id, offs] of blocks) {
    if (deleted.has(id)) continue;
    const [rec] = await store.getVolumes({ id });
    if (!rec) {
      v.push(`volume ${id} was written and never deleted, but its record is gone`);
      continue;
    }
    const fh = await open(join(env.pool, `volume-${id}.img`), 'r').catch(() => null);
    if (!fh) {
      v.push(`volume ${id} (${rec.status}) was written and never deleted, but its file is gone`);
      continue;
    }
    try {
      for (const [off, tag] of offs) {
        const buf = Buffer.alloc(BLOCK);
        await fh.read(buf, 0, BLOCK, off);
        checked += 1;
        if (!buf.equals(pattern(tag))) v.push(`volume ${id} (${rec.status}) at ${off}: expected ${tag}, found ${JSON.stringify(buf.subarray(0, 24).toString('latin1'))}`);
      }
    } finally {
      await fh.close();
    }
  }
  return checked;
}

/**
 * Step 4: every object goes through the CLI, one at a time (snapshots first, then volumes), and
 * nothing is left anywhere.
 */
async function removeAll(env: RunEnv, store: Store, v: string[]): Promise<void> {
  const stuck = new Set<string>();
  for (const s of await store.getSnapshots()) {
    const r = await brick(env, ['snapshot', 'delete', s.id]);
    if (r.code !== 0) {
      v.push(`\`snapshot delete ${s.id}\` (${s.status}) exited ${r.code}: ${r.text}`);
      stuck.add(s.volume_id);
    }
  }
  for (const x of await store.getVolumes()) {
    if (stuck.has(x.id)) continue;
    const r = await brick(env, ['volume', 'delete', x.id]);
    if (r.code !== 0) v.push(`\`volume delete ${x.id}\` (${x.status}) exited ${r.code}: ${r.text}`);
  }
  if (v.length > 0) return;
  const left = [
    ...(await store.getVolumes()).map((x) => `volume ${x.id} (${x.status})`),
    ...(await store.getSnapshots()).map((x) => `snapshot ${x.id} (${x.status})`),
    ...(await store.getConnections()).map((x) => `connection ${x.id} (${x.status})`),
    ...(await poolFiles(env.pool)).map((f) => `pool file ${f}`),
    ...(await loopsUnder(env.pool)).map((l) => `loop device ${l.dev}`),
  ];
  for (const l of left) v.push(`${l} left after deleting everything through the CLI`);
}

/** Recover, check every invariant and remove everything; returns the broken invariants. */
export async function recoverAndCheck(env: RunEnv): Promise<{ violations: string[]; blocksChecked: number }> {
  const v: string[] = [];
  const store = await openStore(env.persistence);
  try {
    await recover(env, store, v);
    await checkState(env, store, v);
    const blocksChecked = await checkData(env, store, v);
    await removeAll(env, store, v);
    return { violations: v, blocksChecked };
  } finally {
    await store.close();
  }
}

/** Whatever happened: detach loop devices over the run's files and remove its directory. */
export async function forceCleanup(env: RunEnv): Promise<void> {
  for (const l of await loopsUnder(env.runDir).catch(() => [])) await run('losetup', ['--detach', l.dev]).catch(() => undefined);
  await rm(env.runDir, { recursive: true, force: true });
}
