/**
 * Child process for crash.test.ts and race.test.ts: works on volumes in a SQLite store until it
 * is killed, or runs one racing operation sequence.
 * argv: <mode> <stateDir> <sqlitePath> [args...]
 *  - hang: creates one volume with a driver that never returns from createVolume (prints CREATING <id>)
 *  - loop: creates and deletes file-backend volumes forever (prints CREATED <id> after each create)
 *  - snapshot-hang <volume id>: snapshots the volume with a driver that writes part of the
 *    snapshot file and never returns (prints SNAPSHOTTING <id>)
 *  - attach <volume id> / detach <volume id>: the file backend's attach or detach, with the
 *    environment's BRICK_HANG_BEFORE or BRICK_HANG_AFTER (a regular expression matched against the
 *    command line) making the executor hang before or after that command (prints HANG <command>)
 *  - race-delete / race-snapshot <start ms> <volume id>...: at the wall-clock time <start ms>, delete
 *    or snapshot each volume in turn (failures are expected and ignored; prints DONE)
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { setup, Backend } from '../../src/library/index.js';
import { SqliteStore } from '../../src/persistence/sqlite.js';
import { registerDriver } from '../../src/drivers/registry.js';
import { FileDriver } from '../../src/drivers/file/driver.js';
import type { DriverSnapshot, DriverVolume } from '../../src/drivers/driver.js';
import { ProcessExecutor, type ExecOptions, type ExecResult, type Executor } from '../../src/exec/executor.js';
import '../../src/drivers/index.js';
import '../../src/initiator/connectors/index.js';

const [mode, stateDir, dbPath, ...rest] = process.argv.slice(2) as [string, string, string, ...string[]];

/** Print `line` and never return (keeping the process alive until it is killed). */
function hang(line: string): Promise<never> {
  process.stdout.write(`${line}\n`);
  setInterval(() => undefined, 1000);
  return new Promise<never>(() => undefined);
}

class HangingDriver extends FileDriver {
  override async createVolume(volume: DriverVolume) {
    return hang(`CREATING ${volume.id}`);
  }
  override async createSnapshot(snapshot: DriverSnapshot) {
    const fh = await open(join(stateDir, 'pool', `${snapshot.name}.img`), 'wx', 0o600);
    await fh.write(Buffer.alloc(4096, 7));
    await fh.close();
    return hang(`SNAPSHOTTING ${snapshot.id}`);
  }
}
registerDriver('hang', (config, ctx) => new HangingDriver(config, ctx));

/** An executor that hangs before or after the first command matching the environment's pattern. */
class HangingExecutor implements Executor {
  private readonly inner = new ProcessExecutor();
  private readonly before = process.env.BRICK_HANG_BEFORE ? new RegExp(process.env.BRICK_HANG_BEFORE) : undefined;
  private readonly after = process.env.BRICK_HANG_AFTER ? new RegExp(process.env.BRICK_HANG_AFTER) : undefined;
  get rootHelper(): readonly string[] {
    return this.inner.rootHelper;
  }
  async run(argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    const line = argv.join(' ');
    if (this.before?.test(line)) return hang(`HANG ${line}`);
    const result = await this.inner.run(argv, options);
    if (this.after?.test(line)) return hang(`HANG ${line}`);
    return result;
  }
}

const ctx = setup({ stateDir, persistence: SqliteStore.open({ path: dbPath }), executor: new HangingExecutor() });
const driverName = mode === 'hang' || mode === 'snapshot-hang' ? 'hang' : 'file';
const backend = await Backend.create({ volume_backend_name: 'crash', volume_driver: driverName, pool_path: `${stateDir}/pool` }, { context: ctx });
if (mode === 'hang') {
  await backend.createVolume({ size: 1 });
} else if (mode === 'loop') {
  for (;;) {
    const v = await backend.createVolume({ size: 1 });
    process.stdout.write(`CREATED ${v.id}\n`);
    if (Math.random() < 0.5) await v.delete();
  }
} else if (mode === 'snapshot-hang') {
  await (await backend.getVolume(rest[0]!)).createSnapshot();
} else if (mode === 'attach') {
  await (await backend.getVolume(rest[0]!)).attach();
  process.stdout.write('ATTACHED\n');
} else if (mode === 'detach') {
  await (await backend.getVolume(rest[0]!)).detach();
  process.stdout.write('DETACHED\n');
} else if (mode === 'race-delete' || mode === 'race-snapshot') {
  const [start, ...ids] = rest;
  await new Promise((r) => setTimeout(r, Math.max(0, Number(start) - Date.now())));
  for (const id of ids) {
    await new Promise((r) => setTimeout(r, Math.random() * 4));
    const vol = await backend.getVolume(id).catch(() => undefined);
    if (!vol) continue;
    await (mode === 'race-delete' ? vol.delete() : vol.createSnapshot()).catch(() => undefined);
  }
  process.stdout.write('DONE\n');
  await ctx.store.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
