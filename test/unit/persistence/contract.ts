/**
 * The store contract, one suite applied to every persistence plug-in (memory, sqlite,
 * postgresql), as cinderlib runs its `tests/unit/persistence/base.py` for each plug-in.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInputError, PersistenceError } from '../../../src/errors.js';
import { StaleRecordError, type Store } from '../../../src/persistence/store.js';
import { connection, snapshot, volume } from './records.js';

/** How the suite gets a fresh, empty store for each test. */
export interface ContractHarness {
  /** Open a new empty store. */
  open(): Promise<Store>;
  /** Skip the whole suite with this reason. */
  skip?: string | false;
  /** A SQL plug-in: validates records itself and can be closed (memory does neither). */
  sql?: boolean;
}

function isStale(expected: number, found: number | null) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof StaleRecordError, `expected StaleRecordError, got ${String(e)}`);
    assert.ok(e instanceof PersistenceError);
    assert.equal(e.code, 'PERSISTENCE_ERROR');
    assert.deepEqual(e.details, { kind: e.details!.kind, id: e.details!.id, expected, found });
    return true;
  };
}

/** Register the contract suite for one plug-in. */
export function storeContract(name: string, harness: ContractHarness): void {
  describe(`store contract: ${name}`, { skip: harness.skip ?? false }, () => {
    let store: Store;
    beforeEach(async () => {
      store = await harness.open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('a new store is empty and lookups of missing things return []', async () => {
      assert.deepEqual(await store.getVolumes(), []);
      assert.deepEqual(await store.getSnapshots(), []);
      assert.deepEqual(await store.getConnections(), []);
      assert.deepEqual(await store.getKeyValues(), []);
      assert.deepEqual(await store.getKeyValues('nope'), []);
      assert.deepEqual(await store.getVolumes({ id: 'missing' }), []);
    });

    it('insert (version 0) stores the record as version 1 and returns it', async () => {
      const v = volume({ name: 'first', size: 3 });
      const saved = await store.setVolume(v);
      assert.deepEqual(saved, { ...v, version: 1 });
      assert.equal(v.version, 0, 'the input record is not mutated');
      assert.deepEqual(await store.getVolumes(), [{ ...v, version: 1 }]);
    });

    it('a second insert of the same id is a stale write and changes nothing', async () => {
      const v = volume({ name: 'a' });
      await store.setVolume(v);
      await assert.rejects(store.setVolume({ ...v, name: 'b' }), isStale(0, 1));
      assert.equal((await store.getVolumes({ id: v.id }))[0]!.name, 'a');
    });

    it('update with the stored version succeeds and increments it; a stale version is refused', async () => {
      const v1 = await store.setVolume(volume({ status: 'creating' }));
      const v2 = await store.setVolume({ ...v1, status: 'available', size: 2 });
      assert.equal(v2.version, 2);
      assert.deepEqual(await store.getVolumes({ id: v1.id }), [v2]);
      // v1 is now stale: its update must not overwrite v2.
      await assert.rejects(store.setVolume({ ...v1, status: 'error' }), isStale(1, 2));
      assert.deepEqual(await store.getVolumes({ id: v1.id }), [v2]);
      const v3 = await store.setVolume({ ...v2, status: 'in-use' });
      assert.equal(v3.version, 3);
    });

    it('updating a record that does not exist is a stale write (found none)', async () => {
      await assert.rejects(store.setVolume(volume({ id: 'ghost', version: 4 })), isStale(4, null));
      assert.deepEqual(await store.getVolumes(), []);
    });

    it('two concurrent writers with the same version: exactly one wins', async () => {
      const base = await store.setVolume(volume());
      const results = await Promise.allSettled([store.setVolume({ ...base, name: 'A' }), store.setVolume({ ...base, name: 'B' })]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1);
      assert.equal(lost.length, 1);
      assert.ok(lost[0]!.reason instanceof StaleRecordError);
      const [stored] = await store.getVolumes({ id: base.id });
      assert.equal(stored!.version, 2);
      assert.equal(stored!.name, (won[0] as PromiseFulfilledResult<{ name: string }>).value.name);
    });

    it('every field round-trips: nested objects, nulls, booleans, numbers, unicode', async () => {
      const v = volume({
        name: 'volümé ✓ 日本 "quoted" \\ back',
        description: 'multi\nline\ttabbed',
        size: 1.5,
        multiattach: true,
        provider_location: '/dev/vg/x',
        provider_auth: 'CHAP user s3cret',
        admin_metadata: { a: '1', 'with space': 'x', empty: '' },
        snapshot_id: 'snap-1',
        error: null,
      });
      const c = connection({
        connector_info: { initiator: 'iqn.1993-08.org.debian:01:abc', wwpns: ['5001', '5002'], multipath: true, nested: { list: [1, 2.5, { deep: null }], f: false } },
        conn_info: { driver_volume_type: 'iscsi', data: { target_portals: ['127.0.0.1:3260', '[::1]:3260'], target_luns: [0, 0], auth_password: 'p@ss' } },
        device: { type: 'block', path: '/dev/sdb', scsi_wwn: '36001405abc', multipath_id: null },
        attached_host: 'host-a',
        attach_mode: 'ro',
      });
      const s = snapshot({ volume_size: 10, provider_id: 'p-1', status: 'error', error: 'it failed: "why"' });
      await store.setVolume(v);
      await store.setConnection(c);
      await store.setSnapshot(s);
      assert.deepEqual(await store.getVolumes({ id: v.id }), [{ ...v, version: 1 }]);
      assert.deepEqual(await store.getConnections({ id: c.id }), [{ ...c, version: 1 }]);
      assert.deepEqual(await store.getSnapshots({ id: s.id }), [{ ...s, version: 1 }]);
    });

    it('returned records are copies: mutating them or the input does not change the store', async () => {
      const v = volume({ admin_metadata: { k: 'v' } });
      const saved = await store.setVolume(v);
      v.admin_metadata.k = 'changed-input';
      saved.admin_metadata.k = 'changed-result';
      const [got] = await store.getVolumes({ id: v.id });
      got!.admin_metadata.k = 'changed-got';
      assert.equal((await store.getVolumes({ id: v.id }))[0]!.admin_metadata.k, 'v');
    });

    it('filters are exact matches, ANDed; names need not be unique; undefined fields are ignored', async () => {
      const a = await store.setVolume(volume({ backend: 'b1', name: 'same', status: 'available' }));
      const b = await store.setVolume(volume({ backend: 'b1', name: 'same', status: 'error', created_at: '2026-01-02T00:00:00.000Z' }));
      const c = await store.setVolume(volume({ backend: 'b2', name: 'other', status: 'available' }));
      const ids = (rs: { id: string }[]) => rs.map((r) => r.id);
      assert.deepEqual(ids(await store.getVolumes({ name: 'same' })), [a.id, b.id]);
      assert.deepEqual(ids(await store.getVolumes({ backend: 'b1', status: 'error' })), [b.id]);
      assert.deepEqual(ids(await store.getVolumes({ status: 'available' })), ids([a, c].sort((x, y) => x.id.localeCompare(y.id))));
      assert.deepEqual(ids(await store.getVolumes({ backend: 'b2', name: 'same' })), []);
      assert.deepEqual(ids(await store.getVolumes({ name: 'sam' })), [], 'no prefix or pattern matching');
      assert.deepEqual(ids(await store.getVolumes({ name: 'SAME' })), [], 'case-sensitive');
      assert.deepEqual(ids(await store.getVolumes({ id: c.id, backend: undefined })), [c.id]);
      assert.equal((await store.getVolumes({})).length, 3);
    });

    it('lists are sorted by created_at, then id', async () => {
      const t1 = '2026-03-01T10:00:00.000Z';
      const t2 = '2026-03-01T10:00:00.001Z';
      const t3 = '2026-03-02T00:00:00.000Z';
      for (const [id, t] of [['m', t2], ['z', t1], ['b', t1], ['c', t3], ['a', t2]] as const) {
        await store.setVolume(volume({ id, created_at: t }));
      }
      assert.deepEqual((await store.getVolumes()).map((r) => r.id), ['b', 'z', 'a', 'm', 'c']);
    });

    it('snapshots and connections filter by volume_id and backend', async () => {
      const s1 = await store.setSnapshot(snapshot({ volume_id: 'v1', backend: 'b1', name: 's' }));
      const s2 = await store.setSnapshot(snapshot({ volume_id: 'v2', backend: 'b1', name: 's', created_at: '2026-02-01T00:00:00.000Z' }));
      const c1 = await store.setConnection(connection({ volume_id: 'v1', backend: 'b1' }));
      const c2 = await store.setConnection(connection({ volume_id: 'v1', backend: 'b2', created_at: '2026-02-01T00:00:00.000Z' }));
      assert.deepEqual((await store.getSnapshots({ volume_id: 'v1' })).map((r) => r.id), [s1.id]);
      assert.deepEqual((await store.getSnapshots({ name: 's' })).map((r) => r.id), [s1.id, s2.id]);
      assert.deepEqual((await store.getSnapshots({ volume_id: 'v2', backend: 'b1' })).map((r) => r.id), [s2.id]);
      assert.deepEqual((await store.getConnections({ volume_id: 'v1' })).map((r) => r.id), [c1.id, c2.id]);
      assert.deepEqual((await store.getConnections({ volume_id: 'v1', backend: 'b2' })).map((r) => r.id), [c2.id]);
      assert.deepEqual(await store.getConnections({ volume_id: 'v9' }), []);
    });

    it('snapshot and connection updates are compare-and-set too', async () => {
      const s = await store.setSnapshot(snapshot({ status: 'creating' }));
      await store.setSnapshot({ ...s, status: 'available' });
      await assert.rejects(store.setSnapshot({ ...s, status: 'error' }), isStale(1, 2));
      const c = await store.setConnection(connection({ status: 'attaching' }));
      await store.setConnection({ ...c, status: 'attached', device: { path: '/dev/loop3' } });
      await assert.rejects(store.setConnection({ ...c, status: 'error' }), isStale(1, 2));
      assert.equal((await store.getConnections({ id: c.id }))[0]!.status, 'attached');
    });

    it('the same id in different kinds does not collide', async () => {
      await store.setVolume(volume({ id: 'x' }));
      await store.setSnapshot(snapshot({ id: 'x' }));
      await store.setConnection(connection({ id: 'x' }));
      await store.deleteSnapshot('x');
      assert.equal((await store.getVolumes({ id: 'x' })).length, 1);
      assert.equal((await store.getConnections({ id: 'x' })).length, 1);
      assert.equal((await store.getSnapshots({ id: 'x' })).length, 0);
    });

    it('delete removes; deleting a missing record is a no-op; the id can then be inserted again', async () => {
      const v = await store.setVolume(volume({ id: 'gone' }));
      await store.setVolume(volume({ id: 'kept' }));
      await store.deleteVolume('gone');
      await store.deleteVolume('gone');
      await store.deleteVolume('never-existed');
      await store.deleteSnapshot('never-existed');
      await store.deleteConnection('never-existed');
      await store.deleteKeyValue('never-existed');
      assert.deepEqual((await store.getVolumes()).map((r) => r.id), ['kept']);
      const again = await store.setVolume({ ...v, version: 0 });
      assert.equal(again.version, 1);
    });

    it('key-values: upsert, get one, list sorted by key, delete', async () => {
      await store.setKeyValue({ key: 'node-b', value: '{"initiator":"iqn.b"}' });
      await store.setKeyValue({ key: 'node-a', value: 'first' });
      await store.setKeyValue({ key: 'node-a', value: 'second' });
      assert.deepEqual(await store.getKeyValues('node-a'), [{ key: 'node-a', value: 'second' }]);
      assert.deepEqual(await store.getKeyValues(), [
        { key: 'node-a', value: 'second' },
        { key: 'node-b', value: '{"initiator":"iqn.b"}' },
      ]);
      await store.deleteKeyValue('node-a');
      assert.deepEqual(await store.getKeyValues('node-a'), []);
      assert.equal((await store.getKeyValues()).length, 1);
      await store.setKeyValue({ key: 'empty', value: '' });
      assert.deepEqual(await store.getKeyValues('empty'), [{ key: 'empty', value: '' }]);
    });

    if (harness.sql) {
      it('malformed records are refused with InvalidInputError naming the field, before any write', async () => {
        const bad = (field: string) => (e: unknown) => e instanceof InvalidInputError && e.field === field;
        await assert.rejects(store.setVolume(volume({ version: -1 })), bad('volume.version'));
        await assert.rejects(store.setVolume(volume({ version: 1.5 })), bad('volume.version'));
        await assert.rejects(store.setVolume(volume({ id: '' })), bad('volume.id'));
        await assert.rejects(store.setVolume({ ...volume(), backend: undefined as unknown as string }), bad('volume.backend'));
        await assert.rejects(store.setSnapshot({ ...snapshot(), volume_id: 7 as unknown as string }), bad('snapshot.volume_id'));
        await assert.rejects(store.setConnection({ ...connection(), created_at: null as unknown as string }), bad('connection.created_at'));
        await assert.rejects(store.setKeyValue({ key: '', value: 'x' }), bad('key_value.key'));
        await assert.rejects(store.setKeyValue({ key: 'k', value: 3 as unknown as string }), bad('key_value.value'));
        assert.deepEqual(await store.getVolumes(), []);
        assert.deepEqual(await store.getKeyValues(), []);
      });

      it('a closed store refuses calls with PersistenceError; close is idempotent', async () => {
        await store.close();
        await assert.rejects(store.getVolumes(), PersistenceError);
        await assert.rejects(store.setKeyValue({ key: 'k', value: 'v' }), PersistenceError);
        await store.close();
      });
    }
  });
}
