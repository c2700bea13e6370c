/**
 * The ibm_flashsystem driver against the SSH simulator: every driver method with its error
 * paths, attach/detach flows with host cleanup, host-name sanitizing, injection attempts.
 */
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { FlashSystemSimulator } from '../../../sims/flashsystem/index.js';
import { FlashSystemIscsiDriver } from '../../../src/drivers/ibm-flashsystem/index.js';
import { driverFactory } from '../../../src/drivers/registry.js';
import '../../../src/drivers/index.js';
import {
  AlreadyExistsError,
  BackendError,
  InsufficientCapacityError,
  InvalidConfigError,
  InvalidInputError,
  InvalidStateError,
  NotFoundError,
} from '../../../src/errors.js';
import { waitFor } from '../../../src/host/retry.js';
import { GIB, baseConfig, connector, driverContext, setupDriver, startSim, volume } from './helpers.js';

const IQN_A = 'iqn.1994-05.com.redhat:host-a';
const IQN_B = 'iqn.1994-05.com.redhat:host-b';

describe('ibm_flashsystem driver: registration and configuration', () => {
  it('is registered under its short name and Cinder class path', () => {
    assert.equal(driverFactory('ibm_flashsystem').name, 'ibm_flashsystem');
    assert.equal(driverFactory('cinder.volume.drivers.ibm.flashsystem_iscsi.FlashSystemISCSIDriver').name, 'ibm_flashsystem');
  });

  const cases: [string, Record<string, unknown>, string][] = [
    ['san_ip missing', { san_ip: '' }, 'san_ip'],
    ['san_ip with shell syntax', { san_ip: '1.2.3.4;reboot' }, 'san_ip'],
    ['port out of range', { san_ssh_port: 70000 }, 'san_ssh_port'],
    ['no password nor key', { san_password: undefined }, 'san_password'],
    ['protocol FC', { flashsystem_connection_protocol: 'FC' }, 'flashsystem_connection_protocol'],
    ['boolean garbage', { flashsystem_multihostmap_enabled: 'maybe' }, 'flashsystem_multihostmap_enabled'],
    ['target ip garbage', { target_ip_address: 'not-an-ip' }, 'target_ip_address'],
    ['host key garbage', { san_ssh_host_key: 'hello' }, 'san_ssh_host_key'],
    ['private key file missing', { san_password: undefined, san_private_key: '/nonexistent/key' }, 'san_private_key'],
    ['copy method', { flashsystem_copy_method: 'dd' }, 'flashsystem_copy_method'],
    ['pool name', { flashsystem_mdiskgrp: "p'; rm" }, 'flashsystem_mdiskgrp'],
  ];
  for (const [label, extra, field] of cases) {
    it(`rejects ${label} naming ${field}`, () => {
      const fake = { port: 2222, publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEoS205bLCzKGNVYZjWVEXQmThf57CNfN6S/nu20c7Ws' } as FlashSystemSimulator;
      const cfg = baseConfig(fake, extra);
      for (const k of Object.keys(extra)) if (extra[k] === undefined) delete cfg[k];
      assert.throws(
        () => new FlashSystemIscsiDriver(cfg, driverContext()),
        (e: unknown) => e instanceof InvalidConfigError && e.field === field,
      );
    });
  }
});

describe('ibm_flashsystem driver: set-up', () => {
  let sim: FlashSystemSimulator;
  before(async () => (sim = await startSim()));
  after(async () => sim.close());
  beforeEach(() => sim.state.clearFaults());

  it('reads system, pool, nodes and the iSCSI addresses of both nodes; FlashCopy is detected', async () => {
    const d = await setupDriver(sim);
    try {
      assert.deepEqual(
        d.nodeInfo.map((n) => [n.id, n.ioGroupId, n.ipv4]),
        [
          ['1', '0', ['192.168.1.10']],
          ['2', '0', ['192.168.1.11']],
        ],
      );
      assert.equal(d.usesFlashCopy, true);
    } finally {
      await d.close();
    }
  });

  it('check_for_setup_error fails before do_setup', async () => {
    const d = new FlashSystemIscsiDriver(baseConfig(sim), driverContext());
    await assert.rejects(d.checkForSetupError(), InvalidStateError);
    await d.close();
  });

  it('accepts a lower-case protocol and still finds the iSCSI nodes (upstream bug)', async () => {
    const d = await setupDriver(sim, { flashsystem_connection_protocol: 'iscsi' });
    try {
      const vol = volume();
      await d.createVolume(vol);
      const info = await d.initializeConnection(vol, connector('lower', 'iqn.2020-01.test:lower'));
      assert.equal(info.data.target_portal, '192.168.1.10:3260');
      await d.terminateConnection(vol, connector('lower', 'iqn.2020-01.test:lower'));
      await d.deleteVolume(vol);
    } finally {
      await d.close();
    }
  });

  const failures: [string, () => void, Record<string, unknown>, (e: unknown) => boolean][] = [
    ['open access on', () => sim.state.injectFault('lssystem', { kind: 'open_access' }), {}, (e) => e instanceof BackendError && /open_access_enabled=on/.test(e.message)],
    ['pool offline', () => sim.state.injectFault('lsmdiskgrp', { kind: 'pool_offline' }), {}, (e) => e instanceof BackendError && /offline/.test(e.message)],
    ['pool missing', () => undefined, { flashsystem_mdiskgrp: 'nosuchpool' }, (e) => e instanceof InvalidConfigError && e.field === 'flashsystem_mdiskgrp'],
    ['lsnode header mismatch', () => sim.state.injectFault('lsnode', { kind: 'header_mismatch' }), {}, (e) => e instanceof BackendError && /do not match/.test(e.message)],
    ['lssystem error', () => sim.state.injectFault('lssystem', { kind: 'error', code: 'CMMVC5786E' }), {}, (e) => e instanceof BackendError && (e.details as { cmmvc: string }).cmmvc === 'CMMVC5786E'],
    ['target IP not on the array', () => undefined, { target_ip_address: '192.168.1.99' }, (e) => e instanceof InvalidConfigError && e.field === 'target_ip_address'],
    ['port id not matching the IP', () => undefined, { flashsystem_iscsi_portid: 2 }, (e) => e instanceof InvalidConfigError && e.field === 'target_ip_address'],
    ['FlashCopy required but absent', () => (sim.state.flashCopy = false), { flashsystem_copy_method: 'flashcopy' }, (e) => e instanceof InvalidConfigError && e.field === 'flashsystem_copy_method'],
  ];
  for (const [label, arrange, extra, check] of failures) {
    it(`fails set-up clearly when ${label}`, async () => {
      arrange();
      const d = new FlashSystemIscsiDriver(baseConfig(sim, extra), driverContext());
      try {
        await assert.rejects(d.doSetup(), check);
      } finally {
        sim.state.flashCopy = true;
        await d.close();
      }
    });
  }

  it('fails set-up when the configured port is offline', async () => {
    const port = sim.state.ports.find((p) => p.ip === '192.168.1.10')!;
    port.state = 'offline';
    const d = new FlashSystemIscsiDriver(baseConfig(sim), driverContext());
    try {
      await assert.rejects(d.doSetup(), (e: unknown) => e instanceof BackendError && /offline/.test((e as Error).message));
    } finally {
      port.state = 'online';
      await d.close();
    }
  });

  it('without target_ip_address uses every configured port with the port id', async () => {
    const d = await setupDriver(sim, { target_ip_address: undefined });
    try {
      assert.deepEqual(d.nodeInfo.map((n) => n.ipv4), [['192.168.1.10'], ['192.168.1.11']]);
    } finally {
      await d.close();
    }
  });
});

describe('ibm_flashsystem driver: volumes, snapshots, clones (FlashCopy)', () => {
  let sim: FlashSystemSimulator;
  let d: FlashSystemIscsiDriver;
  const progress: [string, number, number][] = [];
  before(async () => {
    sim = await startSim();
    d = await setupDriver(sim, {}, driverContext(undefined, (op, done, total) => progress.push([op, done, total])));
  });
  after(async () => {
    await d.close();
    await sim.close();
  });
  beforeEach(() => sim.state.clearFaults());

  const vdisk = (name: string) => [...sim.state.vdisks.values()].find((x) => x.name === name);

  it('creates a volume of exactly size GiB in the pool and I/O group', async () => {
    const vol = volume(2);
    const update = await d.createVolume(vol);
    const vd = vdisk(vol.name)!;
    assert.equal(vd.capacity, 2 * GIB);
    assert.equal(vd.ioGroupId, 0);
    assert.deepEqual(update, { provider_id: String(vd.id) });
    assert.match(sim.state.commandLog.at(-1)!, /^svctask mkvdisk -name 'volume-[0-9a-f-]+' -mdiskgrp 'mdiskgrp0' -iogrp 0 -size 2 -unit gb$/);
  });

  it('refuses a duplicate volume (CMMVC6035E -> AlreadyExistsError)', async () => {
    const vol = volume();
    await d.createVolume(vol);
    await assert.rejects(d.createVolume(vol), (e: unknown) => e instanceof AlreadyExistsError && (e.details as { cmmvc: string }).cmmvc === 'CMMVC6035E');
  });

  it('reports a full pool as InsufficientCapacityError (CMMVC5860E)', async () => {
    await assert.rejects(d.createVolume(volume(5000)), InsufficientCapacityError);
  });

  it('rejects bad sizes and names before running anything', async () => {
    const before = sim.state.commandLog.length;
    await assert.rejects(d.createVolume({ ...volume(), size: 1.5 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.size');
    await assert.rejects(d.createVolume({ ...volume(), size: 0 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.size');
    await assert.rejects(d.createVolume({ id: 'x', name: "v'; svctask rmvdisk -force 0; echo '", size: 1 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.name');
    await assert.rejects(d.createVolume({ id: 'x', name: 'v$(reboot)', size: 1 }), InvalidInputError);
    await assert.rejects(d.createVolume({ id: 'x', name: '0starts-with-digit', size: 1 }), InvalidInputError);
    await assert.rejects(d.createVolume({ id: 'x', name: 'x'.repeat(64), size: 1 }), InvalidInputError);
    assert.equal(sim.state.commandLog.length, before);
  });

  it('deletes a volume, and deleting a missing one succeeds (upstream bug)', async () => {
    const vol = volume();
    await d.createVolume(vol);
    await d.deleteVolume(vol);
    assert.equal(vdisk(vol.name), undefined);
    await d.deleteVolume(vol);
    await d.deleteVolume(volume());
  });

  it('deletes a volume left as the target of a FlashCopy mapping (a failed copy elsewhere)', async () => {
    const src = volume();
    const dst = volume();
    await d.createVolume(src);
    await d.createVolume(dst);
    await sim.state.execute(`svctask mkfcmap -source '${src.name}' -target '${dst.name}' -name 'stale' -copyrate 0`);
    await sim.state.execute("svctask startfcmap -prep 'stale'");
    await d.deleteVolume(dst);
    assert.equal(vdisk(dst.name), undefined);
    assert.equal(sim.state.fcmaps.size, 0);
  });

  it('refuses to delete a mapped volume (CMMVC5840E -> InvalidStateError)', async () => {
    const vol = volume();
    await d.createVolume(vol);
    const c = connector('deleter', 'iqn.2020-01.test:deleter');
    await d.initializeConnection(vol, c);
    await assert.rejects(d.deleteVolume(vol), (e: unknown) => e instanceof InvalidStateError && (e.details as { cmmvc: string }).cmmvc === 'CMMVC5840E');
    await d.terminateConnection(vol, c);
    await d.deleteVolume(vol);
  });

  it('extends by the exact byte difference, also from an odd size', async () => {
    const vol = volume(1);
    await d.createVolume(vol);
    await d.extendVolume(vol, 3);
    assert.equal(vdisk(vol.name)!.capacity, 3 * GIB);
    vdisk(vol.name)!.capacity = 3 * GIB + 12345;
    await d.extendVolume(vol, 4);
    assert.equal(vdisk(vol.name)!.capacity, 4 * GIB);
    assert.match(sim.state.commandLog.at(-1)!, /^svctask expandvdisksize -size \d+ -unit b 'volume-/);
    const n = sim.state.commandLog.length;
    await d.extendVolume(vol, 4);
    assert.equal(sim.state.commandLog.filter((l, i) => i >= n && l.includes('expandvdisksize')).length, 0);
    await assert.rejects(d.extendVolume(vol, 2), (e: unknown) => e instanceof InvalidInputError && e.field === 'new_size');
    await assert.rejects(d.extendVolume(volume(), 2), NotFoundError);
  });

  it('snapshots with FlashCopy: same capacity, mapping gone afterwards, progress reported', async () => {
    const vol = volume(1);
    await d.createVolume(vol);
    progress.length = 0;
    const snap = { id: 's1', name: `snapshot-${vol.id}`, volume_id: vol.id, volume_size: 1, volume: vol };
    await d.createSnapshot(snap);
    assert.equal(vdisk(snap.name)!.capacity, vdisk(vol.name)!.capacity);
    assert.equal(sim.state.fcmaps.size, 0);
    assert.ok(sim.state.commandLog.some((l) => /^svctask mkfcmap -source 'volume-.*' -target 'snapshot-.*' -name 'brick-fc-snapshot-.*' -copyrate 100 -autodelete$/.test(l)));
    assert.ok(progress.length >= 2);
    assert.deepEqual(progress.at(-1), ['copy', GIB, GIB]);
    await d.deleteSnapshot(snap);
    assert.equal(vdisk(snap.name), undefined);
    await d.deleteSnapshot(snap); // already gone: success
  });

  it('creates a larger volume from a snapshot and refuses a smaller one', async () => {
    const src = volume(1);
    await d.createVolume(src);
    const snap = { id: 's2', name: `snapshot-${src.id}`, volume_id: src.id, volume_size: 1, volume: src };
    await d.createSnapshot(snap);
    const vol = volume(3);
    await d.createVolumeFromSnapshot(vol, snap);
    assert.equal(vdisk(vol.name)!.capacity, 3 * GIB);
    await assert.rejects(d.createVolumeFromSnapshot(volume(1), { ...snap, volume_size: 2 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume.size');
    await assert.rejects(d.createVolumeFromSnapshot(volume(1), { ...snap, name: 'snapshot-missing' }), NotFoundError);
  });

  it('clones a volume (same and larger size) and refuses a smaller target', async () => {
    const src = volume(2);
    await d.createVolume(src);
    const same = volume(2);
    await d.createClonedVolume(same, src);
    assert.equal(vdisk(same.name)!.capacity, 2 * GIB);
    const bigger = volume(4);
    await d.createClonedVolume(bigger, src);
    assert.equal(vdisk(bigger.name)!.capacity, 4 * GIB);
    await assert.rejects(d.createClonedVolume(volume(1), src), InvalidInputError);
  });

  it('deletes the new vdisk when the FlashCopy fails', async () => {
    const src = volume(1);
    await d.createVolume(src);
    sim.state.injectFault('startfcmap', { kind: 'error', code: 'CMMVC5907E' });
    const clone = volume(1);
    await assert.rejects(d.createClonedVolume(clone, src), InvalidStateError);
    assert.equal(vdisk(clone.name), undefined);
    assert.equal(sim.state.fcmaps.size, 0);
  });

  it('deletes the new vdisk when the FlashCopy stops mid-way', async () => {
    const src = volume(1);
    await d.createVolume(src);
    sim.state.copyDurationMs = 100_000;
    const clone = volume(1);
    const p = d.createClonedVolume(clone, src);
    const copying = await waitFor(() => [...sim.state.fcmaps.values()].find((m) => m.status === 'copying'), { timeoutMs: 10_000, description: 'the FlashCopy to start' });
    copying.status = 'stopped';
    try {
      await assert.rejects(p, (e: unknown) => e instanceof BackendError && /stopped/.test((e as Error).message));
    } finally {
      sim.state.copyDurationMs = 40;
    }
    assert.equal(vdisk(clone.name), undefined);
    assert.equal(sim.state.fcmaps.size, 0);
  });

  it('reports Cinder stats from the pool, cached until refresh', async () => {
    const s1 = await d.getVolumeStats(true);
    assert.equal(s1.vendor_name, 'IBM');
    assert.equal(s1.storage_protocol, 'iSCSI');
    assert.equal(s1.driver_version, '1.0.12');
    assert.equal(s1.volume_backend_name, 'fs1');
    assert.equal(s1.total_capacity_gb, 1024);
    assert.equal(s1.free_capacity_gb, Math.round((sim.state.freeCapacity() / GIB) * 100) / 100);
    assert.equal(s1.multiattach, true);
    assert.equal(s1.QoS_support, false);
    assert.equal(s1.reserved_percentage, 0);
    assert.equal(s1.location_info, 'FlashSystemDriver:0123456789ABCDEF:mdiskgrp0');
    await d.createVolume(volume(10));
    assert.equal((await d.getVolumeStats(false)).free_capacity_gb, s1.free_capacity_gb);
    assert.equal((await d.getVolumeStats(true)).free_capacity_gb, Math.round(((s1.free_capacity_gb as number) - 10) * 100) / 100);
    sim.state.injectFault('lsmdiskgrp', { kind: 'pool_offline' });
    await assert.rejects(d.getVolumeStats(true), BackendError);
  });

  it('manages an existing vdisk by name or id, with a rounded-up size, and unmanages without deleting', async () => {
    await sim.state.execute("svctask mkvdisk -name 'legacy_disk' -mdiskgrp mdiskgrp0 -iogrp 0 -size 1610612736 -unit b");
    const vol = volume();
    assert.equal(await d.manageExistingGetSize(vol, { 'source-name': 'legacy_disk' }), 2);
    const update = await d.manageExisting(vol, { 'source-name': 'legacy_disk' });
    assert.equal((update as { size: number }).size, 2);
    assert.ok(vdisk(vol.name));
    assert.equal(vdisk('legacy_disk'), undefined);
    await d.unmanage(vol);
    assert.ok(vdisk(vol.name));

    await sim.state.execute("svctask mkvdisk -name 'by_id' -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb");
    const id = vdisk('by_id')!.id;
    const vol2 = volume();
    assert.equal(await d.manageExistingGetSize(vol2, { 'source-id': String(id) }), 1);
    await d.manageExisting(vol2, { 'source-id': id });
    assert.equal(vdisk(vol2.name)!.id, id);
  });

  it('refuses bad manage references and mapped vdisks', async () => {
    const vol = volume();
    await assert.rejects(d.manageExistingGetSize(vol, {}), (e: unknown) => e instanceof InvalidInputError && e.field === 'existing_ref');
    await assert.rejects(d.manageExistingGetSize(vol, { 'source-name': 'nothing_here' }), NotFoundError);
    await assert.rejects(d.manageExistingGetSize(vol, { 'source-name': "x'; rmvdisk 0" }), InvalidInputError);
    await assert.rejects(d.manageExistingGetSize(vol, { 'source-id': '1; rmvdisk 0' }), InvalidInputError);
    const mapped = volume();
    await d.createVolume(mapped);
    const c = connector('manager', 'iqn.2020-01.test:manager');
    await d.initializeConnection(mapped, c);
    await assert.rejects(d.manageExistingGetSize(vol, { 'source-name': mapped.name }), InvalidStateError);
    await d.terminateConnection(mapped, c);
  });
});

describe('ibm_flashsystem driver: attach and detach', () => {
  let sim: FlashSystemSimulator;
  let d: FlashSystemIscsiDriver;
  before(async () => {
    sim = await startSim();
    d = await setupDriver(sim);
  });
  after(async () => {
    await d.close();
    await sim.close();
  });
  beforeEach(() => sim.state.clearFaults());

  const hostsNamed = (prefix: string) => [...sim.state.hosts.values()].filter((h) => h.name.startsWith(prefix));

  it('validates the connector: initiator required, IQN checked, before anything runs', async () => {
    const vol = volume();
    const n = sim.state.commandLog.length;
    const noInit = connector('h', IQN_A);
    delete noInit.initiator;
    assert.throws(() => d.validateConnector(noInit), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.initiator');
    await assert.rejects(d.initializeConnection(vol, noInit), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.initiator');
    await assert.rejects(d.initializeConnection(vol, connector('h', "iqn.2020-01.x:a'; svctask rmhost 0; '")), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.initiator');
    await assert.rejects(d.initializeConnection(vol, connector('', IQN_A)), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.host');
    assert.equal(sim.state.commandLog.length, n);
    d.validateConnector(connector('h', IQN_A));
  });

  it('maps at the lowest free LUN >= 1, returns the I/O group nodes, and is idempotent', async () => {
    const v1 = volume();
    const v2 = volume();
    await d.createVolume(v1);
    await d.createVolume(v2);
    const c = connector('compute-1', IQN_A);
    const i1 = await d.initializeConnection(v1, c);
    assert.deepEqual(i1, {
      driver_volume_type: 'iscsi',
      data: {
        target_discovered: false,
        target_portal: '192.168.1.10:3260',
        target_iqn: 'iqn.1986-03.com.ibm:2145.flashsystemsim.node1',
        target_lun: 1,
        volume_id: v1.id,
        target_portals: ['192.168.1.10:3260', '192.168.1.11:3260'],
        target_iqns: ['iqn.1986-03.com.ibm:2145.flashsystemsim.node1', 'iqn.1986-03.com.ibm:2145.flashsystemsim.node2'],
        target_luns: [1, 1],
      },
    });
    const i2 = await d.initializeConnection(v2, c);
    assert.equal(i2.data.target_lun, 2);
    const again = await d.initializeConnection(v1, c);
    assert.equal(again.data.target_lun, 1);
    const hosts = hostsNamed('compute-1-');
    assert.equal(hosts.length, 1);
    assert.match(hosts[0]!.name, /^compute-1-\d{8}$/);
    assert.deepEqual(hosts[0]!.iscsiNames, [IQN_A]);
    assert.equal(sim.state.mappingsOf({ hostId: hosts[0]!.id }).length, 2);
    assert.ok(sim.state.commandLog.some((l) => /^svctask mkhost -force -iscsiname 'iqn.1994-05.com.redhat:host-a' -name 'compute-1-\d{8}'$/.test(l)));

    // A LUN freed in the middle is reused.
    await d.terminateConnection(v1, c);
    const v3 = volume();
    await d.createVolume(v3);
    assert.equal((await d.initializeConnection(v3, c)).data.target_lun, 1);
    await d.terminateConnection(v2, c);
    await d.terminateConnection(v3, c);
    assert.equal(hostsNamed('compute-1-').length, 0, 'host deleted once it has no mappings');
  });

  for (const order of [
    ['A', 'B'],
    ['B', 'A'],
  ]) {
    it(`two hosts attached, detached ${order.join(' then ')}: -force multi-host map, hosts removed as they empty`, async () => {
      const vol = volume();
      await d.createVolume(vol);
      const conns: Record<string, ReturnType<typeof connector>> = { A: connector('node-a', IQN_A), B: connector('node-b', IQN_B) };
      const n = sim.state.commandLog.length;
      await d.initializeConnection(vol, conns.A!);
      await d.initializeConnection(vol, conns.B!);
      const log = sim.state.commandLog.slice(n);
      assert.equal(log.filter((l) => l.startsWith('svctask mkvdiskhostmap -force')).length, 1);
      const vd = [...sim.state.vdisks.values()].find((x) => x.name === vol.name)!;
      assert.equal(sim.state.mappingsOf({ vdiskId: vd.id }).length, 2);
      assert.equal(hostsNamed('node-').length, 2);

      await d.terminateConnection(vol, conns[order[0]!]!);
      assert.equal(sim.state.mappingsOf({ vdiskId: vd.id }).length, 1);
      assert.deepEqual(hostsNamed('node-').map((h) => h.name.split('-')[1]), [order[1]!.toLowerCase()]);
      await d.terminateConnection(vol, conns[order[1]!]!);
      assert.equal(sim.state.mappingsOf({ vdiskId: vd.id }).length, 0);
      assert.equal(hostsNamed('node-').length, 0);
      // Detaching again is a no-op success.
      await d.terminateConnection(vol, conns.A!);
      await d.deleteVolume(vol);
    });
  }

  it('refuses a multi-host map when flashsystem_multihostmap_enabled is false, leaving no new host', async () => {
    const d2 = await setupDriver(sim, { flashsystem_multihostmap_enabled: false });
    try {
      const vol = volume();
      await d2.createVolume(vol);
      await d2.initializeConnection(vol, connector('single-a', IQN_A));
      const n = sim.state.commandLog.length;
      await assert.rejects(d2.initializeConnection(vol, connector('single-b', IQN_B)), (e: unknown) => e instanceof InvalidStateError && /multihostmap/.test((e as Error).message));
      assert.ok(!sim.state.commandLog.slice(n).some((l) => l.includes('-force') && l.includes('mkvdiskhostmap')));
      assert.equal(hostsNamed('single-b').length, 0);
      assert.equal((await d2.getVolumeStats(true)).multiattach, false);
      await d2.terminateConnection(vol, connector('single-a', IQN_A));
      assert.equal(hostsNamed('single-').length, 0);
    } finally {
      await d2.close();
    }
  });

  it('finds a host whose name needed sanitizing again instead of creating another (upstream bug)', async () => {
    const v1 = volume();
    const v2 = volume();
    await d.createVolume(v1);
    await d.createVolume(v2);
    const weird = connector('9th host!é.example.com', 'iqn.2020-01.test:weird');
    const i1 = await d.initializeConnection(v1, weird);
    const i2 = await d.initializeConnection(v2, weird);
    const hosts = hostsNamed('_9th host');
    assert.equal(hosts.length, 1);
    assert.match(hosts[0]!.name, /^_9th host--\.example\.com-\d{8}$/);
    assert.deepEqual([i1.data.target_lun, i2.data.target_lun], [1, 2]);
    assert.equal((await d.initializeConnection(v1, weird)).data.target_lun, 1);
    const long = connector('x'.repeat(80), 'iqn.2020-01.test:long');
    await d.initializeConnection(v1, long);
    await d.initializeConnection(v2, long);
    assert.equal(hostsNamed('xxxx').length, 1);
    assert.equal(hostsNamed('xxxx')[0]!.name.length, 63);
    for (const c of [weird, long]) {
      await d.terminateConnection(v1, c);
      await d.terminateConnection(v2, c);
    }
    assert.equal(hostsNamed('_9th').length + hostsNamed('xxxx').length, 0);
  });

  it('uses a host made by another tool that already carries the IQN', async () => {
    await sim.state.execute("svctask mkhost -force -iscsiname 'iqn.2020-01.test:foreign' -name 'handmade'");
    const vol = volume();
    await d.createVolume(vol);
    const c = connector('somehost', 'iqn.2020-01.test:foreign');
    await d.initializeConnection(vol, c);
    assert.equal(hostsNamed('somehost').length, 0);
    assert.equal(sim.state.mappingsOf({ hostId: sim.state.findHost('handmade')!.id }).length, 1);
    await d.terminateConnection(vol, c);
    assert.equal(sim.state.findHost('handmade'), undefined, 'host emptied by the unmap is deleted');
  });

  it('keeps a hostile host name inert: sanitized and quoted', async () => {
    const vol = volume();
    await d.createVolume(vol);
    const before = sim.state.vdisks.size;
    const c = connector("evil'; svctask rmvdisk -force 0; echo `id` $(id) '", 'iqn.2020-01.test:evil');
    await d.initializeConnection(vol, c);
    const h = hostsNamed('evil')[0]!;
    assert.match(h.name, /^evil-- svctask rmvdisk -force 0- echo -id- --id- --\d{8}$/);
    assert.equal(sim.state.vdisks.size, before);
    assert.ok(!sim.state.commandLog.some((l) => l.includes(';') || l.includes('`') || l.includes('$(')));
    await d.terminateConnection(vol, c);
    assert.equal(hostsNamed('evil').length, 0);
  });

  it('serializes concurrent attaches of one new host: one host, distinct LUNs', async () => {
    const vols = [volume(), volume(), volume(), volume()];
    for (const v of vols) await d.createVolume(v);
    const c = connector('parallel', 'iqn.2020-01.test:parallel');
    const infos = await Promise.all(vols.map((v) => d.initializeConnection(v, c)));
    assert.deepEqual(infos.map((i) => i.data.target_lun).sort(), [1, 2, 3, 4]);
    assert.equal(hostsNamed('parallel-').length, 1);
    await Promise.all(vols.map((v) => d.terminateConnection(v, c)));
    assert.equal(hostsNamed('parallel-').length, 0);
  });

  it('initialize on a missing volume is NotFoundError; a failed map removes the host it created', async () => {
    const c = connector('failing', 'iqn.2020-01.test:failing');
    await assert.rejects(d.initializeConnection(volume(), c), NotFoundError);
    const vol = volume();
    await d.createVolume(vol);
    sim.state.injectFault('mkvdiskhostmap', { kind: 'error', code: 'CMMVC5786E' });
    await assert.rejects(d.initializeConnection(vol, c), (e: unknown) => e instanceof BackendError && (e.details as { cmmvc: string }).cmmvc === 'CMMVC5786E');
    assert.equal(hostsNamed('failing').length, 0);
    sim.state.injectFault('mkvdiskhostmap', { kind: 'output', stdout: 'something else\n' });
    await assert.rejects(d.initializeConnection(vol, c), (e: unknown) => e instanceof BackendError && /unexpected output/.test((e as Error).message));
  });

  it('terminate: unmapped, missing volume and unknown connector all succeed; a leftover empty host is removed', async () => {
    const vol = volume();
    await d.createVolume(vol);
    await d.terminateConnection(vol, connector('nobody', 'iqn.2020-01.test:nobody'));
    await d.terminateConnection(volume(), connector('nobody', 'iqn.2020-01.test:nobody'));
    await sim.state.execute("svctask mkhost -force -iscsiname 'iqn.2020-01.test:leftover' -name 'leftover-00000001'");
    await d.terminateConnection(vol, connector('leftover', 'iqn.2020-01.test:leftover'));
    assert.equal(sim.state.findHost('leftover-00000001'), undefined);
  });

  it('terminate with a null connector removes every mapping of the volume and the emptied hosts', async () => {
    const vol = volume();
    await d.createVolume(vol);
    await d.initializeConnection(vol, connector('all-a', IQN_A));
    await d.initializeConnection(vol, connector('all-b', IQN_B));
    await d.terminateConnection(vol, null);
    const vd = [...sim.state.vdisks.values()].find((x) => x.name === vol.name)!;
    assert.equal(sim.state.mappingsOf({ vdiskId: vd.id }).length, 0);
    assert.equal(hostsNamed('all-').length, 0);
  });

  it('picks the portal in the volume I/O group and fails clearly when the group has no iSCSI node', async () => {
    const vol = volume();
    await d.createVolume(vol);
    const vd = [...sim.state.vdisks.values()].find((x) => x.name === vol.name)!;
    vd.ioGroupId = 1;
    const c = connector('iogrp', 'iqn.2020-01.test:iogrp');
    await assert.rejects(d.initializeConnection(vol, c), (e: unknown) => e instanceof BackendError && /I\/O group 1/.test((e as Error).message));
    assert.equal(hostsNamed('iogrp').length, 0, 'the mapping made before the failure is undone');
    vd.ioGroupId = 0;
  });
});
