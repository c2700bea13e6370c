import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, readFileSync, writeFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, fixtureCopy, fixtureContext, hide, reveal } from './helpers.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { AttachJournal } from '../../../src/host/journal.js';
import type { HostContext } from '../../../src/host/context.js';
import { NvmeofConnector, parseNvmeofProperties } from '../../../src/initiator/connectors/nvmeof.js';
import {
  ensureNvmeHostIdentity,
  listNvmeControllers,
  namespacesOf,
  parseFabricsAddress,
  parseIdNsSize,
  selectNamespace,
} from '../../../src/host/nvme.js';
import { getConnectorProperties } from '../../../src/initiator/properties.js';
import { connectorFor } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { InvalidInputError, TargetPortalLoginError, VolumeDeviceNotFoundError, VolumePathNotRemovedError } from '../../../src/errors.js';

const NQN = 'nqn.2026-11.lab:subsys-volumes';
const UUID1 = '0c2f8e5a-6b1d-4f3e-9a7c-2d4e6f8a1b3c';
const UUID2 = '7e1d3c5b-9f2a-4b6c-8d0e-1f3a5c7e9b2d';
const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:4d2a6b8e-0c0f-4b9e-8f55-1a2b3c4d5e6f';
const PORTALS = [['127.0.0.1', 4420, 'tcp'], ['127.0.0.2', 4420, 'tcp']];
const FAST = { namespaceWaitMs: 200, reconnectWaitMs: 200, dmWaitMs: 300 };

/**
 * A fake kernel over a fixture tree: `nvme connect` reveals the controller for the portal's
 * address (and the namespaces it carries), `nvme disconnect` hides it again.
 */
function nvmeKernel(fixture: string, opts: { down?: string[]; connected?: string[] } = {}) {
  const fx = fixtureCopy(`nvme/${fixture}`);
  const { root, stash } = fx;
  const ctrlFor: Record<string, string> = { '127.0.0.1': 'nvme0', '127.0.0.2': 'nvme1' };
  const native = fixture === 'native-2portals';
  const heads = native ? ['nvme0n1', 'nvme0n2'] : [];
  const nsOf = (ctrl: string) => (native ? [] : [`${ctrl}n1`]);
  const hideCtrl = (c: string) => {
    hide(root, stash, `sys/class/nvme/${c}`);
    hide(root, stash, `dev/${c}`);
    for (const n of nsOf(c)) {
      hide(root, stash, `sys/block/${n}`);
      hide(root, stash, `dev/${n}`);
    }
    if (!native && !existsSync(join(root, 'sys/class/nvme/nvme0')) && !existsSync(join(root, 'sys/class/nvme/nvme1'))) {
      hide(root, stash, 'sys/block/dm-0');
      hide(root, stash, 'dev/dm-0');
    }
    const left = ['nvme0', 'nvme1'].some((x) => existsSync(join(root, `sys/class/nvme/${x}`)));
    if (native && !left) {
      for (const h of heads) {
        hide(root, stash, `sys/block/${h}`);
        hide(root, stash, `dev/${h}`);
        hide(root, stash, `sys/class/nvme-subsystem/nvme-subsys0/${h}`);
      }
    }
  };
  const revealCtrl = (c: string) => {
    reveal(root, stash, `sys/class/nvme/${c}`);
    reveal(root, stash, `dev/${c}`);
    for (const n of [...nsOf(c), ...heads]) {
      reveal(root, stash, `sys/block/${n}`);
      reveal(root, stash, `dev/${n}`);
      reveal(root, stash, `sys/class/nvme-subsystem/nvme-subsys0/${n}`);
    }
    if (!native && existsSync(join(root, 'sys/class/nvme/nvme0')) && existsSync(join(root, 'sys/class/nvme/nvme1'))) {
      reveal(root, stash, 'sys/block/dm-0');
      reveal(root, stash, 'dev/dm-0');
    }
  };
  for (const c of ['nvme0', 'nvme1']) if (!(opts.connected ?? []).includes(c)) hideCtrl(c);
  const ex = new RecordingExecutor();
  ex.on(['nvme', 'connect'], (argv) => {
    const addr = argv[argv.indexOf('-a') + 1]!;
    if ((opts.down ?? []).includes(addr)) return { exitCode: 1, stderr: 'Failed to write to /dev/nvme-fabrics: Connection refused\ncould not add new controller: failed to write to nvme-fabrics device\n' };
    const c = ctrlFor[addr]!;
    if (existsSync(join(root, `sys/class/nvme/${c}`))) return { exitCode: 114, stderr: 'already connected\n' };
    revealCtrl(c);
    return { stdout: `connecting to device: ${c}\n` };
  });
  ex.on(['nvme', 'disconnect', '-d'], (argv) => {
    const c = argv[3]!.replace('/dev/', '');
    hideCtrl(c);
    return { stdout: `NQN:${NQN} disconnected 1 controller(s)\n` };
  });
  ex.on(['nvme', 'ns-rescan'], {});
  ex.on(['blockdev', '--flushbufs'], {});
  ex.on(['multipath', '-f'], {});
  const { ctx } = fixtureContext(root, ex);
  return { root, ctx, ex, cleanup: fx.cleanup };
}

