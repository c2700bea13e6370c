/**
 * Scale (issue 18): 32 LUNs on 4 targets (CHAP on two, sparse LUN ids, portals on four addresses
 * and three ports) attached at once with multipath through one ISCSI connector. Every device must
 * be the LUN it was asked for (a signature per LUN, read through the returned device), every map
 * distinct; then all are detached at once and nothing is left.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { startInitiatorDaemons, assertNoLeftovers, assertSignature, createScaleFleet, probeLeftovers, LAB_INITIATOR_IQN } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import type { DeviceInfo } from '../../src/initiator/connector.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import { createHostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';

const ctx = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 300_000 }), locks: new LockManager('/run/brick-locks', 20_000) });

before(async () => {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
});

test('32 LUNs on 4 targets at once with multipath: each device is its own LUN, and all detach leaving nothing', async () => {
  const base = probeLeftovers();
  const fleet = await createScaleFleet(`t${process.pid}`);
  const c = connectorFor('ISCSI', { useMultipath: true, ctx });
  let infos: (DeviceInfo | undefined)[] = [];
  try {
    const t0 = performance.now();
    const settled = await Promise.allSettled(fleet.volumes.map((v) => c.connectVolume(v.props)));
    infos = settled.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
    const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [`${fleet.volumes[i]!.label}: ${(s.reason as Error).message}`] : []));
    assert.deepEqual(failed, [], 'every attach succeeds');
    console.log(`32 concurrent multipath attaches: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const paths = infos.map((i) => i!.path);
    assert.equal(new Set(paths).size, 32, 'every volume got a device of its own');
    for (const [i, v] of fleet.volumes.entries()) {
      assert.match(paths[i]!, /^\/dev\/dm-\d+$/, `${v.label} is a multipath device`);
      assertSignature(paths[i]!, v);
    }
  } finally {
    const t1 = performance.now();
    const results = await Promise.allSettled(fleet.volumes.map((v, i) => c.disconnectVolume(v.props, infos[i] ?? null)));
    console.log(`32 concurrent detaches: ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    await fleet.destroy();
    assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => ((r as PromiseRejectedResult).reason as Error).message), [], 'every detach succeeds');
  }
  await assertNoLeftovers({ ...base, loopDevices: probeLeftovers().loopDevices }, { timeoutMs: 60_000 });
});
