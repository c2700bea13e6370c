/**
 * Lab tests of the NVMEOF connector against the kernel's nvmet-tcp target and the real nvme-cli,
 * nvme-fabrics and native NVMe multipath of the lab VM. Data written through the returned device
 * is checked in the namespace's backing file (and the other way round); every test ends with the
 * leftovers probe showing nothing beyond the baseline.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startInitiatorDaemons, createNvmetTarget, verifyData, assertNoLeftovers, probeLeftovers, loopBacked, LAB_HOST_NQN, run, type Backing, type Leftovers, type NvmetTarget } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import type { Connector } from '../../src/initiator/connector.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import { listNvmeControllers, nativeNvmeMultipathEnabled } from '../../src/host/nvme.js';
import { createHostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';
import { VolumeDeviceNotFoundError } from '../../src/errors.js';

const P1 = { addr: '127.0.0.1', port: 4420 };
const P2 = { addr: '127.0.0.2', port: 4420 };
let seq = 0;
let baseline: Partial<Leftovers> = {};
// A short lock bound: LockManager keeps a timer of the bound alive after each lock, which would hold the process open.
const host = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 120_000 }), locks: new LockManager('/run/brick-locks', 20_000) });

function nqn(): string {
  return `nqn.2026-11.lab.brick:nvmeof-${process.pid}-${++seq}`;
}

function connector(multipath: boolean): Connector {
  return connectorFor('NVMEOF', { useMultipath: multipath, ctx: host, deviceScanAttempts: 3, timings: { namespaceWaitMs: 3_000 } });
}

function portals(...ps: { addr: string; port: number }[]): [string, number, string][] {
  return ps.map((p) => [p.addr, p.port, 'tcp']);
}

/** Grow a loop-backed namespace: the file, the loop device, then nvmet's view of it. */
async function growNamespace(t: NvmetTarget, nsid: number, b: Backing, bytes: number): Promise<void> {
  fs.truncateSync(b.file, bytes);
  await run(['losetup', '-c', b.dev]);
  fs.writeFileSync(`/sys/kernel/config/nvmet/subsystems/${t.nqn}/namespaces/${nsid}/revalidate_size`, '1');
}

/** Save what the real kernel shows (controller and namespace attributes) under $LAB_OUT, to keep the unit fixtures honest. */
function captureSysfs(ctrls: string[], head: string): void {
  const out = process.env.LAB_OUT;
  if (!out) return;
  const dump: Record<string, string> = {};
  const grab = (dir: string) => {
    for (const e of fs.readdirSync(dir)) {
      const p = `${dir}/${e}`;
      try {
        if (fs.lstatSync(p).isFile()) dump[p] = fs.readFileSync(p, 'utf8').trim();
        else if (fs.lstatSync(p).isDirectory() && /^nvme\d+c\d+n\d+$/.test(e)) dump[p] = `<dir: ${fs.readdirSync(p).join(' ')}>`;
      } catch {
        /* write-only or unreadable attribute */
      }
    }
  };
  for (const c of ctrls) grab(`/sys/class/nvme/${c}`);
  grab(`/sys/block/${head}`);
  dump['/sys/module/nvme_core/parameters/multipath'] = fs.readFileSync('/sys/module/nvme_core/parameters/multipath', 'utf8').trim();
  for (const s of fs.readdirSync('/sys/class/nvme-subsystem')) dump[`/sys/class/nvme-subsystem/${s}`] = fs.readdirSync(`/sys/class/nvme-subsystem/${s}`).join(' ');
  fs.writeFileSync(`${out}/nvme-sysfs.json`, JSON.stringify(dump, null, 1));
}

async function controllersOf(subnqn: string) {
  return (await listNvmeControllers(host)).filter((c) => c.subsysnqn === subnqn);
}

before(async () => {
  await startInitiatorDaemons();
  baseline = probeLeftovers();
  assert.equal(await nativeNvmeMultipathEnabled(host), true, 'the lab kernel has native NVMe multipath on');
});

/**
 * Run `fn` against a fresh nvmet subsystem whose namespaces are loop-backed, with a leftovers
 * baseline taken after the loop devices exist (they belong to the target side) and before the
 * target; the target is destroyed and the loops detached afterwards, whatever happens.
 */