const props = (extra: Record<string, unknown> = {}) => ({ target_nqn: NQN, portals: PORTALS, vol_uuid: UUID1, ...extra });

test('parse: new form, legacy form, transport mapping and de-duplication', () => {
  const t = parseNvmeofProperties({ target_nqn: NQN, portals: [['10.0.0.1', '4420', 'RoCEv2'], ['10.0.0.2', 4421, 'tcp'], ['10.0.0.2', 4421, 'tcp']], volume_nguid: '0C2F8E5A6B1D4F3E9A7C2D4E6F8A1B3C', ns_id: '3' });
  assert.deepEqual(t.portals, [{ address: '10.0.0.1', port: 4420, transport: 'rdma' }, { address: '10.0.0.2', port: 4421, transport: 'tcp' }]);
  assert.equal(t.volumeNguid, '0c2f8e5a6b1d4f3e9a7c2d4e6f8a1b3c');
  assert.equal(t.nsId, 3);
  const legacy = parseNvmeofProperties({ nqn: NQN, target_portal: '10.0.0.9', target_port: 4420, transport_type: 'tcp', host_nqn: HOSTNQN });
  assert.deepEqual(legacy.portals, [{ address: '10.0.0.9', port: 4420, transport: 'tcp' }]);
  assert.equal(legacy.hostNqn, HOSTNQN);
});

test('parse: bad properties raise InvalidInputError naming the field, and nothing runs', async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ portals: PORTALS }, 'target_nqn'],
    [{ target_nqn: 'not-an-nqn', portals: PORTALS }, 'target_nqn'],
    [{ target_nqn: NQN, portals: [] }, 'portals'],
    [{ target_nqn: NQN, portals: [['127.0.0.1', 70000, 'tcp']] }, 'portals[0][1]'],
    [{ target_nqn: NQN, portals: [PORTALS[0], ['', 4420, 'tcp']] }, 'portals[1][0]'],
    [{ target_nqn: NQN, portals: PORTALS, vol_uuid: 'xyz' }, 'vol_uuid'],
    [{ target_nqn: NQN, portals: PORTALS, volume_nguid: '1234' }, 'volume_nguid'],
    [{ target_nqn: NQN, portals: PORTALS, ns_id: 0 }, 'ns_id'],
    [{ target_nqn: NQN, portals: PORTALS, host_nqn: 'host' }, 'host_nqn'],
    [{ nqn: NQN, target_port: 4420 }, 'target_portal'],
    [{ volume_replicas: [{}, {}], replica_count: 2 }, 'volume_replicas'],
  ];
  const k = nvmeKernel('native-2portals');
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST });
    for (const [p, field] of cases) {
      await assert.rejects(c.connectVolume(p), (e: unknown) => e instanceof InvalidInputError && e.field === field, `expected field ${field} for ${JSON.stringify(p)}`);
    }
    assert.deepEqual(k.ex.commands(), []);
  } finally {
    k.cleanup();
  }
});

