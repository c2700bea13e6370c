/**
 * Lab tests of the host attach journal (`host/journal.ts`) with the real kernel: an iSCSI
 * multipath attach and an NVMe-oF two-portal attach record what they create (the names match
 * what sysfs shows), and a detach in a fresh connector with no device info (as a new process
 * has) removes everything, leaving the journal empty and the host clean.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startInitiatorDaemons, createLioTarget, createNvmetTarget, verifyData, assertNoLeftovers, probeLeftovers, modprobe, run, LAB_INITIATOR_IQN, LAB_SCRATCH, waitFor } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import { createHostContext, type HostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';
import { AttachJournal } from '../../src/host/journal.js';

let seq = 0;

function withJournal(): { journal: AttachJournal; ctx: HostContext; kinds: () => Promise<string[]>; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'brick-lab-journal-'));
  const journal = new AttachJournal(join(dir, 'journal'));
  // A short lock bound: LockManager keeps a timer of the bound alive after each lock.
  const ctx = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 120_000 }), locks: new LockManager(join(dir, 'locks'), 20_000), journal });
  return {
    journal,
    ctx,
    kinds: async () => (await journal.resources()).map((r) => `${r.kind} ${r.name}`).sort(),
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}

before(async () => {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
});

test('iscsi multipath: the journal lists nodes, sessions, the scanned devices at their real H:C:T:L and the map; a disconnect with no device info empties it', async () => {
  await assertNoLeftovers();
  const j = withJournal();
  const t = await createLioTarget({ iqn: `iqn.2026-11.lab.brick:journal-${process.pid}-${++seq}`, luns: [{ sizeMiB: 32 }] });
  try {
    const props = { target_portal: t.portals[0], target_iqn: t.iqn, target_lun: 0, target_portals: t.portals, target_iqns: t.portals.map(() => t.iqn), target_luns: t.portals.map(() => 0) };
    const c = connectorFor('ISCSI', { useMultipath: true, ctx: j.ctx });
    const info = await c.connectVolume(props);
    await (c as { settled?: () => Promise<void> }).settled?.();
    assert.match(info.path, /^\/dev\/dm-\d+$/);
    verifyData(info.path, t.luns[0]!.file!, 1 << 20);
    const wwn = t.luns[0]!.wwn;
    const kinds = await j.kinds();
    for (const p of t.portals) {
      assert.ok(kinds.includes(`iscsi-node ${t.iqn},${p}`), `node record of ${p} recorded (${kinds.join('; ')})`);
      assert.ok(kinds.includes(`iscsi-session ${t.iqn},${p}`), `session to ${p} recorded`);
    }
    assert.ok(kinds.includes(`multipath-map ${wwn}`), 'the map recorded by WWID');
    const devices = (await j.journal.resources()).filter((r) => r.kind === 'scsi-device');
    assert.equal(devices.length, t.portals.length, `one SCSI device per path (${devices.map((d) => d.name).join(', ')})`);
    // The second path may still be joining the map (multipathd adds it when udev is done with it).
    const slavesDir = `/sys/block/${info.path.replace('/dev/', '')}/slaves`;
    await waitFor(() => fs.readdirSync(slavesDir).length === t.portals.length, { timeoutMs: 60_000, intervalMs: 250, description: 'every path in the map' });
    const slaves = fs.readdirSync(slavesDir).sort();
    const atAddresses = devices.map((d) => fs.readdirSync(`/sys/bus/scsi/devices/${d.name}/block`)[0]).sort();
    assert.deepEqual(atAddresses, slaves, 'the recorded addresses are the map paths (the address was right before the scan)');
    for (const d of devices) assert.equal(d.attrs.wwid, wwn);
    const [entry] = await j.journal.attachments();
    assert.deepEqual([entry?.phase, entry?.deviceInfo?.path], ['done', info.path]);

    // A fresh connector, no device info: what a new process with only the properties has.
    await connectorFor('ISCSI', { useMultipath: true, ctx: j.ctx }).disconnectVolume(props, null);
    assert.deepEqual(await j.kinds(), []);
    assert.deepEqual(await j.journal.attachments(), []);
    await assertNoLeftovers();
  } finally {
    await t.destroy();
    j.done();
  }
});

test('nvme-of two portals: the journal lists both controllers; a disconnect with no device info empties it', async () => {
  const j = withJournal();
  await modprobe('loop');
  fs.mkdirSync(LAB_SCRATCH, { recursive: true });
  const file = `${LAB_SCRATCH}/journal-ns-${process.pid}-${++seq}.img`;
  fs.writeFileSync(file, '');
  fs.truncateSync(file, 32 << 20);
  const dev = (await run(['losetup', '--find', '--show', file])).stdout.trim();
  const base = probeLeftovers();
  const t = await createNvmetTarget({ nqn: `nqn.2026-11.lab.brick:journal-${process.pid}-${++seq}`, namespaces: [{ sizeMiB: 32, blockDevice: dev }], ports: [{ addr: '127.0.0.1', port: 4420 }, { addr: '127.0.0.2', port: 4420 }] });
  try {
    const props = { target_nqn: t.nqn, portals: [['127.0.0.1', 4420, 'tcp'], ['127.0.0.2', 4420, 'tcp']], vol_uuid: t.namespaces[0]!.uuid };
    const info = await connectorFor('NVMEOF', { useMultipath: true, ctx: j.ctx, deviceScanAttempts: 3 }).connectVolume(props);
    verifyData(info.path, file, 1 << 20);
    assert.deepEqual(await j.kinds(), [`nvme-controller ${t.nqn},tcp,127.0.0.1,4420`, `nvme-controller ${t.nqn},tcp,127.0.0.2,4420`]);
    await connectorFor('NVMEOF', { useMultipath: true, ctx: j.ctx }).disconnectVolume(props, null);
    assert.deepEqual(await j.kinds(), []);
    assert.deepEqual(await j.journal.attachments(), []);
    await assertNoLeftovers(base);
  } finally {
    await t.destroy();
    await run(['losetup', '-d', dev], { checkExitCode: false });
    fs.rmSync(file, { force: true });
    j.done();
  }
});
