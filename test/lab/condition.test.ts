/**
 * Lab test of the volume condition (issue #16) on the real kernel: an iSCSI volume attached over
 * two portals of a LIO target with dm-multipath is normal; with one portal taken down (its
 * network portal removed and its address unreachable) the condition turns abnormal naming the
 * failed path and its portal; with the portal back, the session logs in again, multipathd
 * reinstates the path and the condition clears. Ends with the leftovers probe empty.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { startInitiatorDaemons, createLioTarget, assertNoLeftovers, LAB_INITIATOR_IQN } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import type { VolumeCondition } from '../../src/initiator/connector.js';
import { createCapturingLogger } from '../../src/log.js';

const P1 = '127.0.0.1:3260';
// A portal address no other lab test takes down, so no earlier test's route changes can matter.
const P2 = '127.0.0.6:3260';

/** Poll `check` every second until `done` holds for its result or `ms` have passed; returns the last result and how long it took. */
async function pollCondition(check: () => Promise<VolumeCondition>, done: (c: VolumeCondition) => boolean, ms: number): Promise<{ c: VolumeCondition; seconds: number }> {
  const started = Date.now();
  for (;;) {
    const c = await check();
    if (done(c) || Date.now() - started > ms) return { c, seconds: (Date.now() - started) / 1000 };
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

before(async () => {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
  await assertNoLeftovers();
});

test('iSCSI multipath: normal; a portal down is abnormal with the failed path named; back up, it clears', async () => {
  const t = await createLioTarget({ iqn: `iqn.2026-11.lab.brick:cond-${process.pid}`, luns: [{ sizeMiB: 16 }], portals: [P1, P2] });
  const log = createCapturingLogger('debug');
  const c = connectorFor('ISCSI', { useMultipath: true, ctx: { logger: log.logger } });
  const props = { target_portal: P1, target_iqn: t.iqn, target_lun: 0, target_portals: t.portals, target_iqns: t.portals.map(() => t.iqn), target_luns: t.portals.map(() => 0), target_discovered: false };
  let info: Awaited<ReturnType<typeof c.connectVolume>> | undefined;
  try {
    info = await c.connectVolume(props);
    assert.match(info.path, /^\/dev\/dm-\d+$/);
    const check = () => c.checkVolumeCondition(props, info!);
    // Both paths join the map (the second may still be logging in when connect returns).
    const healthy = await pollCondition(check, (x) => !x.abnormal && x.paths.length === 2, 60_000);
    process.stderr.write(`condition, healthy: ${JSON.stringify(healthy.c)}\n`);
    assert.equal(healthy.c.abnormal, false, healthy.c.message);
    assert.deepEqual(healthy.c.paths.map((p) => p.portal).sort(), [P1, P2]);
    assert.ok(healthy.c.paths.every((p) => p.state === 'active'));

    await t.portalDown(P2);
    const down = await pollCondition(check, (x) => x.abnormal && x.paths.some((p) => p.portal === P2 && p.state !== 'active'), 90_000);
    process.stderr.write(`condition, ${P2} down (after ${down.seconds} s): ${JSON.stringify(down.c)}\n`);
    assert.equal(down.c.abnormal, true, 'a portal down makes the volume abnormal');
    const failed = down.c.paths.find((p) => p.portal === P2)!;
    if (failed.state !== 'active') {
      assert.ok(down.c.message.includes(`${failed.name} (${P2})`), `the message names the failed path: ${down.c.message}`);
    } else {
      // Seen when this file runs after lab-self.test.ts in one VM (not alone, where the path fails
      // in about 18 s): the kernel kept the session LOGGED_IN and dm kept the path active for over
      // two minutes, so only the read test shows the volume abnormal. Cause not found yet.
      process.stderr.write(`condition: the kernel had not failed the path through ${P2} after ${down.seconds} s; abnormal by the read test only\n`);
      assert.match(down.c.message, /read test/);
    }
    assert.equal(down.c.paths.find((p) => p.portal === P1)?.state, 'active', 'the other path stays active');

    await t.portalUp(P2);
    // iscsid logs in again (it retries while the session is in recovery), the SCSI device runs
    // again, multipathd's checker reinstates the path: bounded by the replacement timeout and
    // multipathd's polling interval.
    const up = await pollCondition(check, (x) => !x.abnormal, 240_000);
    process.stderr.write(`condition, ${P2} back (after ${up.seconds} s): ${JSON.stringify(up.c)}\n`);
    assert.equal(up.c.abnormal, false, `the condition clears: ${up.c.message}`);
    assert.equal(up.c.paths.length, 2);

    await c.disconnectVolume(props, info);
    info = undefined;
    await assertNoLeftovers();
  } finally {
    await t.portalUp(P2).catch(() => undefined);
    if (info) await c.disconnectVolume(props, info, { force: true, ignoreErrors: true }).catch(() => undefined);
    await t.destroy();
  }
});
