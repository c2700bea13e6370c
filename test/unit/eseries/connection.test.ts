import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { rig, vol, connector, seq, IQN_A, IQN_B, type Rig } from './helpers.js';
import { uuidToLabel, NULL_REF, MULTI_ATTACH_HOST_GROUP_NAME } from '../../../src/drivers/netapp-eseries/utils.js';
import { ATTACHMENTS_KEY_PREFIX } from '../../../src/drivers/netapp-eseries/host-mapper.js';
import { BackendError, InsufficientCapacityError, InvalidInputError, InvalidStateError, NotFoundError } from '../../../src/errors.js';

const IQN_C = 'iqn.1993-08.org.debian:01:cccccccccccc';

describe('eseries connections (single attach)', () => {
  let r: Rig;
  before(async () => {
    // random 0.5 -> the middle of the free LUNs; 0 -> the lowest
    r = await rig({}, {}, seq(0.5, 0, 0.999));
  });
  after(async () => r.close());
  const st = () => r.sim.state;

  it('creates the host with the configured host type and maps with a LUN from the random source', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const info = await r.driver.initializeConnection(v, connector(IQN_A));
    const host = st().hostByInitiator(IQN_A)!;
    assert.ok(host, 'host created');
    assert.equal(host.hostTypeIndex, 6, 'linux_dm_mp -> LnxALUA (index 6)');
    assert.match(host.label, /^[A-Z2-7]{26}$/);
    assert.equal(host.clusterRef, NULL_REF);
    const av = st().findVolume(uuidToLabel(v.id))!;
    const m = st().mappingOf(av.id)!;
    assert.equal(m.mapRef, host.id);
    // free LUNs are 1..255 (255 of them); 0.5 picks index 127 -> LUN 128
    assert.equal(m.lun, 128);
    assert.equal(info.driver_volume_type, 'iscsi');
    const d = info.data;
    assert.equal(d.target_lun, 128);
    assert.equal(d.target_discovered, false);
    assert.equal(d.volume_id, v.id);
    assert.equal(d.target_iqn, st().options.targetIqn);
    // owning controller's portal first, then the other
    const ownerIp = av.currentManager === st().controllerRef('A') ? '127.0.0.1' : '127.0.0.2';
    assert.equal(d.target_portal, `${ownerIp}:3260`);
    assert.equal((d.target_portals as string[])[0], d.target_portal);
    assert.deepEqual([...(d.target_portals as string[])].sort(), ['127.0.0.1:3260', '127.0.0.2:3260']);
    assert.deepEqual(d.target_luns, [128, 128]);
    assert.equal(d.auth_method, undefined);
  });

  it('is idempotent for the same host and reuses the host for the next volume', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const first = await r.driver.initializeConnection(v, connector(IQN_A));
    const again = await r.driver.initializeConnection(v, connector(IQN_A.toUpperCase()));
    assert.equal(again.data.target_lun, first.data.target_lun);
    assert.equal([...st().hosts.values()].length, 1, 'the host was found case-insensitively');
    const used = [...st().mappings.values()].map((m) => m.lun);
    assert.equal(new Set(used).size, used.length, 'LUNs are unique for the host');
  });

  it('refuses a second host when multi-attach is disabled', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    await r.driver.initializeConnection(v, connector(IQN_A));
    await assert.rejects(r.driver.initializeConnection(v, connector(IQN_B)), (e: unknown) => e instanceof InvalidStateError && /netapp_enable_multiattach/.test(e.message));
  });

  it('unmaps on terminate; terminate is idempotent and ignores other hosts', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    await r.driver.initializeConnection(v, connector(IQN_A));
    const ref = st().findVolume(uuidToLabel(v.id))!.id;
    await r.driver.terminateConnection(v, connector(IQN_C)); // unknown host: nothing happens
    assert.ok(st().mappingOf(ref));
    await r.driver.terminateConnection(v, connector(IQN_A));
    assert.equal(st().mappingOf(ref), undefined);
    await r.driver.terminateConnection(v, connector(IQN_A));
    await r.driver.terminateConnection(vol(1), connector(IQN_A)); // volume not on the array
    assert.ok(st().hostByInitiator(IQN_A), 'hosts are never deleted');
  });

  it('removes any mapping on terminate with a null connector', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    await r.driver.initializeConnection(v, connector(IQN_B));
    const ref = st().findVolume(uuidToLabel(v.id))!.id;
    await r.driver.terminateConnection(v, null);
    assert.equal(st().mappingOf(ref), undefined);
  });

  it('fixes the host type of an existing host, including codes whose name differs (LNX/Linux)', async () => {
    const lnx = await rig({ netapp_host_type: 'linux_mpp_rdac' });
    try {
      const v = vol(1);
      await lnx.driver.createVolume(v);
      await lnx.driver.client.post('/hosts', { name: 'preexisting', hostType: { index: 0 }, ports: [{ type: 'iscsi', port: IQN_C, label: 'p' }] });
      await lnx.driver.initializeConnection(v, connector(IQN_C));
      const h = lnx.sim.state.hostByInitiator(IQN_C)!;
      assert.equal(h.label, 'preexisting');
      assert.equal(h.hostTypeIndex, 5);
    } finally {
      await lnx.close();
    }
  });

  it('validates the connector before any request', async () => {
    const mark = st().requests.length;
    for (const bad of [undefined, '', 'not an iqn']) {
      const c = connector('x');
      c.initiator = bad;
      assert.throws(() => r.driver.validateConnector(c), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.initiator');
      await assert.rejects(r.driver.initializeConnection(vol(1), c), InvalidInputError);
    }
    r.driver.validateConnector(connector(IQN_A));
    assert.equal(st().requests.length, mark);
  });

  it('raises NotFoundError for a volume the array does not have', async () => {
    await assert.rejects(r.driver.initializeConnection(vol(1), connector(IQN_A)), NotFoundError);
  });

  it('chooses another LUN when the array reports a collision', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    st().injectFault({ method: 'POST', path: /volume-mappings$/, status: 422, body: { errorMessage: 'LUN in use', retcode: 'lunCollision', codeType: 'symbol' } });
    const info = await r.driver.initializeConnection(v, connector(IQN_A));
    assert.equal(typeof info.data.target_lun, 'number');
    assert.ok(st().mappingOf(st().findVolume(uuidToLabel(v.id))!.id));
  });

  it('raises InsufficientCapacityError when the host has no free LUN', async () => {
    const full = await rig();
    try {
      const v = vol(1);
      await full.driver.createVolume(v);
      await full.driver.initializeConnection(v, connector(IQN_C));
      const h = full.sim.state.hostByInitiator(IQN_C)!;
      for (let l = 0; l < 256; l++) {
        if ([...full.sim.state.mappings.values()].some((m) => m.lun === l)) continue;
        full.sim.state.mappings.set(`fill${l}`, { id: `fill${l}`, lun: l, volumeRef: `fake${l}`, mapRef: h.id });
      }
      const w = vol(1);
      await full.driver.createVolume(w);
      await assert.rejects(full.driver.initializeConnection(w, connector(IQN_C)), (e: unknown) => e instanceof InsufficientCapacityError && /256/.test(e.message));
    } finally {
      await full.close();
    }
  });

  it('skips unconfigured portals and fails clearly when none is left', async () => {
    const one = await rig({}, { portals: [{ ip: '127.0.0.9', controller: 'A', unconfigured: true }, { ip: '127.0.0.2', controller: 'B' }] });
    try {
      const v = vol(1);
      await one.driver.createVolume(v);
      const info = await one.driver.initializeConnection(v, connector(IQN_A));
      assert.deepEqual(info.data.target_portals, ['127.0.0.2:3260']);
    } finally {
      await one.close();
    }
    const none = await rig({}, { portals: [{ ip: '127.0.0.9', controller: 'A', unconfigured: true }] });
    try {
      const v = vol(1);
      await none.driver.createVolume(v);
      await assert.rejects(none.driver.initializeConnection(v, connector(IQN_A)), (e: unknown) => e instanceof BackendError && /iSCSI portal/.test(e.message));
    } finally {
      await none.close();
    }
  });

  it('sets array-wide CHAP with a stable secret and returns it, never logging it', async () => {
    const chap = await rig({ use_chap_auth: true });
    try {
      const v = vol(1);
      await chap.driver.createVolume(v);
      const a = await chap.driver.initializeConnection(v, connector(IQN_A));
      const w = vol(1);
      await chap.driver.createVolume(w);
      const b = await chap.driver.initializeConnection(w, connector(IQN_A));
      assert.equal(a.data.auth_method, 'CHAP');
      assert.equal(a.data.auth_username, 'eserieschapuser');
      assert.equal(a.data.discovery_auth_method, 'CHAP');
      const secret = a.data.auth_password as string;
      assert.ok(secret.length >= 12);
      assert.equal(b.data.auth_password, secret, 'the secret does not change between attaches');
      assert.equal(chap.sim.state.targetSettings.chapSecret, secret);
      assert.equal(chap.sim.state.targetSettings.enableChapAuthentication, true);
      assert.ok(readdirSync(chap.stateDir).some((f) => f.endsWith('-chap')));
      assert.doesNotMatch(chap.logs.text(), new RegExp(secret));
    } finally {
      await chap.close();
    }
    const fixed = await rig({ use_chap_auth: true, chap_password: 'configured-secret-1' });
    try {
      const v = vol(1);
      await fixed.driver.createVolume(v);
      const info = await fixed.driver.initializeConnection(v, connector(IQN_A));
      assert.equal(info.data.auth_password, 'configured-secret-1');
      assert.doesNotMatch(fixed.logs.text(), /configured-secret-1/);
    } finally {
      await fixed.close();
    }
  });

  it('exposes the connector protocol and multipath choice', () => {
    assert.equal(r.driver.connectorProtocol, 'ISCSI');
    assert.equal(r.driver.useMultipath, true);
  });
});

