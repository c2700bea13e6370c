/**
 * The FIBRE_CHANNEL connector on a real FC transport (issue 17, part 1): software FCoE in VN2VN
 * mode over veth pairs with LIO's tcm_fc target (see `fixtures/fcoe.ts`), so the kernel shows real
 * `fc_host`s, remote ports with the FCP Target role and SCSI devices under `rport-*`. Connection
 * properties as a Cinder FC driver returns them (`target_wwn` list, `target_lun`,
 * `initiator_target_map`); data checked against the backstore; single path, then multipath over
 * two links, extended, then with one link taken down; disconnect with nothing left.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { assertNoLeftovers, createFcoeFabric, probeLeftovers, startInitiatorDaemons, verifyData, waitFor } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import { createHostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';
import { getConnectorProperties } from '../../src/initiator/properties.js';

const ctx = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 120_000 }), locks: new LockManager('/run/brick-locks', 20_000) });

before(async () => {
  await startInitiatorDaemons();
});

test('FCoE single path: connector properties list the HBA, connect by target WWN and LUN, data both ways, disconnect leaves nothing', async () => {
  const fabric = await createFcoeFabric({ links: 1, lun: 3, sizeMiB: 64, tag: `s${process.pid}` });
  try {
    const base = probeLeftovers();
    const link = fabric.links[0]!;
    const props = await getConnectorProperties({ hostRoot: '/' });
    assert.ok(props.wwpns?.includes(link.initiatorWwpn), `connector properties list the initiator port ${link.initiatorWwpn}: ${JSON.stringify(props.wwpns)}`);
    const c = connectorFor('FIBRE_CHANNEL', { useMultipath: false, ctx });
    const conn = { target_wwn: [link.targetWwpn], target_lun: fabric.lun, initiator_target_map: { [link.initiatorWwpn]: [link.targetWwpn] } };
    const info = await c.connectVolume(conn);
    assert.match(info.path, /^\/dev\/(sd[a-z]+|disk\/by-path\/.*-fc-0x[0-9a-f]{16}-lun-3)$/, `a SCSI disk of the FC transport: ${info.path}`);
    const real = fs.realpathSync(info.path).replace('/dev/', '');
    assert.match(fs.realpathSync(`/sys/block/${real}/device`), /rport-\d+:\d+-\d+/, 'the disk hangs under an FC remote port');
    verifyData(info.path, fabric.file, 1 << 20);
    assert.equal(await c.checkValidDevice(info.path), true);
    await c.disconnectVolume(conn, info);
    await assertNoLeftovers(base);
  } finally {
    await fabric.destroy();
  }
});

test('FCoE multipath over two links: one dm map over both paths, extend grows paths and map, I/O survives a link going down, disconnect leaves nothing', async () => {
  const fabric = await createFcoeFabric({ links: 2, lun: 5, sizeMiB: 64, tag: `m${process.pid}` });
  try {
    const base = probeLeftovers();
    const c = connectorFor('FIBRE_CHANNEL', { useMultipath: true, ctx });
    const conn = {
      target_wwn: fabric.links.map((l) => l.targetWwpn),
      target_lun: fabric.lun,
      initiator_target_map: Object.fromEntries(fabric.links.map((l) => [l.initiatorWwpn, [l.targetWwpn]])),
    };
    const info = await c.connectVolume(conn);
    assert.match(info.path, /^\/dev\/dm-\d+$/, `a multipath device: ${info.path}`);
    const slaves = `/sys/block/${info.path.slice(5)}/slaves`;
    await waitFor(() => fs.readdirSync(slaves).length === 2, { timeoutMs: 60_000, intervalMs: 250, description: 'both FC paths in the map' });
    verifyData(info.path, fabric.file, 1 << 20);
    const cond = await c.checkVolumeCondition(conn, info);
    assert.equal(cond.abnormal, false, cond.message);
    // Extend: the LUN grows on the target; the connector rescans both paths and resizes the map.
    fabric.resizeLun(96 << 20);
    const size = await c.extendVolume(conn);
    assert.equal(size, 96 << 20, 'extendVolume returns the new size in bytes');
    assert.equal(Number(fs.readFileSync(`/sys/block/${info.path.slice(5)}/size`, 'utf8').trim()) * 512, 96 << 20, 'the dm map has the new size');
    for (const s of fs.readdirSync(slaves)) assert.equal(Number(fs.readFileSync(`/sys/block/${s}/size`, 'utf8').trim()) * 512, 96 << 20, `path ${s} has the new size`);
    await fabric.linkDown(0);
    verifyData(info.path, fabric.file, 2 << 20);
    await c.disconnectVolume(conn, info, { force: true });
    await assertNoLeftovers(base, { timeoutMs: 60_000 });
  } finally {
    await fabric.destroy();
  }
});