test('sysfs parsing: address, controllers, namespaces, id-ns size', async () => {
  assert.deepEqual({ ...parseFabricsAddress('traddr=10.1.1.1,trsvcid=4420,src_addr=10.1.1.2\n') }, { traddr: '10.1.1.1', trsvcid: '4420', src_addr: '10.1.1.2' });
  assert.equal(parseIdNsSize(JSON.stringify({ nsze: 262144, flbas: 0, lbafs: [{ ms: 0, ds: 9, rp: 0 }] })), 134217728);
  assert.equal(parseIdNsSize(JSON.stringify({ nsze: 1000, flbas: 1, lbafs: [{ ds: 9 }, { ds: 12 }] })), 4096000);
  assert.equal(parseIdNsSize('{}'), undefined);
  const k = nvmeKernel('native-2portals', { connected: ['nvme0', 'nvme1'] });
  try {
    const ctrls = await listNvmeControllers(k.ctx);
    assert.deepEqual(ctrls.map((c) => [c.name, c.traddr, c.trsvcid, c.state]), [['nvme0', '127.0.0.1', '4420', 'live'], ['nvme1', '127.0.0.2', '4420', 'live']]);
    const ns = await namespacesOf(k.ctx, ctrls);
    assert.deepEqual(ns.map((n) => [n.name, n.nsid, n.controllers.join(',')]), [['nvme0n1', 1, 'nvme0,nvme1'], ['nvme0n2', 2, 'nvme0,nvme1']]);
    assert.equal(ns[1]!.nguid, undefined, 'an all-zero NGUID counts as absent');
    // uuid beats nsid, nguid beats nsid, nsid alone works, nothing matches -> undefined
    assert.equal(selectNamespace(ns, { uuid: UUID1, nsid: 2 })!.name, 'nvme0n1');
    assert.equal(selectNamespace(ns, { nguid: UUID1.replace(/-/g, ''), nsid: 2 })!.name, 'nvme0n1');
    assert.equal(selectNamespace(ns, { nsid: 2 })!.name, 'nvme0n2');
    assert.equal(selectNamespace(ns, { uuid: UUID2 })!.name, 'nvme0n2');
    assert.equal(selectNamespace(ns, { uuid: '11111111-2222-3333-4444-555555555555' }), undefined);
    assert.equal(selectNamespace(ns, {}), undefined, 'two namespaces and no identifier: no guess');
  } finally {
    k.cleanup();
  }
});

test('native multipath: every portal is connected in parallel and the head is found by uuid', async () => {
  const k = nvmeKernel('native-2portals');
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 2, timings: FAST });
    const info = await c.connectVolume(props({ ns_id: 2 }));
    assert.equal(info.path, '/dev/nvme0n1');
    assert.equal(info.type, 'block');
    assert.equal(info.uuid, UUID1);
    const connects = k.ex.commands().filter((x) => x.startsWith('nvme connect'));
    assert.deepEqual(connects.sort(), [
      `nvme connect -t tcp -a 127.0.0.1 -s 4420 -n ${NQN} -Q 128 -l -1 -q ${HOSTNQN}`,
      `nvme connect -t tcp -a 127.0.0.2 -s 4420 -n ${NQN} -Q 128 -l -1 -q ${HOSTNQN}`,
    ]);
    assert.deepEqual(await c.getVolumePaths(props()), ['/dev/nvme0n1']);
  } finally {
    k.cleanup();
  }
});

