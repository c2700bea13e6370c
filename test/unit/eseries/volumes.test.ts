import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rig, vol, type Rig } from './helpers.js';
import { uuidToLabel } from '../../../src/drivers/netapp-eseries/utils.js';
import {
  AlreadyExistsError,
  BackendError,
  BackendUnreachableError,
  InsufficientCapacityError,
  InvalidInputError,
  InvalidStateError,
  NotFoundError,
  RetryExhaustedError,
} from '../../../src/errors.js';

const GIB = 1024 ** 3;

describe('eseries volumes', () => {
  let r: Rig;
  before(async () => {
    r = await rig({}, { dveDurationMs: 150 });
  });
  after(async () => r.close());

  const arrayVolume = (id: string) => r.sim.state.findVolume(uuidToLabel(id));
  const pool = (label: string) => r.sim.state.pools.find((p) => p.label === label)!;

  it('creates a thick volume labelled base32(id) in the pool with most room', async () => {
    const v = vol(3);
    const update = await r.driver.createVolume(v);
    const av = arrayVolume(v.id)!;
    assert.ok(av, 'volume exists on the array');
    assert.equal(av.capacity, 3 * GIB);
    assert.equal(av.thin, false);
    assert.equal(av.poolRef, pool('DDP').id, 'DDP (2 TiB) has the most free space');
    assert.deepEqual(update, { provider_id: av.id });
    const body = r.sim.state.requests.findLast((q) => q.method === 'POST' && q.path.endsWith('/ssc/volumes'))!.body as Record<string, unknown>;
    assert.equal(body.sizeUnit, 'gb');
    assert.equal(body.size, 3);
    assert.equal(body.thinProvision, false);
    assert.equal(body.readCacheEnable, null);
  });

  it('honours the pool of volume.host and extra specs', async () => {
    const v = vol(2, { host: 'node@eseries#RG6', volume_type: { extra_specs: { 'netapp:read_cache': 'false', netapp_eseries_flash_read_cache: 'true' } } });
    await r.driver.createVolume(v);
    const av = arrayVolume(v.id)!;
    assert.equal(av.poolRef, pool('RG6').id);
    assert.equal(av.readCache, false);
    assert.equal(av.flashCache, true);
    assert.equal(await r.driver.getPool(v), 'RG6');
  });

  it('creates thin volumes on the disk pool only', async () => {
    const v = vol(500, { extra_specs: { netapp_thin_provisioned: 'true' } });
    await r.driver.createVolume(v);
    assert.equal(arrayVolume(v.id)!.thin, true);
    assert.equal(arrayVolume(v.id)!.poolRef, pool('DDP').id);
    const viaMetadata = vol(8, { admin_metadata: { netapp_thin_provisioned: 'true', pool: 'DDP' } });
    await r.driver.createVolume(viaMetadata);
    assert.equal(arrayVolume(viaMetadata.id)!.thin, true, 'admin metadata carries the spec from the library');
    const bad = vol(1, { host: 'h@b#RG6', extra_specs: { netapp_thin_provisioned: 'yes' } });
    await assert.rejects(r.driver.createVolume(bad), (e: unknown) => e instanceof InvalidInputError && /disk pool/.test(e.message));
    assert.equal(arrayVolume(bad.id), undefined);
  });

  it('rejects an unknown pool, a bad size and a non-UUID id before any change', async () => {
    const before = r.sim.state.volumes.size;
    await assert.rejects(r.driver.createVolume(vol(1, { host: 'h@b#nope' })), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.host');
    await assert.rejects(r.driver.createVolume(vol(0)), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.size');
    await assert.rejects(r.driver.createVolume({ id: 'abc', name: 'volume-abc', size: 1 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.id');
    assert.equal(r.sim.state.volumes.size, before);
  });

  it('maps capacity exhaustion to InsufficientCapacityError', async () => {
    await assert.rejects(r.driver.createVolume(vol(5000)), InsufficientCapacityError);
    // in a named pool the array refuses with 422 and the driver maps its retcode
    const v = vol(1100, { host: 'h@b#RG6' });
    await assert.rejects(r.driver.createVolume(v), (e: unknown) => e instanceof InsufficientCapacityError && /insufficientCapacity/.test(e.message));
    assert.equal(arrayVolume(v.id), undefined);
  });

  it('refuses a duplicate create with AlreadyExistsError', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    await assert.rejects(r.driver.createVolume(v), AlreadyExistsError);
    assert.ok(arrayVolume(v.id), 'the original volume is untouched');
  });

  it('cleans up a volume the array created before the request failed', async () => {
    const v = vol(1);
    // the array creates the volume but the answer is lost: simulate by a 500 after creation
    r.sim.state.injectFault({ method: 'POST', path: /\/ssc\/volumes$/, status: 500, afterHandling: true });
    const mark = r.sim.state.requests.length;
    await assert.rejects(r.driver.createVolume(v), BackendError);
    assert.equal(arrayVolume(v.id), undefined);
    assert.ok(r.sim.state.requests.slice(mark).some((q) => q.method === 'DELETE' && q.path.includes('/ssc/volumes/')), 'the partial volume was deleted');
  });

  it('deletes a volume, and deleting it again succeeds', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    await r.driver.deleteVolume(v);
    assert.equal(arrayVolume(v.id), undefined);
    await r.driver.deleteVolume(v);
  });

  it('refuses to delete a mapped volume (InvalidStateError from the array 422)', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const av = arrayVolume(v.id)!;
    const host = { id: r.sim.state.ref('84'), label: 'h', clusterRef: '0'.repeat(40), hostTypeIndex: 6, ports: [] };
    r.sim.state.hosts.set(host.id, host);
    r.sim.state.mappings.set('m1', { id: 'm1', lun: 3, volumeRef: av.id, mapRef: host.id });
    await assert.rejects(r.driver.deleteVolume(v), (e: unknown) => e instanceof InvalidStateError && /mapped/.test(e.message));
    r.sim.state.mappings.delete('m1');
    r.sim.state.hosts.delete(host.id);
    await r.driver.deleteVolume(v);
  });

  it('extends a thick volume on a disk pool without waiting for DVE', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    await r.driver.extendVolume(v, 4);
    assert.equal(arrayVolume(v.id)!.capacity, 4 * GIB);
    const body = r.sim.state.requests.findLast((q) => q.path.endsWith('/expand'))!.body;
    assert.deepEqual(body, { expansionSize: 4, sizeUnit: 'gb' });
  });

  it('extends a thick volume on a RAID group and waits until no remappingDve is left', async () => {
    const v = vol(1, { host: 'h@b#RG6' });
    await r.driver.createVolume(v);
    const t0 = Date.now();
    const mark = r.sim.state.requests.length;
    await r.driver.extendVolume(v, 2);
    assert.ok(Date.now() - t0 >= 140, 'waited for the DVE');
    const polls = r.sim.state.requests.slice(mark).filter((q) => q.path.endsWith('/action-progress')).length;
    assert.ok(polls >= 2, `polled action-progress (${polls})`);
    assert.equal(pool('RG6').dve.size, 0);
  });

  it('bounds the DVE wait by netapp_extend_timeout', async () => {
    const slow = await rig({ netapp_extend_timeout: 0.1 }, { dveDurationMs: 5000 });
    try {
      const v = vol(1, { host: 'h@b#RG6' });
      await slow.driver.createVolume(v);
      await assert.rejects(slow.driver.extendVolume(v, 2), RetryExhaustedError);
    } finally {
      await slow.close();
    }
  });

  it('extends a thin volume through thin-volumes/expand', async () => {
    const v = vol(10, { extra_specs: { netapp_thin_provisioned: 'true' } });
    await r.driver.createVolume(v);
    await r.driver.extendVolume(v, 20);
    assert.equal(arrayVolume(v.id)!.capacity, 20 * GIB);
    const q = r.sim.state.requests.findLast((x) => x.path.endsWith('/expand'))!;
    assert.match(q.path, /thin-volumes\/.+\/expand$/);
    assert.deepEqual(q.body, { newVirtualSize: 20, sizeUnit: 'gb', newRepositorySize: 20 });
  });

  it('rejects shrinking and a missing volume', async () => {
    const v = vol(2);
    await r.driver.createVolume(v);
    await assert.rejects(r.driver.extendVolume(v, 2), (e: unknown) => e instanceof InvalidInputError && e.field === 'new_size');
    await assert.rejects(r.driver.extendVolume(vol(1), 3), NotFoundError);
  });

  it('reports pool stats with Cinder keys, excluding repository volumes from provisioned capacity', async () => {
    const stats = await r.driver.getVolumeStats(true);
    assert.equal(stats.vendor_name, 'NetApp');
    assert.equal(stats.storage_protocol, 'iSCSI');
    assert.equal(stats.volume_backend_name, 'eseries');
    assert.equal(stats.pools!.length, 2);
    const ddp = stats.pools!.find((p) => p.pool_name === 'DDP')!;
    const p = pool('DDP');
    assert.equal(ddp.total_capacity_gb, 2048);
    assert.equal(ddp.free_capacity_gb, Math.round(((p.total - r.sim.state.usedBytes(p)) / GIB) * 100) / 100);
    const provisioned = [...r.sim.state.volumes.values()].filter((x) => x.poolRef === p.id && !x.repository).reduce((s, x) => s + x.capacity, 0) / GIB;
    assert.equal(ddp.provisioned_capacity_gb, Math.round(provisioned * 100) / 100);
    assert.equal(ddp.thin_provisioning_support, true);
    assert.equal(ddp.netapp_raid_type, 'DDP');
    assert.equal(ddp.netapp_disk_type, 'SSD');
    assert.equal(ddp.netapp_eseries_data_assurance, 'false');
    const rg6 = stats.pools!.find((x) => x.pool_name === 'RG6')!;
    assert.equal(rg6.thin_provisioning_support, false);
    assert.equal(rg6.netapp_raid_type, 'raid6');
    assert.equal(rg6.netapp_disk_type, 'SAS');
    assert.equal(stats.total_capacity_gb, 3072);
    // cached unless refreshed
    const mark = r.sim.state.requests.length;
    assert.equal(await r.driver.getVolumeStats(false), stats);
    assert.equal(r.sim.state.requests.length, mark);
  });

  it('reports only the pools matching the pattern', async () => {
    const only = await rig({ netapp_pool_name_search_pattern: 'RG.*' });
    try {
      const stats = await only.driver.getVolumeStats(true);
      assert.deepEqual(stats.pools!.map((p) => p.pool_name), ['RG6']);
      // and never places a volume outside them
      const v = vol(1);
      await only.driver.createVolume(v);
      assert.equal(only.sim.state.findVolume(uuidToLabel(v.id))!.poolRef, only.sim.state.pools.find((p) => p.label === 'RG6')!.id);
    } finally {
      await only.close();
    }
  });

  it('retries a GET after a 5xx and after a dropped connection', async () => {
    r.sim.state.injectFault({ method: 'GET', path: /storage-pools$/, status: 503 });
    await r.driver.getVolumeStats(true);
    r.sim.state.injectFault({ method: 'GET', path: /storage-pools$/, status: 0 });
    await r.driver.getVolumeStats(true);
    assert.match(r.logs.text(), /retrying/);
  });

  it('gives up after netapp_api_retries and raises BackendError with the status', async () => {
    r.sim.state.injectFault({ method: 'GET', path: /storage-pools$/, status: 500, times: 2 });
    await assert.rejects(r.driver.getVolumeStats(true), (e: unknown) => e instanceof BackendError && e.details?.http_status === 500);
  });

  it('bounds every request by netapp_api_timeout', async () => {
    const quick = await rig({ netapp_api_timeout: 0.2, netapp_api_retries: 0 });
    try {
      quick.sim.state.injectFault({ method: 'GET', path: /storage-pools$/, status: -1 });
      const t0 = Date.now();
      await assert.rejects(quick.driver.getVolumeStats(true), (e: unknown) => e instanceof BackendUnreachableError && /storage-pools/.test(e.message));
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      await quick.close();
    }
  });

  it('does not repeat a POST the array may have acted on', async () => {
    const v = vol(1);
    const mark = r.sim.state.requests.length;
    r.sim.state.injectFault({ method: 'POST', path: /\/ssc\/volumes$/, status: 502 });
    await assert.rejects(r.driver.createVolume(v), BackendError);
    const posts = r.sim.state.requests.slice(mark).filter((q) => q.method === 'POST' && q.path.endsWith('/ssc/volumes')).length;
    assert.equal(posts, 1);
  });

  it('manages an existing volume by label or ref, rounding its size up', async () => {
    const st = r.sim.state;
    const label = 'legacy_vol_1';
    const ref = st.ref('02');
    st.volumes.set(ref, {
      id: ref, label, wwn: '600A098000A4B28D00000000DEADBEEF', capacity: 5 * GIB + 1, poolRef: pool('DDP').id, thin: false, repository: false,
      currentManager: st.controllerRef('A'), createdAt: Date.now(), flashCache: false, dataAssurance: false, readCache: true, writeCache: true,
    });
    const v = vol(1);
    assert.equal(await r.driver.manageExistingGetSize(v, { 'source-name': label }), 6);
    assert.equal(await r.driver.manageExistingGetSize(v, { 'source-id': ref }), 6);
    const update = await r.driver.manageExisting(v, { 'source-name': label });
    assert.deepEqual(update, { size: 6, provider_id: ref });
    assert.equal(st.volumes.get(ref)!.label, uuidToLabel(v.id));
    await r.driver.unmanage({ ...v, size: 6 });
    assert.ok(st.volumes.get(ref), 'unmanage leaves the volume');
    await r.driver.extendVolume({ ...v, size: 6 }, 7);
    assert.equal(st.volumes.get(ref)!.capacity, 7 * GIB);
  });

  it('rejects bad manage references with InvalidInputError naming existing_ref', async () => {
    const check = (e: unknown) => e instanceof InvalidInputError && e.field === 'existing_ref';
    await assert.rejects(r.driver.manageExisting(vol(1), {}), check);
    await assert.rejects(r.driver.manageExisting(vol(1), { 'source-name': 'nope' }), check);
    await assert.rejects(r.driver.manageExistingGetSize(vol(1), { 'source-id': 'nope' }), check);
    await assert.rejects(r.driver.unmanage(vol(1)), NotFoundError);
  });

  it('treats exports as no-ops', async () => {
    const v = vol(1);
    const mark = r.sim.state.requests.length;
    assert.equal(await r.driver.createExport(v, { platform: 'x', os_type: 'linux', ip: '1.2.3.4', host: 'h', multipath: false, enforce_multipath: false }), undefined);
    assert.equal(await r.driver.ensureExport(v), undefined);
    assert.equal(await r.driver.removeExport(v), undefined);
    assert.equal(r.sim.state.requests.length, mark);
  });
});
