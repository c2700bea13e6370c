import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rig, makeDriver, type Rig } from './helpers.js';
import { startEseriesSimulator } from '../../../sims/eseries/simulator.js';
import { simulatorOptionsFromArgs } from '../../../sims/eseries/main.js';
import { AuthenticationError, BrickError, InvalidStateError, NotFoundError } from '../../../src/errors.js';

/** The array's own refusals, seen through the driver's REST client. */
describe('eseries simulator behaviour', () => {
  let r: Rig;
  before(async () => {
    r = await rig();
  });
  after(async () => r.close());
  const c = () => r.driver.client;
  const retcode = (code: string) => (e: unknown) => e instanceof BrickError && e.details?.retcode === code;

  async function volume(name: string): Promise<string> {
    const pools = await c().get<{ id: string }[]>('/storage-pools');
    const v = await c().post<{ volumeRef: string }>('/ssc/volumes', { poolId: pools[0]!.id, name, size: 1, sizeUnit: 'gb' });
    return v.volumeRef;
  }
  async function host(name: string, iqn: string): Promise<string> {
    return (await c().post<{ hostRef: string }>('/hosts', { name, hostType: { index: 6 }, ports: [{ type: 'iscsi', port: iqn, label: name }] })).hostRef;
  }

  it('enforces one mapping per volume and unique LUNs per host', async () => {
    const v1 = await volume('sim_v1');
    const v2 = await volume('sim_v2');
    const h = await host('sim_h1', 'iqn.2000-01.com.example:h1');
    await c().post('/volume-mappings', { mappableObjectId: v1, targetId: h, lun: 7 });
    await assert.rejects(c().post('/volume-mappings', { mappableObjectId: v1, targetId: h, lun: 8 }), retcode('volumeAlreadyMapped'));
    await assert.rejects(c().post('/volume-mappings', { mappableObjectId: v2, targetId: h, lun: 7 }), (e: unknown) => e instanceof InvalidStateError && /LUN 7/.test(e.message));
    await assert.rejects(c().post('/volume-mappings', { mappableObjectId: v2, targetId: h, lun: 256 }), retcode('invalidLun'));
    const vol = await c().get<{ listOfMappings: { lun: number }[]; mapped: boolean }>(`/ssc/volumes/sim_v1`);
    assert.equal(vol.mapped, true);
    assert.equal(vol.listOfMappings[0]!.lun, 7);
  });

  it('refuses a host joining a group whose LUNs collide, and moves mappings with "ok"', async () => {
    const g = await c().post<{ clusterRef: string }>('/host-groups', { name: 'sim_group' });
    const v3 = await volume('sim_v3');
    const v4 = await volume('sim_v4');
    const h2 = await host('sim_h2', 'iqn.2000-01.com.example:h2');
    await c().post('/volume-mappings', { mappableObjectId: v3, targetId: g.clusterRef, lun: 9 });
    const m = await c().post<{ lunMappingRef: string }>('/volume-mappings', { mappableObjectId: v4, targetId: h2, lun: 9 });
    await assert.rejects(c().post(`/hosts/${h2}`, { groupId: g.clusterRef }), retcode('lunCollision'));
    assert.equal(await c().post('/symbol/moveLUNMapping', { lunMappingRef: m.lunMappingRef, lun: 9, mapRef: g.clusterRef }), 'lunCollision');
    assert.equal(await c().post('/symbol/moveLUNMapping', { lunMappingRef: m.lunMappingRef, lun: 10, mapRef: g.clusterRef }), 'ok');
    await c().post(`/hosts/${h2}`, { groupId: g.clusterRef });
  });

  it('deletes snapshot images oldest first and cascades group deletes', async () => {
    const v = await volume('sim_v5');
    const g = await c().post<{ id: string }>('/snapshot-groups', { baseMappableObjectId: v, name: 'sim_sg', repositoryPercentage: 20 });
    const i1 = await c().post<{ id: string; pitSequenceNumber: string }>('/snapshot-images', { groupId: g.id });
    const i2 = await c().post<{ id: string; pitSequenceNumber: string }>('/snapshot-images', { groupId: g.id });
    assert.ok(Number(i2.pitSequenceNumber) > Number(i1.pitSequenceNumber));
    await assert.rejects(c().delete(`/snapshot-images/${i2.id}`), retcode('notOldestPit'));
    await c().delete(`/snapshot-images/${i1.id}`);
    await c().delete(`/snapshot-groups/${g.id}`);
    await assert.rejects(c().get(`/snapshot-images/${i2.id}`), NotFoundError);
  });

  it('advances copy jobs through pending and inProgress to complete', async () => {
    const src = await volume('sim_v6');
    const dst = await volume('sim_v7');
    // A pending phase long enough that the first poll surely sees it, even on a busy machine.
    const options = r.sim.state.options;
    const pendingMs = options.copyPendingMs;
    options.copyPendingMs = 300;
    try {
      const job = await c().post<{ volcopyRef: string; status: string }>('/volume-copy-jobs', { sourceId: src, targetId: dst, copyPriority: 'priority4', targetWriteProtected: 'true' });
      assert.equal(job.status, 'pending');
      const seen: string[] = [];
      for (let i = 0; i < 400 && seen.at(-1) !== 'complete'; i++) {
        const status = (await c().get<{ status: string }>(`/volume-copy-jobs/${job.volcopyRef}`)).status;
        if (seen.at(-1) !== status) seen.push(status);
        await new Promise((res) => setTimeout(res, 5));
      }
      assert.deepEqual(seen, ['pending', 'inProgress', 'complete'], 'each state in order, none skipped or revisited');
    } finally {
      options.copyPendingMs = pendingMs;
    }
  });

  it('keeps persistent records and answers 404 for missing ones', async () => {
    await assert.rejects(c().get('/persistent-records/nothing'), NotFoundError);
    await c().post('/persistent-records/', { key: 'k1', value: '{"a":1}' });
    assert.deepEqual(await c().get('/persistent-records/k1'), { key: 'k1', value: '{"a":1}' });
  });

  it('maps a 422 password retcode to AuthenticationError naming netapp_sa_password', async () => {
    const sim = await startEseriesSimulator();
    const { driver } = makeDriver(sim, { netapp_sa_password: 'abc-secret' });
    try {
      sim.state.injectFault({ method: 'POST', path: /\/storage-systems$/, status: 422, body: { errorMessage: 'bad password abc-secret', retcode: 'authFailPassword', codeType: 'symbol' } });
      await assert.rejects(driver.doSetup(), (e: unknown) => {
        assert.ok(e instanceof AuthenticationError);
        assert.equal(e.field, 'netapp_sa_password');
        assert.doesNotMatch(e.message, /abc-secret/);
        return true;
      });
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('reads its stand-alone options from arguments and the environment', () => {
    const o = simulatorOptionsFromArgs(['--port', '8080', '--host', '0.0.0.0', '--embedded'], { ESERIES_SIM_PASSWORD: 'p', ESERIES_SIM_ARRAY_PASSWORD: 'a' });
    assert.deepEqual(o, { port: 8080, host: '0.0.0.0', mode: 'embedded', password: 'p', arrayPassword: 'a' });
    assert.throws(() => simulatorOptionsFromArgs(['--port', 'x'], {}), /--port/);
  });
});