test('without multipath only the first portal that connects is used; host_nqn overrides /etc/nvme/hostnqn', async () => {
  const k = nvmeKernel('native-2portals');
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: false, deviceScanAttempts: 1, timings: FAST });
    const other = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
    const info = await c.connectVolume(props({ host_nqn: other }));
    assert.equal(info.path, '/dev/nvme0n1');
    assert.deepEqual(k.ex.commands().filter((x) => x.startsWith('nvme connect')), [`nvme connect -t tcp -a 127.0.0.1 -s 4420 -n ${NQN} -Q 128 -l -1 -q ${other}`]);
  } finally {
    k.cleanup();
  }
});

test('one portal down: the volume attaches through the other', async () => {
  const k = nvmeKernel('native-2portals', { down: ['127.0.0.1'] });
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: false, deviceScanAttempts: 1, timings: FAST });
    const info = await c.connectVolume(props());
    assert.equal(info.path, '/dev/nvme0n1');
    assert.equal(k.ex.commands().filter((x) => x.startsWith('nvme connect')).length, 2);
    assert.deepEqual((await listNvmeControllers(k.ctx)).map((x) => x.name), ['nvme1']);
  } finally {
    k.cleanup();
  }
});

test('every portal down: TargetPortalLoginError and nothing left behind', async () => {
  const k = nvmeKernel('native-2portals', { down: ['127.0.0.1', '127.0.0.2'] });
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST });
    await assert.rejects(c.connectVolume(props()), (e: unknown) => e instanceof TargetPortalLoginError && e.field === 'portals');
    assert.deepEqual(await listNvmeControllers(k.ctx), []);
  } finally {
    k.cleanup();
  }
});

test('a namespace that never appears: VolumeDeviceNotFoundError and only the controllers this call created are disconnected', async () => {
  const k = nvmeKernel('native-2portals', { connected: ['nvme0'] });
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 2, timings: FAST });
    await assert.rejects(c.connectVolume(props({ vol_uuid: '11111111-2222-3333-4444-555555555555' })), (e: unknown) => e instanceof VolumeDeviceNotFoundError && e.field === 'vol_uuid');
    const cmds = k.ex.commands();
    assert.ok(cmds.includes('nvme ns-rescan /dev/nvme0'), 'the live controller is rescanned, not reconnected');
    assert.deepEqual(cmds.filter((x) => x.startsWith('nvme connect')).map((x) => x.split(' ')[5]), ['127.0.0.2']);
    assert.deepEqual(cmds.filter((x) => x.startsWith('nvme disconnect')), ['nvme disconnect -d /dev/nvme1']);
    assert.deepEqual((await listNvmeControllers(k.ctx)).map((x) => x.name), ['nvme0']);
  } finally {
    k.cleanup();
  }
});

test('disconnect flushes, and leaves controllers that carry another volume in use connected', async () => {
  const k = nvmeKernel('native-2portals', { connected: ['nvme0', 'nvme1'] });
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST });
    // the other volume (nsid 2) is attached through Brick too
    assert.equal((await c.connectVolume(props({ vol_uuid: UUID2 }))).path, '/dev/nvme0n2');
    const before = k.ex.commands().length;
    await c.disconnectVolume(props(), { type: 'block', path: '/dev/nvme0n1' });
    assert.deepEqual(k.ex.commands().slice(before), ['blockdev --flushbufs /dev/nvme0n1']);
    // once that one goes too, the controllers go
    await c.disconnectVolume(props({ vol_uuid: UUID2 }), { type: 'block', path: '/dev/nvme0n2' });
    assert.deepEqual(k.ex.commands().slice(before + 1), ['blockdev --flushbufs /dev/nvme0n2', 'nvme disconnect -d /dev/nvme0', 'nvme disconnect -d /dev/nvme1']);
  } finally {
    k.cleanup();
  }
});

