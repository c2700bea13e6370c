/**
 * A torture-test worker process: runs one operation sequence through the library API on the
 * shared store and pool, announcing each operation on stdout (`BEGIN i kind`, then `END i ok` or
 * `END i err CODE message`), until the sequence ends or the parent kills it.
 *
 * argv[2]: a JSON {@link WorkerArgs}. Writes go to the device of the volume's connection on this
 * host, opened first and checked (while held open) to be a loop device over that volume's file,
 * so a detach or a device number reused by another volume meanwhile cannot send the pattern
 * elsewhere; see journal.ts for what is recorded.
 */
import { open, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setup, Backend, type Volume } from '../../../src/library/index.js';
import { openStore } from '../../../src/persistence/factory.js';
import type { Store } from '../../../src/persistence/store.js';
import '../../../src/drivers/index.js';
import '../../../src/initiator/connectors/index.js';
import { BrickError } from '../../../src/errors.js';
import { Journal, journalName, pattern, writeOffset, BLOCK } from './journal.js';
import { formatOp, type Op } from './scenario.js';

/** What the parent passes to a worker. */
export interface WorkerArgs {
  worker: number;
  life: number;
  /** Index of the first operation of `ops` in the worker's whole plan (after a kill). */
  first: number;
  ops: Op[];
  /** The run's directory (journals), data directory (state, locks) and pool. */
  runDir: string;
  dataDir: string;
  pool: string;
  persistence: string;
  backendName: string;
}

const args = JSON.parse(process.argv[2]!) as WorkerArgs;

/** Open the store and start the backend; a failure is announced (`START err CODE message`) and ends the process with 3. */
async function start(): Promise<{ store: Store; backend: Backend }> {
  try {
    const store = await openStore(args.persistence);
    const ctx = setup({ stateDir: args.dataDir, lockPath: join(args.dataDir, 'locks'), persistence: store });
    const config = { volume_backend_name: args.backendName, volume_driver: 'file', pool_path: args.pool, max_over_subscription_ratio: 50 };
    return { store, backend: await Backend.create(config, { context: ctx }) };
  } catch (err) {
    process.stdout.write(`START err ${errorCode(err)} ${oneLine(String((err as Error).message ?? err))}\n`);
    process.exit(3);
  }
}

function errorCode(err: unknown): string {
  return err instanceof BrickError ? err.code : `UNTYPED(${(err as { code?: string }).code ?? (err as Error).name})`;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').slice(0, 300);
}

const { store, backend } = await start();
const journal = new Journal(join(args.runDir, journalName(args.worker, args.life)));
let writes = 0;

/** Records in creation order, so that an index names the same object for every worker. */
function ordered<T extends { created_at: string; id: string }>(recs: T[]): T[] {
  return [...recs].sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
}

/** The `i`-th volume (modulo), among those with a connection when `attached` is set. */
async function pickVolume(i: number, attached = false): Promise<Volume | null> {
  let recs = ordered(await store.getVolumes({ backend: backend.id }));
  if (attached) {
    const conns = new Set((await store.getConnections({ backend: backend.id })).map((c) => c.volume_id));
    recs = recs.filter((r) => conns.has(r.id));
  }
  if (recs.length === 0) return null;
  return backend.getVolume(recs[i % recs.length]!.id);
}

async function pickSnapshot(i: number) {
  const recs = ordered(await store.getSnapshots({ backend: backend.id }));
  if (recs.length === 0) return null;
  const rec = recs[i % recs.length]!;
  const vol = await backend.getVolume(rec.volume_id);
  return vol.snapshots.find((s) => s.id === rec.id) ?? null;
}

/** Write the pattern for this operation through the volume's device on this host (attached first when it is not). */
async function writeBlock(vol: Volume, slot: number): Promise<string> {
  await vol.refresh();
  const path = vol.localAttach?.path ?? (await vol.attach()).path;
  if (!path) return 'not attached';
  const fh = await open(path, 'r+');
  try {
    const backing = await readFile(`/sys/block/${basename(path)}/loop/backing_file`, 'utf8').catch(() => '');
    if (backing.trim() !== join(args.pool, `volume-${vol.id}.img`)) return `device ${path} no longer serves the volume`;
    const n = writes++;
    const off = writeOffset(args.worker, slot);
    const tag = `w${args.worker}.${args.life}.${n}:${vol.id.slice(0, 8)}`;
    journal.append({ t: 'intent', n, vol: vol.id, off, tag });
    const { bytesWritten } = await fh.write(pattern(tag), 0, BLOCK, off);
    if (bytesWritten !== BLOCK) throw new Error(`short write to ${path}: ${bytesWritten}`);
    await fh.sync();
    journal.append({ t: 'done', n });
    return `wrote ${tag} at ${off}`;
  } finally {
    await fh.close();
  }
}

/** Run one operation; returns a note for the log, or throws what the library threw. */
async function run(op: Op): Promise<string> {
  switch (op.k) {
    case 'create':
      return (await backend.createVolume({ size: op.size })).id;
    case 'list':
      await backend.getVolumes();
      await backend.getSnapshots();
      return 'listed';
    case 'fromSnapshot':
    case 'deleteSnapshot': {
      const snap = await pickSnapshot(op.s);
      if (!snap) return 'no snapshot';
      if (op.k === 'deleteSnapshot') {
        await snap.delete();
        return snap.id;
      }
      return (await snap.createVolume()).id;
    }
    default:
      break;
  }
  // Detaches go to attached volumes, so that they meet attaches, writes and deletes.
  const vol = await pickVolume(op.v, op.k === 'detach');
  if (!vol) return 'no volume';
  switch (op.k) {
    case 'snapshot':
      return (await vol.createSnapshot()).id;
    case 'clone':
      return (await vol.clone()).id;
    case 'attach':
      return (await vol.attach()).path ?? '?';
    case 'write':
      return writeBlock(vol, op.slot);
    case 'extend':
      return String(await vol.extend(op.huge ? 100_000 : vol.size + 1));
    case 'detach':
      await vol.detach();
      return vol.id;
    case 'deleteVolume':
      journal.append({ t: 'delete', vol: vol.id });
      await vol.delete();
      return vol.id;
  }
}

for (const [j, op] of args.ops.entries()) {
  const i = args.first + j;
  process.stdout.write(`BEGIN ${i} ${formatOp(op)}\n`);
  try {
    process.stdout.write(`END ${i} ok ${oneLine(await run(op))}\n`);
  } catch (err) {
    process.stdout.write(`END ${i} err ${errorCode(err)} ${oneLine(String((err as Error).message ?? err))}\n`);
  }
}
journal.close();
await backend.close();
await store.close();
