import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rig, vol, snap, type Rig } from './helpers.js';
import { uuidToLabel } from '../../../src/drivers/netapp-eseries/utils.js';
import { CG_SNAPSHOT_INDEX_KEY } from '../../../src/drivers/netapp-eseries/groups.js';
import { AlreadyExistsError, InvalidInputError, NotFoundError } from '../../../src/errors.js';

describe('eseries consistency groups', () => {
  let r: Rig;
  before(async () => {
    r = await rig();
  });
  after(async () => r.close());
  const st = () => r.sim.state;
  const cgOf = (id: string) => [...st().consistencyGroups.values()].find((c) => c.label === uuidToLabel(id));
  const ref = (id: string) => st().findVolume(uuidToLabel(id))!.id;

  it('creates a group, adds members at create time and by update, and removes them', async () => {
    const group = { id: randomUUID() };
    assert.deepEqual(await r.driver.createGroup(group), { status: 'available' });
    const cg = cgOf(group.id)!;
    assert.ok(cg);
    await assert.rejects(r.driver.createGroup(group), AlreadyExistsError);
    const a = vol(1, { group_id: group.id });
    await r.driver.createVolume(a);
    assert.deepEqual(cg.members, [ref(a.id)]);
    const b = vol(1);
    await r.driver.createVolume(b);
    await r.driver.updateGroup(group, [b], []);
    assert.deepEqual(cg.members, [ref(a.id), ref(b.id)]);
    await r.driver.updateGroup(group, [], [a]);
    assert.deepEqual(cg.members, [ref(b.id)]);
    await r.driver.updateGroup(group, [], [a]); // removing a non-member is fine
    await assert.rejects(r.driver.updateGroup({ id: randomUUID() }, [a], []), NotFoundError);
  });

  it('takes group snapshots, deletes them oldest-first, and makes groups from them', async () => {
    const group = { id: randomUUID() };
    await r.driver.createGroup(group);
    const a = vol(1, { group_id: group.id });
    const b = vol(2, { group_id: group.id });
    await r.driver.createVolume(a);
    await r.driver.createVolume(b);
    const cg = cgOf(group.id)!;

    const gs1 = { id: randomUUID(), group_id: group.id };
    const s1 = [snap(a), snap(b)];
    const out1 = await r.driver.createGroupSnapshot(gs1, s1);
    assert.equal(out1.modelUpdate.status, 'available');
    for (const [i, u] of out1.snapshotsModelUpdate.entries()) {
      const img = st().images.get(u.provider_id!)!;
      assert.equal(img.baseVol, ref(i === 0 ? a.id : b.id));
      assert.equal(img.cgRef, cg.id);
      s1[i]!.provider_id = u.provider_id!;
    }
    const gs2 = { id: randomUUID(), group_id: group.id };
    const s2 = [snap(a), snap(b)];
    const out2 = await r.driver.createGroupSnapshot(gs2, s2);
    out2.snapshotsModelUpdate.forEach((u, i) => (s2[i]!.provider_id = u.provider_id!));

    // a volume from a member image goes through a consistency-group view
    const fromMember = vol(2);
    await r.driver.createVolumeFromSnapshot(fromMember, s2[1]!);
    assert.ok(st().findVolume(uuidToLabel(fromMember.id)));
    assert.equal(st().cgViews.size, 0, 'the CG view was removed');
    assert.equal(st().snapshotVolumes.size, 0);

    // a new group from the group snapshot
    const g2 = { id: randomUUID() };
    const vols = [vol(1, { snapshot_id: s2[0]!.id }), vol(2, { snapshot_id: s2[1]!.id })];
    const made = await r.driver.createGroupFromSrc(g2, vols, { snapshots: s2 });
    assert.equal(made.modelUpdate.status, 'available');
    assert.equal(made.volumesModelUpdate.length, 2);
    assert.deepEqual(cgOf(g2.id)!.members, vols.map((v) => ref(v.id)));

    // a new group from a source group
    const g3 = { id: randomUUID() };
    const clones = [vol(1, { source_volid: a.id }), vol(2, { source_volid: b.id })];
    await r.driver.createGroupFromSrc(g3, clones, { sourceVolumes: [a, b] });
    assert.equal(cgOf(g3.id)!.members.length, 2);
    await assert.rejects(r.driver.createGroupFromSrc({ id: randomUUID() }, clones, {}), (e: unknown) => e instanceof InvalidInputError && e.field === 'source');

    // delete the newer group snapshot first: it is only marked
    await r.driver.deleteGroupSnapshot(gs2, s2);
    assert.ok(st().images.has(s2[0]!.provider_id!));
    const idx = JSON.parse(st().persistentRecords.get(CG_SNAPSHOT_INDEX_KEY)!) as Record<string, string[]>;
    assert.equal(idx[cg.id]!.length, 1);
    // deleting the older one removes both
    await r.driver.deleteGroupSnapshot(gs1, s1);
    for (const s of [...s1, ...s2]) assert.ok(!st().images.has(s.provider_id!));
    assert.equal(JSON.parse(st().persistentRecords.get(CG_SNAPSHOT_INDEX_KEY)!)[cg.id], undefined);

    // deleting the group deletes its volumes and the consistency group
    const del = await r.driver.deleteGroup(group, [a, b]);
    assert.equal(del.modelUpdate.status, 'deleted');
    assert.deepEqual(del.volumesModelUpdate.map((u) => u.status), ['deleted', 'deleted']);
    assert.equal(cgOf(group.id), undefined);
    assert.equal(st().findVolume(uuidToLabel(a.id)), undefined);
    // and again: nothing left, still fine
    await r.driver.deleteGroup(group, [a, b]);
    await r.driver.deleteGroupSnapshot(gs1, s1);
  });

  it('undoes a partly made group when a copy fails', async () => {
    const src = vol(1);
    await r.driver.createVolume(src);
    const g = { id: randomUUID() };
    st().nextCopyOutcome = 'failed';
    const v = vol(1, { source_volid: src.id });
    await assert.rejects(r.driver.createGroupFromSrc(g, [v], { sourceVolumes: [src] }));
    assert.equal(cgOf(g.id), undefined);
    assert.equal(st().findVolume(uuidToLabel(v.id)), undefined);
  });
});