test('another namespace that is mounted keeps the controllers; one nobody uses does not', async () => {
  const k = nvmeKernel('native-2portals', { connected: ['nvme0', 'nvme1'] });
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST });
    mkdirSync(join(k.root, 'proc'), { recursive: true });
    writeFileSync(join(k.root, 'proc/mounts'), '/dev/vda1 / ext4 rw,relatime 0 0\n/dev/nvme0n2 /srv/data xfs rw,relatime 0 0\n');
    await c.disconnectVolume(props(), { type: 'block', path: '/dev/nvme0n1' });
    assert.deepEqual(k.ex.commands(), ['blockdev --flushbufs /dev/nvme0n1']);
    writeFileSync(join(k.root, 'proc/mounts'), '/dev/vda1 / ext4 rw,relatime 0 0\n');
    await c.disconnectVolume(props(), { type: 'block', path: '/dev/nvme0n1' });
    assert.deepEqual(k.ex.commands().slice(1), ['blockdev --flushbufs /dev/nvme0n1', 'nvme disconnect -d /dev/nvme0', 'nvme disconnect -d /dev/nvme1']);
  } finally {
    k.cleanup();
  }
});

test('disconnect of the last namespace disconnects every controller; a second disconnect is a no-op', async () => {
  const k = nvmeKernel('native-2portals', { connected: ['nvme0', 'nvme1'] });
  try {
    // The other volume (nsid 2) was removed from the subsystem.
    for (const p of ['sys/class/nvme/nvme0/nvme0c0n2', 'sys/class/nvme/nvme1/nvme0c1n2', 'sys/block/nvme0n2', 'dev/nvme0n2']) rmSync(join(k.root, p), { recursive: true });
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST });
    await c.disconnectVolume(props(), null);
    assert.deepEqual(k.ex.commands(), ['blockdev --flushbufs /dev/nvme0n1', 'nvme disconnect -d /dev/nvme0', 'nvme disconnect -d /dev/nvme1']);
    assert.deepEqual(await listNvmeControllers(k.ctx), []);
    await c.disconnectVolume(props(), { type: 'block', path: '/dev/nvme0n1' });
    assert.equal(k.ex.commands().length, 3);
  } finally {
    k.cleanup();
  }
});

test('a failing flush stops the disconnect unless force; ignoreErrors swallows the error', async () => {
  const k = nvmeKernel('native-2portals', { connected: ['nvme0', 'nvme1'] });
  try {
    for (const p of ['sys/class/nvme/nvme0/nvme0c0n2', 'sys/class/nvme/nvme1/nvme0c1n2', 'sys/block/nvme0n2', 'dev/nvme0n2']) rmSync(join(k.root, p), { recursive: true });
    k.ex.on(['blockdev', '--flushbufs'], { exitCode: 1, stderr: 'blockdev: ioctl error on BLKFLSBUF: Input/output error\n' });
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST });
    await assert.rejects(c.disconnectVolume(props(), null), VolumePathNotRemovedError);
    assert.equal(k.ex.commands().filter((x) => x.startsWith('nvme disconnect')).length, 0);
    await assert.rejects(c.disconnectVolume(props(), null, { force: true }), VolumePathNotRemovedError);
    assert.equal(k.ex.commands().filter((x) => x.startsWith('nvme disconnect')).length, 2);
    await c.disconnectVolume(props(), null, { ignoreErrors: true });
  } finally {
    k.cleanup();
  }
});

test('native multipath off: dm-multipath map over both paths is returned and flushed on disconnect', async () => {
  const k = nvmeKernel('dm-2portals');
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST });
    const info = await c.connectVolume(props());
    assert.equal(info.path, '/dev/dm-0');
    assert.equal(info.multipath_id, `uuid.${UUID1}`);
    await c.disconnectVolume(props(), info);
    const cmds = k.ex.commands().filter((x) => !x.startsWith('nvme connect'));
    assert.deepEqual(cmds, [`multipath -f uuid.${UUID1}`, 'blockdev --flushbufs /dev/nvme0n1', 'blockdev --flushbufs /dev/nvme1n1', 'nvme disconnect -d /dev/nvme0', 'nvme disconnect -d /dev/nvme1']);
    assert.deepEqual(await listNvmeControllers(k.ctx), []);
  } finally {
    k.cleanup();
  }
});