describe('eseries multi-attach', () => {
  let r: Rig;
  before(async () => {
    r = await rig({ netapp_enable_multiattach: true });
  });
  after(async () => r.close());
  const st = () => r.sim.state;
  const group = () => [...st().hostGroups.values()].find((g) => g.label === MULTI_ATTACH_HOST_GROUP_NAME)!;
  const attachments = (ref: string): string[] => JSON.parse(st().persistentRecords.get(`${ATTACHMENTS_KEY_PREFIX}${ref}`) ?? '[]');

  for (const order of [
    ['A', 'B'],
    ['B', 'A'],
  ] as const) {
    it(`maps one volume to two hosts through the host group and unmaps in order ${order.join(' then ')}`, async () => {
      const v = vol(1);
      await r.driver.createVolume(v);
      const ref = st().findVolume(uuidToLabel(v.id))!.id;
      const a = await r.driver.initializeConnection(v, connector(IQN_A));
      assert.equal(st().mappingOf(ref)!.mapRef, st().hostByInitiator(IQN_A)!.id, 'first attach maps to the host');
      const b = await r.driver.initializeConnection(v, connector(IQN_B));
      const m = st().mappingOf(ref)!;
      assert.equal(m.mapRef, group().id, 'second attach moves the mapping to the multi-attach group');
      assert.equal(st().hostByInitiator(IQN_A)!.clusterRef, group().id);
      assert.equal(st().hostByInitiator(IQN_B)!.clusterRef, group().id);
      assert.equal(b.data.target_lun, m.lun);
      assert.equal(a.data.target_lun, m.lun, 'the LUN was kept in the move');
      const move = st().requests.findLast((q) => q.path.endsWith('/symbol/moveLUNMapping'))!.body as Record<string, unknown>;
      assert.equal(move.lunMappingRef, m.id, 'moveLUNMapping gets the mapping reference (upstream passed mapRef)');
      assert.equal(attachments(ref).length, 2);
      // a third initialize by A is idempotent
      assert.equal((await r.driver.initializeConnection(v, connector(IQN_A))).data.target_lun, m.lun);

      const iqn = (x: 'A' | 'B') => (x === 'A' ? IQN_A : IQN_B);
      await r.driver.terminateConnection(v, connector(iqn(order[0])));
      assert.ok(st().mappingOf(ref), 'still mapped for the other host');
      assert.equal(attachments(ref).length, 1);
      await r.driver.terminateConnection(v, connector(iqn(order[1])));
      assert.equal(st().mappingOf(ref), undefined, 'the last detach removes the group mapping');
      assert.equal(st().persistentRecords.has(`${ATTACHMENTS_KEY_PREFIX}${ref}`), false);
      await r.driver.deleteVolume(v);
    });
  }

  it('refuses, without disturbing the attached host, when its LUN collides with the group', async () => {
    const v = vol(1);
    const w = vol(1);
    await r.driver.createVolume(v);
    await r.driver.createVolume(w);
    await r.driver.initializeConnection(v, connector(IQN_A)); // A is in the group already from the tests above
    await r.driver.initializeConnection(w, connector(IQN_C)); // C is not in the group yet
    const vref = st().findVolume(uuidToLabel(v.id))!.id;
    const wref = st().findVolume(uuidToLabel(w.id))!.id;
    // make C's LUN for w collide with the LUN the group uses for v
    const wm = st().mappingOf(wref)!;
    wm.lun = st().mappingOf(vref)!.lun;
    await assert.rejects(r.driver.initializeConnection(w, connector(IQN_B)), (e: unknown) => e instanceof InvalidStateError && /LUN/.test(e.message));
    const after = st().mappingOf(wref)!;
    assert.equal(after.mapRef, st().hostByInitiator(IQN_C)!.id, 'C keeps its mapping');
    assert.equal(after.lun, wm.lun, 'and its LUN');
    assert.equal(st().hostByInitiator(IQN_C)!.clusterRef, NULL_REF);
    await r.driver.terminateConnection(w, null);
    await r.driver.terminateConnection(v, null);
  });

  it('refuses a host that belongs to a foreign host group', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    await r.driver.initializeConnection(v, connector(IQN_A));
    const foreign = await r.driver.client.post<{ clusterRef: string }>('/host-groups', { name: 'finance' });
    const d = await r.driver.client.post<{ hostRef: string }>('/hosts', { name: 'dee', hostType: { index: 6 }, ports: [{ type: 'iscsi', port: 'iqn.2000-01.com.example:d', label: 'd' }] });
    await r.driver.client.post(`/hosts/${d.hostRef}`, { groupId: foreign.clusterRef });
    await assert.rejects(r.driver.initializeConnection(v, connector('iqn.2000-01.com.example:d')), (e: unknown) => e instanceof InvalidStateError && /host group/.test(e.message));
    await r.driver.terminateConnection(v, null);
  });

  it('refuses to create more than 256 volumes on a multi-attach backend', async () => {
    const st0 = st();
    const pool = st0.pools[0]!;
    const fakes: string[] = [];
    for (let i = st0.volumes.size; i < 256; i++) {
      const id = st0.ref('02');
      fakes.push(id);
      st0.volumes.set(id, { id, label: `fake${i}`, wwn: id.slice(-32), capacity: 1, poolRef: pool.id, thin: false, repository: false, currentManager: st0.controllerRef('A'), createdAt: 0, flashCache: false, dataAssurance: false, readCache: true, writeCache: true });
    }
    await assert.rejects(r.driver.createVolume(vol(1)), (e: unknown) => e instanceof InsufficientCapacityError && /256/.test(e.message));
    for (const id of fakes) st0.volumes.delete(id);
  });
});