async function withTarget(sizesMiB: number[], ports: { addr: string; port: number }[], fn: (t: NvmetTarget, b: Backing[], base: Partial<Leftovers>) => Promise<void>): Promise<void> {
  const backings: Backing[] = [];
  let t: NvmetTarget | undefined;
  try {
    for (const size of sizesMiB) backings.push(await loopBacked(size));
    const base = { ...baseline, loopDevices: probeLeftovers().loopDevices };
    t = await createNvmetTarget({ nqn: nqn(), namespaces: backings.map((b, i) => ({ sizeMiB: sizesMiB[i]!, blockDevice: b.dev })), ports });
    await fn(t, backings, base);
  } finally {
    if (t) await t.destroy();
    for (const b of backings) await b.detach();
  }
}

test('single portal: connect by uuid, data both ways, extend, disconnect, nothing left', async () => {
  await withTarget([32], [P1], async (t, [b], base) => {
    const c = connector(false);
    const ns = t.namespaces[0]!;
    const props = { target_nqn: t.nqn, portals: portals(P1), vol_uuid: ns.uuid };
    const info = await c.connectVolume(props);
    assert.equal(info.type, 'block');
    assert.match(info.path, /^\/dev\/nvme\d+n\d+$/);
    assert.equal(info.uuid, ns.uuid);
    const ctrls = await controllersOf(t.nqn);
    assert.equal(ctrls.length, 1);
    assert.equal(ctrls[0]!.hostnqn, LAB_HOST_NQN, 'connected as the host NQN in /etc/nvme/hostnqn');
    verifyData(info.path, b!.file, 1 << 20);
    assert.equal(await c.checkValidDevice(info.path), true);
    assert.deepEqual(await c.getVolumePaths(props), [info.path]);
    await growNamespace(t, ns.nsid, b!, 64 << 20);
    assert.equal(await c.extendVolume(props), 64 << 20);
    await c.disconnectVolume(props, info);
    await assertNoLeftovers(base);
  });
});

test('two portals with native multipath: both connected, I/O survives one portal going down, disconnect leaves nothing', async () => {
  await withTarget([32], [P1, P2], async (t, [b], base) => {
    const c = connector(true);
    const ns = t.namespaces[0]!;
    const props = { target_nqn: t.nqn, portals: portals(P1, P2), vol_uuid: ns.uuid };
    const info = await c.connectVolume(props);
    const ctrls = await controllersOf(t.nqn);
    assert.deepEqual(ctrls.map((x) => x.traddr).sort(), ['127.0.0.1', '127.0.0.2']);
    const head = info.path.replace('/dev/', '');
    const pathsOfHead = ctrls.flatMap((x) => x.paths).filter((p) => p.replace(/c\d+n/, 'n') === head);
    assert.equal(pathsOfHead.length, 2, `one head ${head} over two controller paths (${pathsOfHead.join(', ')})`);
    verifyData(info.path, b!.file, 1 << 20);
    captureSysfs(ctrls.map((x) => x.name), head);
    t.portDown(`${P1.addr}:${P1.port}`);
    verifyData(info.path, b!.file, 2 << 20);
    await c.disconnectVolume(props, info);
    await assertNoLeftovers(base);
  });
});

test('one portal down at attach time: the volume attaches through the other; second namespace keeps the controller until its own disconnect', async () => {
  await withTarget([16, 16], [P1, P2], async (t, backings, base) => {
    t.portDown(`${P2.addr}:${P2.port}`);
    const c = connector(true);
    const [a, b] = [t.namespaces[0]!, t.namespaces[1]!];
    const pa = { target_nqn: t.nqn, portals: portals(P1, P2), vol_uuid: a.uuid };
    const pb = { target_nqn: t.nqn, portals: portals(P1, P2), volume_nguid: b.nguid };
    const ia = await c.connectVolume(pa);
    const ib = await c.connectVolume(pb);
    assert.notEqual(ia.path, ib.path);
    assert.deepEqual((await controllersOf(t.nqn)).map((x) => x.traddr), ['127.0.0.1']);
    verifyData(ib.path, backings[1]!.file, 0);
    await c.disconnectVolume(pa, ia);
    assert.equal((await controllersOf(t.nqn)).length, 1, 'the controller still carries namespace b');
    verifyData(ib.path, backings[1]!.file, 8192 * 4);
    await c.disconnectVolume(pb, ib);
    await assertNoLeftovers(base);
  });
});

test('a namespace that does not exist: VolumeDeviceNotFoundError and the controller it made is gone', async () => {
  await withTarget([16], [P1], async (t, _b, base) => {
    const c = connectorFor('NVME', { ctx: host, deviceScanAttempts: 1, timings: { namespaceWaitMs: 1_500 } });
    await assert.rejects(c.connectVolume({ target_nqn: t.nqn, portals: portals(P1), vol_uuid: '00000000-1111-2222-3333-444444444444' }), VolumeDeviceNotFoundError);
    await assertNoLeftovers(base);
  });
});
