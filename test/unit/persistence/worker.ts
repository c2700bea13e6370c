/**
 * Child process for the multi-process persistence tests (started by children.ts, never by the
 * test runner: without a role argument it does nothing).
 *
 *   node worker.js cas     <config> <volume id> <tag>   load, print "loaded", wait for "go", set name=tag, print won|stale
 *   node worker.js counter <config> <volume id> <n>     print "ready", wait for "go", then n increments of
 *                                                       admin_metadata.counter (load, 1 ms think time, save),
 *                                                       reloading and retrying on StaleRecordError
 *   node worker.js churn   <config> <prefix>            insert 'creating' then update to 'available', forever
 *   node worker.js hang    <config> <volume id>         insert one 'creating' volume, print "inserted", then idle
 *   node worker.js open    <config>                     open (migrating) and close, print "opened"
 *   node worker.js lock    <config>                     (sqlite) hold the write lock until "release" arrives
 */
import Database from 'better-sqlite3';
import { createInterface } from 'node:readline';
import { delay } from '../../../src/host/retry.js';
import { openStore, type StoreConfig } from '../../../src/persistence/factory.js';
import { StaleRecordError, type VolumeRecord } from '../../../src/persistence/store.js';
import { filler, volume } from './records.js';

const [role, configJson, ...args] = process.argv.slice(2);

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function one(store: Awaited<ReturnType<typeof openStore>>, id: string): Promise<VolumeRecord> {
  const [rec] = await store.getVolumes({ id });
  if (!rec) throw new Error(`volume ${id} not found`);
  return rec;
}

async function main(): Promise<void> {
  if (!role || !configJson) return;
  if (role === 'lock') {
    const db = new Database((JSON.parse(configJson) as { path: string }).path);
    db.exec('BEGIN IMMEDIATE');
    say('locked');
    const rl = createInterface({ input: process.stdin });
    await new Promise<void>((resolve) => rl.on('line', (l) => l === 'release' && resolve()));
    rl.close();
    db.exec('COMMIT');
    db.close();
    say('released');
    return;
  }
  const store = await openStore(JSON.parse(configJson) as StoreConfig);
  switch (role) {
    case 'cas': {
      const [id, tag] = args as [string, string];
      const rec = await one(store, id);
      say(`loaded ${rec.version}`);
      const rl = createInterface({ input: process.stdin });
      await new Promise<void>((resolve) => rl.on('line', (l) => l === 'go' && resolve()));
      rl.close();
      try {
        await store.setVolume({ ...rec, name: tag });
        say('won');
      } catch (err) {
        if (!(err instanceof StaleRecordError)) throw err;
        say('stale');
      }
      break;
    }
    case 'counter': {
      const [id, n] = args as [string, string];
      // Start together with the other worker: print "ready", wait for "go".
      await one(store, id);
      say('ready');
      const rl = createInterface({ input: process.stdin });
      await new Promise<void>((resolve) => rl.on('line', (l) => l === 'go' && resolve()));
      rl.close();
      let retries = 0;
      for (let i = 0; i < Number(n); i++) {
        for (;;) {
          const rec = await one(store, id);
          const count = Number(rec.admin_metadata.counter ?? '0') + 1;
          // Think time between load and save, as the library spends doing its work: it gives the
          // other writer a window to commit in between, which is the case under test.
          await delay(1);
          try {
            await store.setVolume({ ...rec, admin_metadata: { ...rec.admin_metadata, counter: String(count) } });
            break;
          } catch (err) {
            if (!(err instanceof StaleRecordError)) throw err;
            retries++;
          }
        }
      }
      say(JSON.stringify({ retries }));
      break;
    }
    case 'churn': {
      const [prefix] = args as [string];
      for (let i = 0; ; i++) {
        const id = `${prefix}-${String(i).padStart(6, '0')}`;
        const saved = await store.setVolume(volume({ id, status: 'creating', name: id, admin_metadata: { fill: filler(id) } }));
        say(`inserted ${id}`);
        await store.setVolume({ ...saved, status: 'available', description: `done ${id}`, admin_metadata: { fill: filler(`${id}/2`) } });
        say(`updated ${id}`);
      }
    }
    case 'hang': {
      const [id] = args as [string];
      await store.setVolume(volume({ id, status: 'creating', name: 'half-created' }));
      say('inserted');
      setInterval(() => {}, 60_000);
      return;
    }
    case 'open':
      say('opened');
      break;
    default:
      throw new Error(`unknown role ${role}`);
  }
  await store.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
