import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rig, vol, snap, type Rig } from './helpers.js';
import { uuidToLabel } from '../../../src/drivers/netapp-eseries/utils.js';
import { SNAPSHOT_INDEX_KEY } from '../../../src/drivers/netapp-eseries/snapshots.js';
import { BackendError, InvalidInputError, InvalidStateError, NotFoundError, RetryExhaustedError } from '../../../src/errors.js';

const GIB = 1024 ** 3;

describe('eseries snapshots and copies', () => {
  let r: Rig;
  before(async () => {
    r = await rig();
  });
  after(async () => r.close());

  const st = () => r.sim.state;
  const arrayVolume = (id: string) => st().findVolume(uuidToLabel(id));
  const groupsOf = (ref: string) => [...st().snapshotGroups.values()].filter((g) => g.baseVolume === ref);
  const index = (): Record<string, string[]> => JSON.parse(st().persistentRecords.get(SNAPSHOT_INDEX_KEY) ?? '{}');

  it('creates snapshot images in one snapshot group and returns the image id as provider_id', async () => {
    const v = vol(2);
    await r.driver.createVolume(v);
    const s1 = snap(v);
    const s2 = snap(v);
    const u1 = await r.driver.createSnapshot(s1);
    const u2 = await r.driver.createSnapshot(s2);
    assert.ok(st().images.has(u1.provider_id!));
    assert.ok(st().images.has(u2.provider_id!));
    const av = arrayVolume(v.id)!;
    assert.equal(groupsOf(av.id).length, 1, 'both images share a group');
    const body = st().requests.find((q) => q.method === 'POST' && q.path.endsWith('/snapshot-groups'))!.body as Record<string, unknown>;
    assert.equal(body.baseMappableObjectId, av.id);
    assert.equal(body.repositoryPercentage, 20);
    assert.equal(body.storagePoolId, null);
    // the repository volume is on the array but not in provisioned capacity
    const repo = [...st().volumes.values()].find((x) => x.repository)!;
    assert.match(repo.label, /^repos_/);
    const stats = await r.driver.getVolumeStats(true);
    const ddp = stats.pools!.find((p) => p.pool_name === 'DDP')!;
    const nonRepo = [...st().volumes.values()].filter((x) => !x.repository && x.poolRef === repo.poolRef).reduce((a, x) => a + x.capacity, 0);
    assert.equal(ddp.provisioned_capacity_gb, Math.round((nonRepo / GIB) * 100) / 100);
  });

  it('deletes snapshots oldest-first: a newer one is only marked until the older ones go', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const snaps = [snap(v), snap(v), snap(v)];
    for (const s of snaps) s.provider_id = (await r.driver.createSnapshot(s)).provider_id!;
    const group = groupsOf(arrayVolume(v.id)!.id)[0]!;
    // delete the middle one: the array refuses non-oldest deletes, so it stays, marked
    await r.driver.deleteSnapshot(snaps[1]!);
    assert.ok(st().images.has(snaps[1]!.provider_id!));
    assert.deepEqual(index()[group.id], [snaps[1]!.provider_id]);
    // delete the oldest: it and the marked middle one go
    await r.driver.deleteSnapshot(snaps[0]!);
    assert.ok(!st().images.has(snaps[0]!.provider_id!));
    assert.ok(!st().images.has(snaps[1]!.provider_id!));
    assert.ok(st().images.has(snaps[2]!.provider_id!));
    assert.equal(index()[group.id], undefined);
    // the last one takes the group with it
    await r.driver.deleteSnapshot(snaps[2]!);
    assert.ok(!st().snapshotGroups.has(group.id));
    // and deleting again succeeds
    await r.driver.deleteSnapshot(snaps[2]!);
  });

  it('finds a legacy snapshot by its group label when provider_id is missing', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const s = snap(v);
    const av = arrayVolume(v.id)!;
    // legacy layout: group labelled base32(snapshot id)
    const g = await r.driver.client.post<{ id: string }>('/snapshot-groups', { baseMappableObjectId: av.id, name: uuidToLabel(s.id), repositoryPercentage: 20 });
    const img = await r.driver.client.post<{ id: string }>('/snapshot-images', { groupId: g.id });
    await r.driver.deleteSnapshot(s);
    assert.ok(!st().images.has(img.id));
  });

  it('fills a group to 32 images, then opens a new one, and stops at 96', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const ref = arrayVolume(v.id)!.id;
    for (let i = 0; i < 96; i++) await r.driver.createSnapshot(snap(v));
    const groups = groupsOf(ref);
    assert.equal(groups.length, 3);
    for (const g of groups) assert.equal([...st().images.values()].filter((i) => i.groupRef === g.id).length, 32);
    await assert.rejects(r.driver.createSnapshot(snap(v)), (e: unknown) => e instanceof InvalidStateError && /96/.test(e.message));
    // the reserved fourth group is still available for a clone
    const clone = vol(1);
    await r.driver.createClonedVolume(clone, v);
    assert.ok(arrayVolume(clone.id));
    assert.equal(groupsOf(ref).length, 3, 'the clone group was removed afterwards');
  });

  it('removes a snapshot group it created when the image cannot be taken, but never a pre-existing one', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const ref = arrayVolume(v.id)!.id;
    st().injectFault({ method: 'POST', path: /snapshot-images$/, status: 422, body: { errorMessage: 'no', retcode: 'illegalParam' } });
    await assert.rejects(r.driver.createSnapshot(snap(v)), BackendError);
    assert.equal(groupsOf(ref).length, 0);
    const keep = snap(v);
    keep.provider_id = (await r.driver.createSnapshot(keep)).provider_id!;
    st().injectFault({ method: 'POST', path: /snapshot-images$/, status: 422, body: { errorMessage: 'no', retcode: 'illegalParam' } });
    await assert.rejects(r.driver.createSnapshot(snap(v)), BackendError);
    assert.equal(groupsOf(ref).length, 1);
    assert.ok(st().images.has(keep.provider_id));
  });

  it('creates a volume from a snapshot through a view and a copy job, then removes both', async () => {
    const v = vol(2, { host: 'h@b#RG6' });
    await r.driver.createVolume(v);
    const s = snap(v);
    s.provider_id = (await r.driver.createSnapshot(s)).provider_id!;
    const progress: number[] = [];
    (r.driver as unknown as { ctx: { onProgress?: (o: string, d: number, t: number) => void } }).ctx.onProgress = (_o, d) => progress.push(d);
    const mark = st().requests.length;
    const nv = vol(3);
    const update = await r.driver.createVolumeFromSnapshot(nv, s);
    const av = arrayVolume(nv.id)!;
    assert.equal(update.provider_id, av.id);
    assert.equal(av.capacity, 3 * GIB);
    assert.equal(av.poolRef, arrayVolume(v.id)!.poolRef, 'placed in the source pool');
    const reqs = st().requests.slice(mark);
    const copy = reqs.find((q) => q.method === 'POST' && q.path.endsWith('/volume-copy-jobs'))!.body as Record<string, unknown>;
    assert.equal(copy.targetId, av.id);
    assert.equal(copy.targetWriteProtected, 'true');
    const viewBody = reqs.find((q) => q.method === 'POST' && q.path.endsWith('/snapshot-volumes'))!.body as Record<string, unknown>;
    assert.equal(viewBody.snapshotImageId, s.provider_id);
    assert.equal(viewBody.viewMode, 'readOnly');
    assert.ok(reqs.filter((q) => q.method === 'GET' && q.path.includes('/volume-copy-jobs/')).length >= 2, 'the copy was polled');
    assert.equal(st().copyJobs.size, 0, 'the job was deleted');
    assert.equal(st().snapshotVolumes.size, 0, 'the view was deleted');
    assert.ok(progress.length > 0 && progress[progress.length - 1] === 100);
  });

  it('honours a requested pool for create-from-snapshot (upstream ignored it)', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const s = snap(v);
    s.provider_id = (await r.driver.createSnapshot(s)).provider_id!;
    const nv = vol(1, { host: 'h@b#RG6' });
    await r.driver.createVolumeFromSnapshot(nv, s);
    assert.equal(arrayVolume(nv.id)!.poolRef, st().pools.find((p) => p.label === 'RG6')!.id);
  });

  it('removes the target and the view when the copy fails or halts', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const s = snap(v);
    s.provider_id = (await r.driver.createSnapshot(s)).provider_id!;
    for (const outcome of ['failed', 'halted'] as const) {
      st().nextCopyOutcome = outcome;
      const nv = vol(1);
      await assert.rejects(r.driver.createVolumeFromSnapshot(nv, s), (e: unknown) => e instanceof BackendError && e.message.includes(outcome));
      assert.equal(arrayVolume(nv.id), undefined);
      assert.equal(st().snapshotVolumes.size, 0);
      assert.equal(st().copyJobs.size, 0);
    }
  });

  it('bounds the copy wait by netapp_copy_timeout and cleans up', async () => {
    const slow = await rig({ netapp_copy_timeout: 0.1 }, { copyDurationMs: 10_000 });
    try {
      const v = vol(1);
      await slow.driver.createVolume(v);
      const s = snap(v);
      s.provider_id = (await slow.driver.createSnapshot(s)).provider_id!;
      const nv = vol(1);
      await assert.rejects(slow.driver.createVolumeFromSnapshot(nv, s), RetryExhaustedError);
      assert.equal(slow.sim.state.findVolume(uuidToLabel(nv.id)), undefined);
      assert.equal(slow.sim.state.copyJobs.size, 0);
      assert.equal(slow.sim.state.snapshotVolumes.size, 0);
    } finally {
      await slow.close();
    }
  });

  it('rejects a target smaller than the snapshot and a vanished snapshot', async () => {
    const v = vol(4);
    await r.driver.createVolume(v);
    const s = snap(v);
    s.provider_id = (await r.driver.createSnapshot(s)).provider_id!;
    await assert.rejects(r.driver.createVolumeFromSnapshot(vol(2), s), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.size');
    await r.driver.deleteSnapshot(s);
    await assert.rejects(r.driver.createVolumeFromSnapshot(vol(4), s), NotFoundError);
  });

  it('clones a volume through a temporary SGCV group that is removed afterwards', async () => {
    const v = vol(2);
    await r.driver.createVolume(v);
    const ref = arrayVolume(v.id)!.id;
    const keep = snap(v);
    keep.provider_id = (await r.driver.createSnapshot(keep)).provider_id!;
    const mark = st().requests.length;
    const c = vol(2);
    const update = await r.driver.createClonedVolume(c, v);
    assert.equal(update.provider_id, arrayVolume(c.id)!.id);
    const sg = st().requests.slice(mark).find((q) => q.method === 'POST' && q.path.endsWith('/snapshot-groups'))!.body as { name: string };
    assert.match(sg.name, /^[A-Z2-7]{26}SGCV$/);
    assert.deepEqual(groupsOf(ref).map((g) => g.label.endsWith('SGCV')), [false], 'only the user snapshot group remains');
    assert.ok(st().images.has(keep.provider_id));
    // two clones of one source in parallel both succeed
    const [c1, c2] = [vol(2), vol(2)];
    await Promise.all([r.driver.createClonedVolume(c1, v), r.driver.createClonedVolume(c2, v)]);
    assert.ok(arrayVolume(c1.id) && arrayVolume(c2.id));
    await assert.rejects(r.driver.createClonedVolume(vol(1), v), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.size');
    await assert.rejects(r.driver.createClonedVolume(vol(1), vol(1)), NotFoundError);
  });

  it('deleting a volume drops its snapshot groups and their index entries', async () => {
    const v = vol(1);
    await r.driver.createVolume(v);
    const a = snap(v);
    const b = snap(v);
    a.provider_id = (await r.driver.createSnapshot(a)).provider_id!;
    b.provider_id = (await r.driver.createSnapshot(b)).provider_id!;
    await r.driver.deleteSnapshot(b);
    const g = st().images.get(b.provider_id)!.groupRef;
    assert.ok(index()[g]);
    await r.driver.deleteVolume(v);
    assert.equal(index()[g], undefined);
    assert.ok(!st().snapshotGroups.has(g));
  });
});