test('legacy properties and the NVME alias through the factory; nsid selection', async () => {
  const k = nvmeKernel('native-2portals');
  try {
    const c = connectorFor('nvme', { ctx: k.ctx, deviceScanAttempts: 1, timings: FAST });
    assert.equal(c.protocol, 'NVMEOF');
    const info = await c.connectVolume({ nqn: NQN, target_portal: '127.0.0.2', target_port: '4420', transport_type: 'tcp', ns_id: 2 });
    assert.equal(info.path, '/dev/nvme0n2');
    assert.deepEqual(k.ex.commands().filter((x) => x.startsWith('nvme connect')).map((x) => x.split(' ')[5]), ['127.0.0.2']);
  } finally {
    k.cleanup();
  }
});

test('extend: rescans, reads the target size from id-ns and waits for sysfs to show it', async () => {
  const k = nvmeKernel('native-2portals', { connected: ['nvme0', 'nvme1'] });
  try {
    k.ex.on(['nvme', 'id-ns'], () => {
      writeFileSync(join(k.root, 'sys/block/nvme0n1/size'), '262144\n');
      return { stdout: JSON.stringify({ nsze: 262144, ncap: 262144, flbas: 0, lbafs: [{ ms: 0, ds: 9, rp: 0 }] }) };
    });
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST });
    assert.equal(await c.extendVolume(props()), 134217728);
    assert.deepEqual(k.ex.commands(), ['nvme ns-rescan /dev/nvme0', 'nvme ns-rescan /dev/nvme1', 'nvme id-ns /dev/nvme0n1 -o json']);
  } finally {
    k.cleanup();
  }
});

