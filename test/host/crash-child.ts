/**
 * Child process for crash.test.ts: works on volumes in a SQLite store until it is killed.
 * argv: <mode: hang|loop> <stateDir> <sqlitePath>
 *  - hang: creates one volume with a driver that never returns from createVolume (prints CREATING <id>)
 *  - loop: creates and deletes file-backend volumes forever (prints CREATED <id> after each create)
 */
import { setup, Backend } from '../../src/library/index.js';
import { SqliteStore } from '../../src/persistence/sqlite.js';
import { registerDriver } from '../../src/drivers/registry.js';
import { FileDriver } from '../../src/drivers/file/driver.js';
import type { DriverVolume } from '../../src/drivers/driver.js';
import '../../src/drivers/index.js';

const [mode, stateDir, dbPath] = process.argv.slice(2) as [string, string, string];

class HangingDriver extends FileDriver {
  override async createVolume(volume: DriverVolume) {
    process.stdout.write(`CREATING ${volume.id}\n`);
    setInterval(() => undefined, 1000);
    return new Promise<never>(() => undefined);
  }
}
registerDriver('hang', (config, ctx) => new HangingDriver(config, ctx));

const ctx = setup({ stateDir, persistence: SqliteStore.open({ path: dbPath }) });
const backend = await Backend.create({ volume_backend_name: 'crash', volume_driver: mode === 'hang' ? 'hang' : 'file', pool_path: `${stateDir}/pool` }, { context: ctx });
if (mode === 'hang') {
  await backend.createVolume({ size: 1 });
} else {
  for (;;) {
    const v = await backend.createVolume({ size: 1 });
    process.stdout.write(`CREATED ${v.id}\n`);
    if (Math.random() < 0.5) await v.delete();
  }
}
