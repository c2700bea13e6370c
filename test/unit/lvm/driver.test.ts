import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { LvmDriver, parseLvmConfig } from '../../../src/drivers/lvm/driver.js';
import { parseLvs, parseVgs, escapeSnapshotName, mapperName } from '../../../src/drivers/lvm/lvm.js';
import { driverFactory } from '../../../src/drivers/registry.js';
import '../../../src/drivers/lvm/index.js';
import { BackendError, InvalidConfigError, InvalidInputError, InvalidStateError, NotFoundError } from '../../../src/errors.js';
import type { DriverSnapshot, DriverVolume } from '../../../src/drivers/driver.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';
import { makeHostRoot, type KernelConfigfs } from '../target/kernel.js';
import { makeContext, type TestContext } from '../target/context.js';
import { FakeLvm } from './fake-lvm.js';

const GiB = 2 ** 30;
const VG = 'cinder-volumes';
const A = '11111111-aaaa-4bbb-8ccc-000000000001';
const B = '22222222-aaaa-4bbb-8ccc-000000000002';
const S = '33333333-aaaa-4bbb-8ccc-000000000003';

const vol = (id: string, size = 1): DriverVolume => ({ id, name: `volume-${id}`, size });
const snap = (id: string, v: DriverVolume): DriverSnapshot => ({ id, name: `snapshot-${id}`, volume_id: v.id, volume_size: v.size, volume: v });

test('parseVgs / parseLvs read real report lines (leading spaces, empty fields)', () => {
  assert.deepEqual(parseVgs('  cinder-volumes|10733223936|9659482112|2|Ab12Cd-34Ef\n'), [
    { name: 'cinder-volumes', sizeBytes: 10733223936, freeBytes: 9659482112, lvCount: 2, uuid: 'Ab12Cd-34Ef' },
  ]);
  const lvs = parseLvs('  cinder-volumes-pool|10196353024|twi-aotz--|||12.50\n  volume-x|1073741824|Vwi-a-tz--||cinder-volumes-pool|3.13\n  _snapshot-y|1073741824|swi-a-s---|volume-z||0.01\n');
  assert.equal(lvs.length, 3);
  assert.equal(lvs[0]!.dataPercent, 12.5);
  assert.equal(lvs[1]!.pool, 'cinder-volumes-pool');
  assert.equal(lvs[2]!.origin, 'volume-z');
  assert.ok(Number.isNaN(parseLvs('  v|1|-wi-a-----|||\n')[0]!.dataPercent));
  assert.equal(escapeSnapshotName('snapshot-1'), '_snapshot-1');
  assert.equal(escapeSnapshotName('clone-snap-1'), 'clone-snap-1');
  assert.equal(mapperName('cinder-volumes', '_snapshot-a-b'), 'cinder--volumes-_snapshot--a--b');
});

test('configuration errors name the key, before anything runs', async () => {
  const f = (key: string) => (e: unknown) => e instanceof InvalidConfigError && e.field === key;
  assert.throws(() => parseLvmConfig({ volume_group: 'bad/name' }), f('volume_group'));
  assert.throws(() => parseLvmConfig({ lvm_type: 'auto-thick' }), f('lvm_type'));
  assert.throws(() => parseLvmConfig({ volume_clear: 'shred-twice' }), f('volume_clear'));
  assert.throws(() => parseLvmConfig({ volume_clear_size: -1 }), f('volume_clear_size'));
  assert.throws(() => parseLvmConfig({ lvm_mirrors: 1 }), f('lvm_mirrors'));
  assert.throws(() => parseLvmConfig({ max_over_subscription_ratio: 0.5 }), f('max_over_subscription_ratio'));
  assert.throws(() => parseLvmConfig({ use_multipath_for_image_xfer: 'perhaps' }), f('use_multipath_for_image_xfer'));
  assert.throws(() => parseLvmConfig({ target_helper: 'iet' }), f('target_helper'));
  const c = parseLvmConfig({});
  assert.equal(c.volumeGroup, 'cinder-volumes');
  assert.equal(c.lvmType, 'default');
  assert.equal(c.volumeClear, 'zero');
  assert.equal(c.maxOverSubscriptionRatio, 20);
  const t = await makeContext('/nonexistent');
  try {
    assert.throws(() => new LvmDriver({ target_port: 'x' }, t.ctx), f('target_port'));
    assert.equal(t.exec.calls.length, 0);
  } finally {
    await t.cleanup();
  }
});