test('host identity: created when missing (hostid from the NQN uuid), kept when present, reported by getConnectorProperties', async () => {
  const k = nvmeKernel('native-2portals');
  try {
    rmSync(join(k.root, 'etc/nvme'), { recursive: true });
    k.ex.on(['nvme', 'gen-hostnqn'], { stdout: 'nqn.2014-08.org.nvmexpress:uuid:12345678-90ab-cdef-1234-567890abcdef\n' });
    const id = await ensureNvmeHostIdentity(k.ctx);
    assert.deepEqual(id, { hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:12345678-90ab-cdef-1234-567890abcdef', hostid: '12345678-90ab-cdef-1234-567890abcdef' });
    assert.equal(readFileSync(join(k.root, 'etc/nvme/hostnqn'), 'utf8'), `${id.hostnqn}\n`);
    const again = await ensureNvmeHostIdentity(k.ctx);
    assert.deepEqual(again, id);
    assert.equal(k.ex.commands().filter((x) => x === 'nvme gen-hostnqn').length, 1);
    const cp = await getConnectorProperties({ hostRoot: k.root });
    assert.equal(cp.nqn, id.hostnqn);
    assert.equal(cp.nvme_hostid, id.hostid);
  } finally {
    k.cleanup();
  }
});

test('host identity without nvme-cli: a uuid-based NQN is generated', async () => {
  const k = nvmeKernel('native-2portals');
  try {
    rmSync(join(k.root, 'etc/nvme'), { recursive: true });
    const id = await ensureNvmeHostIdentity(k.ctx);
    assert.match(id.hostnqn, /^nqn\.2014-08\.org\.nvmexpress:uuid:[0-9a-f-]{36}$/);
    assert.ok(id.hostnqn.endsWith(id.hostid));
  } finally {
    k.cleanup();
  }
});

test('connect without /etc/nvme/hostnqn persists a host identity first and connects with it', async () => {
  const k = nvmeKernel('native-2portals');
  try {
    rmSync(join(k.root, 'etc/nvme'), { recursive: true });
    k.ex.on(['nvme', 'gen-hostnqn'], { stdout: 'nqn.2014-08.org.nvmexpress:uuid:12345678-90ab-cdef-1234-567890abcdef\n' });
    const c = new NvmeofConnector(k.ctx, { useMultipath: false, deviceScanAttempts: 1, timings: FAST });
    await c.connectVolume(props());
    assert.equal(readFileSync(join(k.root, 'etc/nvme/hostid'), 'utf8').trim(), '12345678-90ab-cdef-1234-567890abcdef');
    assert.ok(k.ex.commands().some((x) => x.startsWith('nvme connect') && x.endsWith('-q nqn.2014-08.org.nvmexpress:uuid:12345678-90ab-cdef-1234-567890abcdef')));
  } finally {
    k.cleanup();
  }
});

test('the fixture trees use the attribute names and formats a real 6.1 kernel shows (lab capture)', async () => {
  const cap = JSON.parse(readFileSync(join(FIXTURES, 'nvme/lab-capture-6.1.0-56.json'), 'utf8')) as Record<string, string>;
  // controller attributes the code reads exist on the real kernel, in the same format
  for (const c of ['nvme0', 'nvme1']) {
    for (const a of ['subsysnqn', 'transport', 'address', 'state', 'hostnqn']) assert.ok(cap[`/sys/class/nvme/${c}/${a}`] !== undefined, `${c}/${a}`);
    const addr = parseFabricsAddress(cap[`/sys/class/nvme/${c}/address`]!);
    assert.match(addr.traddr!, /^127\.0\.0\.[12]$/);
    assert.equal(addr.trsvcid, '4420');
  }
  // native multipath: per-controller path entries nvme<subsys>c<ctrl>n<ns> that carry the namespace ids too
  assert.match(cap['/sys/class/nvme/nvme0/nvme0c0n1']!, /\bnguid\b.*\bnsid\b.*\buuid\b.*\bwwid\b/);
  assert.equal(cap['/sys/module/nvme_core/parameters/multipath'], 'Y');
  // head attributes: uuid and nguid in UUID form, wwid "uuid.<uuid>"
  assert.equal(cap['/sys/block/nvme0n1/wwid'], `uuid.${cap['/sys/block/nvme0n1/uuid']}`);
  assert.match(cap['/sys/block/nvme0n1/nguid']!, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  // and the fixture tree has the same shapes
  const fx = (p: string) => readFileSync(join(FIXTURES, 'nvme/native-2portals', p), 'utf8').trim();
  assert.match(fx('sys/class/nvme/nvme0/address'), /^traddr=[\d.]+,trsvcid=\d+,src_addr=[\d.]+$/);
  assert.match(fx('sys/block/nvme0n1/nguid'), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(fx('sys/block/nvme0n1/wwid'), `uuid.${fx('sys/block/nvme0n1/uuid')}`);
  assert.ok(existsSync(join(FIXTURES, 'nvme/native-2portals/sys/class/nvme/nvme0/nvme0c0n1')));
  assert.equal(fx('sys/class/nvme/nvme0/ctrl_loss_tmo'), cap['/sys/class/nvme/nvme0/ctrl_loss_tmo'], 'connected with -l -1: ctrl_loss_tmo off');
});

/** A journal in a scratch directory, and the fake kernel's context with it. */
function journaled(k: ReturnType<typeof nvmeKernel>): { journal: AttachJournal; ctx: HostContext; kinds: () => Promise<string[]>; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'brick-nvme-journal-'));
  const journal = new AttachJournal(join(dir, 'journal'));
  return {
    journal,
    ctx: { ...k.ctx, journal },
    kinds: async () => (await journal.resources()).map((r) => `${r.kind} ${r.name}`).sort(),
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}

test('journal: each controller is recorded before its nvme connect; the disconnect removes the records and the attachment', async () => {
  const k = nvmeKernel('native-2portals');
  const j = journaled(k);
  try {
    const missing: Promise<string | undefined>[] = [];
    const spy = { rootHelper: k.ex.rootHelper, run: (argv: readonly string[], o?: Parameters<typeof k.ex.run>[1]) => {
      if (argv[0] === 'nvme' && argv[1] === 'connect') {
        const name = `${NQN},tcp,${argv[argv.indexOf('-a') + 1]},4420`;
        missing.push(j.journal.resource('nvme-controller', name).then((r) => (r ? undefined : name)));
      }
      return k.ex.run(argv, o);
    } };
    const ctx = { ...j.ctx, executor: spy };
    const info = await new NvmeofConnector(ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST }).connectVolume(props());
    assert.equal(info.path, '/dev/nvme0n1');
    assert.equal(missing.length, 2);
    assert.deepEqual((await Promise.all(missing)).filter(Boolean), [], 'recorded before nvme connect ran');
    assert.deepEqual(await j.kinds(), [`nvme-controller ${NQN},tcp,127.0.0.1,4420`, `nvme-controller ${NQN},tcp,127.0.0.2,4420`]);
    const [entry] = await j.journal.attachments();
    assert.deepEqual([entry?.phase, entry?.deviceInfo?.path, entry?.identity.wwid], ['done', '/dev/nvme0n1', UUID1]);

    await new NvmeofConnector(ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST }).disconnectVolume(props(), info);
    assert.deepEqual(await listNvmeControllers(k.ctx), []);
    assert.deepEqual(await j.kinds(), []);
    assert.deepEqual(await j.journal.attachments(), []);
  } finally {
    j.done();
    k.cleanup();
  }
});

test('journal: a connect that fails leaves no attachment and no controller record', async () => {
  const k = nvmeKernel('native-2portals', { down: ['127.0.0.1', '127.0.0.2'] });
  const j = journaled(k);
  try {
    await assert.rejects(new NvmeofConnector(j.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST }).connectVolume(props()), TargetPortalLoginError);
    assert.deepEqual(await j.kinds(), []);
    assert.deepEqual(await j.journal.attachments(), []);
  } finally {
    j.done();
    k.cleanup();
  }
});

