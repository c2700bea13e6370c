/**
 * The NVMEOF connector's dm-multipath path on the real kernel (issue 17, part 3): with native NVMe
 * multipath off, each portal's namespace is its own block device and multipathd joins them into
 * one dm map, as on hosts that run `nvme_core.multipath=N` (os-brick's non-native case). This file
 * boots its own lab VM with that kernel argument:
 *
 * lab-kernel-args: nvme_core.multipath=N
 *
 * Two portals, a map over both namespaces' paths with data checked against the backing file, one
 * portal down (I/O goes on, the map shows the path failed), disconnect with nothing left.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startInitiatorDaemons, createNvmetTarget, verifyData, assertNoLeftovers, probeLeftovers, loopBacked, run, waitFor, type Backing, type NvmetTarget } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import { listNvmeControllers, nativeNvmeMultipathEnabled } from '../../src/host/nvme.js';
import { createHostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';

const P1 = { addr: '127.0.0.1', port: 4420 };
const P2 = { addr: '127.0.0.2', port: 4420 };
const host = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 120_000 }), locks: new LockManager('/run/brick-locks', 20_000) });

before(async () => {
  await startInitiatorDaemons();
});

/** The dm-multipath status of map `name`: one entry per path device with its state letter (A active, F failed). */
async function mapPaths(name: string): Promise<Map<string, string>> {
  const status = (await run(['dmsetup', 'status', name])).stdout;
  const out = new Map<string, string>();
  // "... <major:minor> <A|F> <fail count> ..." per path; resolve major:minor through /sys/dev/block.
  for (const m of status.matchAll(/(\d+:\d+) ([AF]) \d+/g)) {
    const dev = fs.realpathSync(`/sys/dev/block/${m[1]}`).split('/').pop()!;
    out.set(dev, m[2]!);
  }
  return out;
}

test('native multipath is off in this boot', async () => {
  assert.equal(fs.readFileSync('/sys/module/nvme_core/parameters/multipath', 'utf8').trim(), 'N');
  assert.equal(await nativeNvmeMultipathEnabled(host), false);
});

test('two portals, dm-multipath: one map over both paths, data through it, one portal down, disconnect leaves nothing', async () => {
  let backing: Backing | undefined;
  let t: NvmetTarget | undefined;
  try {
    backing = await loopBacked(32);
    const base = probeLeftovers();
    t = await createNvmetTarget({ nqn: `nqn.2026-12.lab.brick:nvme-dm-${process.pid}`, namespaces: [{ sizeMiB: 32, blockDevice: backing.dev }], ports: [P1, P2] });
    const ns = t.namespaces[0]!;
    const c = connectorFor('NVMEOF', { useMultipath: true, ctx: host, deviceScanAttempts: 3, timings: { namespaceWaitMs: 5_000, dmWaitMs: 30_000 } });
    const props = { target_nqn: t.nqn, portals: [[P1.addr, P1.port, 'tcp'], [P2.addr, P2.port, 'tcp']], vol_uuid: ns.uuid };
    const info = await c.connectVolume(props);
    assert.match(info.path, /^\/dev\/dm-\d+$/, `a dm-multipath device, got ${info.path}`);
    assert.ok(typeof info.multipath_id === 'string' && info.multipath_id.length > 0, 'multipath_id names the map');
    const ctrls = (await listNvmeControllers(host)).filter((x) => x.subsysnqn === t!.nqn);
    assert.deepEqual(ctrls.map((x) => x.traddr).sort(), ['127.0.0.1', '127.0.0.2']);
    // The connector returns once the map exists over a path; multipathd adds the other path as it
    // comes (as with iSCSI, where paths still joining join after connectVolume returns).
    const slavesDir = `/sys/block/${info.path.slice(5)}/slaves`;
    await waitFor(() => fs.readdirSync(slavesDir).length === 2, { timeoutMs: 60_000, intervalMs: 250, description: 'both NVMe paths in the map' });
    const slaves = fs.readdirSync(slavesDir).sort();
    assert.ok(slaves.every((s) => /^nvme\d+n\d+$/.test(s)), `paths are NVMe namespaces: ${slaves.join(', ')}`);
    verifyData(info.path, backing.file, 1 << 20);
    const paths = await mapPaths(info.multipath_id as string);
    assert.deepEqual([...paths.values()], ['A', 'A'], `both paths active: ${JSON.stringify([...paths])}`);

    t.portDown(`${P1.addr}:${P1.port}`);
    verifyData(info.path, backing.file, 2 << 20);
    await waitFor(async () => [...(await mapPaths(info.multipath_id as string)).values()].includes('F'), { timeoutMs: 60_000, intervalMs: 500, description: 'the path through the downed portal to be failed in the map' });

    await c.disconnectVolume(props, info);
    await t.destroy();
    t = undefined;
    await assertNoLeftovers({ ...base, loopDevices: probeLeftovers().loopDevices });
  } finally {
    if (t) await t.destroy();
    await backing?.detach();
  }
});