test('the registry knows lvm and Cinder\'s class path', async () => {
  assert.equal(driverFactory('cinder.volume.drivers.lvm.LVMVolumeDriver').name, 'lvm');
  const t = await makeContext('/nonexistent');
  try {
    const d = driverFactory('lvm').factory({ target_helper: 'nvmet', use_multipath_for_image_xfer: true }, t.ctx);
    assert.equal(d.driverName, 'lvm');
    assert.equal(d.connectorProtocol, 'NVMEOF');
    assert.equal(d.useMultipath, true);
  } finally {
    await t.cleanup();
  }
});

describe('LVM driver on a fake LVM', () => {
  let t: TestContext;
  let lvm: FakeLvm;
  let root: string;
  let fs: KernelConfigfs;
  let cleanupRoot: () => Promise<void>;

  const driver = (cfg: Record<string, unknown> = {}) => new LvmDriver({ volume_group: VG, ...cfg }, t.ctx, { configfs: fs });
  const commands = (from = 0) => t.exec.commands().slice(from);

  beforeEach(async () => {
    ({ root, configfs: fs, cleanup: cleanupRoot } = await makeHostRoot());
    t = await makeContext(root);
    lvm = new FakeLvm(VG, 10 * GiB);
    lvm.install(t.exec);
  });
  afterEach(async () => {
    await t.cleanup();
    await cleanupRoot();
  });

  test('checkForSetupError: a missing VG is a BackendError naming volume_group', async () => {
    const d = new LvmDriver({ volume_group: 'nope' }, t.ctx, { configfs: fs });
    await assert.rejects(d.checkForSetupError(), (e: unknown) => e instanceof BackendError && e.field === 'volume_group');
  });

  test('thin: checkForSetupError creates <vg>-pool from 95% of the free space, once', async () => {
    const d = driver({ lvm_type: 'thin' });
    await d.checkForSetupError();
    const mib = Math.floor((10 * GiB * 0.95) / 2 ** 20);
    assert.ok(commands().includes(`lvcreate -T -L ${mib}m ${VG}/${VG}-pool`));
    const n = t.exec.calls.length;
    await d.checkForSetupError();
    assert.ok(!commands(n).some((c) => c.startsWith('lvcreate')));
  });

  test('thick create / delete: lvcreate -L <n>g, zeroing before lvremove, deleting twice succeeds', async () => {
    const d = driver();
    await d.createVolume(vol(A, 2));
    assert.deepEqual(commands(), [`lvcreate -n volume-${A} ${VG} -L 2g`]);
    assert.equal(lvm.lvs.get(`volume-${A}`)!.size, 2 * GiB);
    await d.deleteVolume(vol(A, 2));
    assert.deepEqual(lvm.dd[0], ['dd', 'if=/dev/zero', `of=/dev/${VG}/volume-${A}`, 'bs=1M', 'count=2048', 'oflag=direct', 'conv=notrunc']);
    assert.ok(!lvm.lvs.has(`volume-${A}`));
    const n = t.exec.calls.length;
    await d.deleteVolume(vol(A, 2));
    assert.ok(!commands(n).some((c) => c.startsWith('lvremove')), 'a missing LV is not removed again');
  });

  test('volume_clear none and volume_clear_size limit the zeroing', async () => {
    const none = driver({ volume_clear: 'none' });
    await none.createVolume(vol(A));
    await none.deleteVolume(vol(A));
    assert.equal(lvm.dd.length, 0);
    const part = driver({ volume_clear_size: '100' });
    await part.createVolume(vol(B));
    await part.deleteVolume(vol(B));
    assert.ok(lvm.dd[0]!.includes('count=100'));
  });

  test('thin create lands in the pool; thin volumes are never zeroed', async () => {
    const d = driver({ lvm_type: 'thin' });
    await d.checkForSetupError();
    await d.createVolume(vol(A, 3));
    assert.ok(commands().includes(`lvcreate -T -V 3g -n volume-${A} ${VG}/${VG}-pool`));
    await d.deleteVolume(vol(A, 3));
    assert.equal(lvm.dd.length, 0);
  });

  test('a volume with snapshots cannot be deleted (Cinder VolumeIsBusy)', async () => {
    const d = driver();
    const v = vol(A);
    await d.createVolume(v);
    await d.createSnapshot(snap(S, v));
    await assert.rejects(d.deleteVolume(v), InvalidStateError);
    await d.deleteSnapshot(snap(S, v));
    await d.deleteVolume(v);
  });

  test('delete asks LVM once: one lvs report of the VG, then lvremove; a missing VG is nothing to delete', async () => {
    const d = driver({ lvm_type: 'thin' });
    await d.checkForSetupError();
    await d.createVolume(vol(A));
    const n = t.exec.calls.length;
    await d.deleteVolume(vol(A));
    const ran = commands(n);
    assert.equal(ran.length, 2, ran.join('\n'));
    assert.match(ran[0]!, new RegExp(`^lvs .* ${VG}$`));
    assert.match(ran[1]!, new RegExp(`^lvremove .* ${VG}/volume-${A}$`));
    assert.ok(!lvm.lvs.has(`volume-${A}`));
    const gone = new LvmDriver({ volume_group: 'nope' }, t.ctx, { configfs: fs });
    await gone.deleteVolume(vol(B));
  });

  test('thin: a thin snapshot in the same report still makes its origin busy', async () => {
    const d = driver({ lvm_type: 'thin' });
    await d.checkForSetupError();
    const v = vol(A);
    await d.createVolume(v);
    await d.createSnapshot(snap(S, v));
    await assert.rejects(d.deleteVolume(v), InvalidStateError);
    assert.ok(lvm.lvs.has(`volume-${A}`));
  });

  test('thick snapshot: escaped name, COW as large as the origin; deletion zeroes the -cow device', async () => {
    const d = driver();
    const v = vol(A);
    await d.createVolume(v);
    await d.createSnapshot(snap(S, v));
    assert.ok(commands().includes(`lvcreate --name _snapshot-${S} --snapshot ${VG}/volume-${A} -L ${GiB}b`));
    await d.deleteSnapshot(snap(S, v));
    assert.equal(lvm.dd[0]![2], `of=/dev/mapper/cinder--volumes-_snapshot--${S.replace(/-/g, '--')}-cow`);
    assert.ok(!lvm.lvs.has(`_snapshot-${S}`));
    await d.deleteSnapshot(snap(S, v));
  });

  test('thin snapshot has no size; snapshot of a missing volume is NotFound', async () => {
    const d = driver({ lvm_type: 'thin' });
    await d.checkForSetupError();
    const v = vol(A);
    await d.createVolume(v);
    const n = t.exec.calls.length;
    await d.createSnapshot(snap(S, v));
    assert.ok(commands(n).includes(`lvcreate --name _snapshot-${S} --snapshot ${VG}/volume-${A}`));
    await assert.rejects(d.createSnapshot(snap(S, vol(B))), NotFoundError);
  });

  test('thick clone: temporary snapshot, new LV, chunked dd with progress, temporary snapshot removed', async () => {
    const d = driver({ lvm_copy_chunk_mib: 512, volume_clear: 'none' });
    const src = vol(A);
    await d.createVolume(src);
    await d.createClonedVolume(vol(B), src);
    assert.ok(lvm.lvs.has(`volume-${B}`));
    assert.ok(!lvm.lvs.has(`clone-snap-${B}`));
    assert.deepEqual(lvm.dd.map((a) => a.slice(1, 6)), [
      [`if=/dev/${VG}/clone-snap-${B}`, `of=/dev/${VG}/volume-${B}`, 'bs=1M', 'skip=0', 'seek=0'],
      [`if=/dev/${VG}/clone-snap-${B}`, `of=/dev/${VG}/volume-${B}`, 'bs=1M', 'skip=512', 'seek=512'],
    ]);
    assert.deepEqual(t.progress, [
      ['clone volume', 0, GiB],
      ['clone volume', GiB / 2, GiB],
      ['clone volume', GiB, GiB],
    ]);
  });

  test('a failed thick clone removes the half-made volume and the temporary snapshot', async () => {
    const d = driver({ lvm_copy_chunk_mib: 256, volume_clear: 'none' });
    const src = vol(A);
    await d.createVolume(src);
    lvm.failDdAt = 2;
    await assert.rejects(d.createClonedVolume(vol(B), src), /Input\/output error/);
    assert.deepEqual([...lvm.lvs.keys()], [`volume-${A}`]);
  });

  test('thin clone and thin volume-from-snapshot are thin snapshots activated for good, grown when larger', async () => {
    const d = driver({ lvm_type: 'thin' });
    await d.checkForSetupError();
    const src = vol(A);
    await d.createVolume(src);
    const n = t.exec.calls.length;
    await d.createClonedVolume(vol(B, 2), src);
    assert.deepEqual(commands(n).filter((c) => !c.startsWith('lvs')), [
      `lvcreate --name volume-${B} --snapshot ${VG}/volume-${A}`,
      `lvchange -a y --yes -k n ${VG}/volume-${B}`,
      `lvextend -L 2g ${VG}/volume-${B}`,
    ]);
    assert.equal(lvm.lvs.get(`volume-${B}`)!.attr[9], '-', 'activation skip cleared');
    await d.createSnapshot(snap(S, src));
    const c = '44444444-aaaa-4bbb-8ccc-000000000004';
    await d.createVolumeFromSnapshot(vol(c), snap(S, src));
    assert.equal(lvm.lvs.get(`volume-${c}`)!.origin, `_snapshot-${S}`);
    assert.equal(lvm.dd.length, 0);
  });

  test('thick volume from snapshot copies the snapshot into a new LV with progress', async () => {
    const d = driver({ volume_clear: 'none' });
    const src = vol(A);
    await d.createVolume(src);
    await d.createSnapshot(snap(S, src));
    await d.createVolumeFromSnapshot(vol(B, 2), snap(S, src));
    assert.equal(lvm.lvs.get(`volume-${B}`)!.size, 2 * GiB);
    assert.equal(lvm.dd[0]![1], `if=/dev/${VG}/_snapshot-${S}`);
    assert.equal(t.progress.at(-1)![0], 'create volume from snapshot');
    assert.equal(t.progress.at(-1)![1], GiB, 'the snapshot size is copied');
    await assert.rejects(d.createVolumeFromSnapshot(vol('x', 1), { ...snap(S, src), volume_size: 2 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.size');
  });

  test('extend: lvextend -L <n>g; a thick origin with snapshots is deactivated around it; not growing is refused', async () => {
    const d = driver();
    const v = vol(A);
    await d.createVolume(v);
    let n = t.exec.calls.length;
    await d.extendVolume(v, 3);
    assert.ok(commands(n).includes(`lvextend -L 3g ${VG}/volume-${A}`));
    assert.ok(!commands(n).some((c) => c.startsWith('lvchange')));
    await assert.rejects(d.extendVolume(v, 3), (e: unknown) => e instanceof InvalidInputError && e.field === 'new_size');
    await d.createSnapshot(snap(S, { ...v, size: 3 }));
    n = t.exec.calls.length;
    await d.extendVolume({ ...v, size: 3 }, 4);
    assert.deepEqual(commands(n).filter((c) => !c.startsWith('lvs')), [`lvchange -a n ${VG}/volume-${A}`, `lvextend -L 4g ${VG}/volume-${A}`, `lvchange -a y --yes ${VG}/volume-${A}`]);
    await assert.rejects(d.extendVolume(vol(B), 2), NotFoundError);
  });

  test('thick stats: VG size/free, provisioned = used, allocated from volume-* LVs; cached until refresh', async () => {
    const d = driver({ max_over_subscription_ratio: '1.5', reserved_percentage: 5 });
    await d.createVolume(vol(A, 2));
    const s = await d.getVolumeStats(true);
    assert.equal(s.vendor_name, 'Open Source');
    assert.equal(s.storage_protocol, 'iSCSI');
    assert.equal(s.volume_backend_name, 'lvm-test');
    assert.deepEqual(s.pools![0], {
      pool_name: 'lvm-test',
      total_capacity_gb: 10,
      free_capacity_gb: 8,
      provisioned_capacity_gb: 2,
      allocated_capacity_gb: 2,
      total_volumes: 1,
      thin_provisioning_support: false,
      thick_provisioning_support: true,
      max_over_subscription_ratio: 1.5,
      reserved_percentage: 5,
      location_info: `LVMVolumeDriver:lvm-test:${VG}:default:0`,
      multiattach: true,
      QoS_support: false,
      backend_state: 'up',
    });
    const n = t.exec.calls.length;
    assert.equal(await d.getVolumeStats(false), s);
    assert.equal(t.exec.calls.length, n, 'cached stats run nothing');
    await d.createVolume(vol(B, 1));
    assert.equal(await d.getVolumeStats(false), s, 'a change does not refresh the report (Cinder: refresh=False returns the last one)');
    assert.equal((await d.getVolumeStats(true)).total_volumes, 2);
    lvm.lvs.set('volume-outside', { size: GiB, attr: '-wi-a-----', origin: '', pool: '', dataPercent: '' });
    assert.equal((await d.getVolumeStats(true)).total_volumes, 3);
  });

  test('thin stats: pool size, free from data%, provisioned = sum of thin LVs', async () => {
    const d = driver({ lvm_type: 'thin' });
    await d.checkForSetupError();
    await d.createVolume(vol(A, 4));
    await d.createVolume(vol(B, 5));
    lvm.lvs.get(`${VG}-pool`)!.dataPercent = '25.00';
    const s = await d.getVolumeStats(true);
    const pool = lvm.lvs.get(`${VG}-pool`)!.size;
    assert.equal(s.total_capacity_gb, Math.round((pool / GiB) * 100) / 100);
    assert.equal(s.free_capacity_gb, Math.round(((pool * 0.75) / GiB) * 100) / 100);
    assert.equal(s.provisioned_capacity_gb, 9);
    assert.equal(s.thin_provisioning_support, true);
    assert.equal(s.thick_provisioning_support, false);
  });

  test('thin stats come from one lvs report (no vgs); a missing VG is a BackendError naming volume_group', async () => {
    const d = driver({ lvm_type: 'thin' });
    await d.checkForSetupError();
    const n = t.exec.calls.length;
    await d.getVolumeStats(true);
    const ran = commands(n);
    assert.equal(ran.length, 1, ran.join('\n'));
    assert.match(ran[0]!, new RegExp(`^lvs .* ${VG}$`));
    const gone = new LvmDriver({ volume_group: 'nope', lvm_type: 'thin' }, t.ctx, { configfs: fs });
    await assert.rejects(gone.getVolumeStats(true), (e: unknown) => e instanceof BackendError && e.field === 'volume_group');
    const thick = new LvmDriver({ volume_group: 'nope' }, t.ctx, { configfs: fs });
    await assert.rejects(thick.getVolumeStats(true), (e: unknown) => e instanceof BackendError && e.field === 'volume_group');
  });

  test('manage existing renames into volume-<id> and reports the size rounded up; unknown refs are refused', async () => {
    const d = driver();
    lvm.lvs.set('legacy_data', { size: GiB + 4 * 2 ** 20, attr: '-wi-a-----', origin: '', pool: '', dataPercent: '' });
    assert.equal(await d.manageExistingGetSize(vol(A), { 'source-name': 'legacy_data' }), 2);
    const upd = await d.manageExisting(vol(A), { 'source-name': 'legacy_data' });
    assert.deepEqual(upd, { size: 2 });
    assert.ok(lvm.lvs.has(`volume-${A}`) && !lvm.lvs.has('legacy_data'));
    assert.ok(commands().includes(`lvrename ${VG} legacy_data volume-${A}`));
    await assert.rejects(d.manageExistingGetSize(vol(B), { 'source-name': 'missing' }), NotFoundError);
    await assert.rejects(d.manageExisting(vol(B), {}), (e: unknown) => e instanceof InvalidInputError && e.field === 'existing_ref.source-name');
    await assert.rejects(d.manageExisting(vol(B), { 'source-name': `volume-${A}` }), InvalidStateError);
  });

  test('export via LIO: the LV is activated when inactive, exported, mapped, and unmanage removes the export but keeps the LV', async () => {
    const d = driver({ target_ip_address: '127.0.0.1', target_secondary_ip_addresses: '127.0.0.2', use_multipath_for_image_xfer: 'true' });
    assert.equal(d.connectorProtocol, 'ISCSI');
    assert.equal(d.useMultipath, true);
    const v = vol(A);
    await d.createVolume(v);
    lvm.lvs.get(`volume-${A}`)!.attr = '-wi-------';
    const c: ConnectorProperties = { platform: 'x86_64', os_type: 'linux2', ip: '1.1.1.1', host: 'h', multipath: true, enforce_multipath: false, initiator: 'iqn.2004-10.com.example:h' };
    const upd = await d.createExport(v, c);
    assert.ok(commands().includes(`lvchange -a y --yes -K ${VG}/volume-${A}`));
    assert.equal(await fs.read(`/sys/kernel/config/target/core/iblock_0/volume-${A}/udev_path`), `/dev/${VG}/volume-${A}`);
    const info = await d.initializeConnection({ ...v, ...upd }, c);
    assert.equal(info.driver_volume_type, 'iscsi');
    assert.deepEqual(info.data.target_portals, ['127.0.0.1:3260', '127.0.0.2:3260']);
    assert.throws(() => d.validateConnector({ ...c, initiator: undefined }), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.initiator');
    await d.terminateConnection({ ...v, ...upd }, c);
    await d.unmanage({ ...v, ...upd });
    assert.deepEqual(await fs.list('/sys/kernel/config/target/iscsi'), []);
    assert.ok(lvm.lvs.has(`volume-${A}`));
    assert.ok(root.length > 0);
  });
});