test('journal: one portal down leaves only the live controller recorded', async () => {
  const k = nvmeKernel('native-2portals', { down: ['127.0.0.1'] });
  const j = journaled(k);
  try {
    await new NvmeofConnector(j.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST }).connectVolume(props());
    assert.deepEqual(await j.kinds(), [`nvme-controller ${NQN},tcp,127.0.0.2,4420`]);
  } finally {
    j.done();
    k.cleanup();
  }
});

test('journal: with dm-multipath the map is recorded; a disconnect in a new process with no device info removes map and controllers', async () => {
  const k = nvmeKernel('dm-2portals');
  const j = journaled(k);
  try {
    const info = await new NvmeofConnector(j.ctx, { useMultipath: true, deviceScanAttempts: 1, timings: FAST }).connectVolume(props());
    assert.equal(info.path, '/dev/dm-0');
    assert.ok((await j.kinds()).includes(`multipath-map uuid.${UUID1}`));
    // As a kill -9 before the attach finished would leave it: no device info in the record.
    const entry = (await j.journal.attachments())[0]!;
    const { deviceInfo: _dropped, ...rest } = entry;
    writeFileSync(join(j.journal.dir, 'attachments', `${entry.key}.json`), JSON.stringify({ ...rest, phase: 'running' }));
    // A connector without multipath (the caller does not say): only the journal leads to the map.
    await new NvmeofConnector(j.ctx, { useMultipath: false, deviceScanAttempts: 1, timings: FAST }).disconnectVolume(props(), null);
    assert.ok(k.ex.commands().includes(`multipath -f uuid.${UUID1}`), 'the map the journal named was flushed');
    assert.deepEqual(await listNvmeControllers(k.ctx), []);
    assert.deepEqual(await j.kinds(), []);
    assert.deepEqual(await j.journal.attachments(), []);
  } finally {
    j.done();
    k.cleanup();
  }
});
