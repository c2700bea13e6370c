/**
 * The FlashSystem simulator's CLI engine on its own: command parsing, output shapes, CMMVC
 * codes and exit statuses, per-host LUNs, FlashCopy progress, fault injection, the backing hooks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FlashSystemState, GIB, ShellSyntaxError, tokenize, type SimVdisk } from '../../../sims/flashsystem/index.js';

async function ok(s: FlashSystemState, line: string): Promise<string> {
  const r = await s.execute(line);
  assert.equal(r.exitCode, 0, `${line}: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return r.stdout;
}

async function fails(s: FlashSystemState, line: string, code: string): Promise<void> {
  const r = await s.execute(line);
  assert.equal(r.exitCode, 1, line);
  assert.ok(r.stderr.startsWith(`${code} `), `${line}: ${r.stderr}`);
  assert.equal(r.stdout, '');
}

describe('simulator tokenizer', () => {
  it('splits like a shell: quotes, escapes', () => {
    assert.deepEqual(tokenize(`a 'b c' "d e" f\\ g  h`), ['a', 'b c', 'd e', 'f g', 'h']);
    assert.deepEqual(tokenize(`x 'semi;colon' '$(not)'`), ['x', 'semi;colon', '$(not)']);
  });
  for (const bad of ['a; b', 'a | b', 'a && b', 'a $(b)', 'a `b`', "a 'b", 'a "$x"', 'a > f']) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.throws(() => tokenize(bad), ShellSyntaxError));
  }
  it('answers a refused line with a non-zero exit and changes nothing', async () => {
    const s = new FlashSystemState();
    const r = await s.execute("svctask mkvdisk -name a -mdiskgrp mdiskgrp0 -size 1 -unit gb; svctask rmvdisk a");
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /restricted/);
    assert.equal(s.vdisks.size, 0);
  });
});

describe('simulator vdisks', () => {
  it('creates, lists (by name and id), expands, renames and removes vdisks', async () => {
    const s = new FlashSystemState();
    assert.equal(await ok(s, "svctask mkvdisk -name 'v1' -mdiskgrp 'mdiskgrp0' -iogrp 0 -size 2 -unit gb"), 'Virtual Disk, id [0], successfully created\n');
    const view = await ok(s, 'svcinfo lsvdisk -bytes -delim ! v1');
    assert.match(view, /^id!0\nname!v1\n/);
    assert.match(view, /\ncapacity!2147483648\n/);
    assert.match(view, /\nvdisk_UID!60050768[0-9A-F]{24}\n/);
    assert.equal(await ok(s, 'svcinfo lsvdisk -bytes -delim ! 0'), view);
    assert.match(await ok(s, 'svcinfo lsvdisk -delim ! v1'), /\ncapacity!2\.00GB\n/);
    assert.equal(await ok(s, 'svctask expandvdisksize -size 512 -unit mb v1'), '');
    assert.equal(s.findVdisk('v1')!.capacity, 2.5 * GIB);
    await ok(s, "svctask chvdisk -name 'v2' v1");
    assert.equal(s.findVdisk('v1'), undefined);
    const list = await ok(s, 'svcinfo lsvdisk -delim !');
    assert.match(list, /^id!name!IO_group_id/);
    assert.equal(list.trim().split('\n').length, 2);
    assert.equal(await ok(s, 'svctask rmvdisk v2'), '');
    assert.equal(s.vdisks.size, 0);
  });

  it('returns real CMMVC codes for the failure cases', async () => {
    const s = new FlashSystemState({ poolCapacity: 10 * GIB });
    await ok(s, 'svctask mkvdisk -name v1 -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb');
    await fails(s, 'svctask mkvdisk -name v1 -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb', 'CMMVC6035E');
    await fails(s, 'svctask mkvdisk -name 1bad -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb', 'CMMVC6527E');
    await fails(s, 'svctask mkvdisk -name v2 -mdiskgrp mdiskgrp0 -iogrp 0 -size 100 -unit gb', 'CMMVC5860E');
    await fails(s, 'svctask mkvdisk -name v2 -mdiskgrp nopool -iogrp 0 -size 1 -unit gb', 'CMMVC5754E');
    await fails(s, 'svctask mkvdisk -name v2 -mdiskgrp mdiskgrp0', 'CMMVC5707E');
    await fails(s, 'svctask mkvdisk -name v2 -bogus 1', 'CMMVC5709E');
    await fails(s, 'svcinfo lsvdisk -bytes -delim ! nothere', 'CMMVC5754E');
    await fails(s, 'svctask rmvdisk nothere', 'CMMVC5753E');
    await fails(s, 'svctask frobnicate', 'CMMVC6051E');
    await fails(s, 'svctask rmvdisk', 'CMMVC5701E');
  });

  it('keeps pool free capacity in step with the vdisks', async () => {
    const s = new FlashSystemState({ poolCapacity: 10 * GIB });
    await ok(s, 'svctask mkvdisk -name v1 -mdiskgrp mdiskgrp0 -iogrp 0 -size 3 -unit gb');
    const pool = await ok(s, 'svcinfo lsmdiskgrp -bytes -delim ! mdiskgrp0');
    assert.match(pool, new RegExp(`\\ncapacity!${10 * GIB}\\n`));
    assert.match(pool, new RegExp(`\\nfree_capacity!${7 * GIB}\\n`));
    assert.match(pool, /\nstatus!online\n/);
  });
});

describe('simulator hosts and mappings', () => {
  async function setup(): Promise<FlashSystemState> {
    const s = new FlashSystemState();
    await ok(s, 'svctask mkvdisk -name v1 -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb');
    await ok(s, 'svctask mkvdisk -name v2 -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb');
    assert.equal(await ok(s, "svctask mkhost -force -iscsiname 'iqn.2020-01.t:a' -name 'ha'"), 'Host, id [0], successfully created\n');
    await ok(s, "svctask mkhost -force -iscsiname 'iqn.2020-01.t:b' -name 'hb'");
    return s;
  }

  it('prints hosts in both views, lshost empty when there are none', async () => {
    assert.equal(await ok(new FlashSystemState(), 'svcinfo lshost -delim !'), '');
    const s = await setup();
    assert.equal(await ok(s, 'svcinfo lshost -delim !'), 'id!name!port_count!iogrp_count!status\n0!ha!1!4!online\n1!hb!1!4!online\n');
    await ok(s, "svctask addhostport -force -iscsiname 'iqn.2020-01.t:a2' ha");
    const view = await ok(s, 'svcinfo lshost -delim ! ha');
    assert.deepEqual(
      view.split('\n').filter((l) => l.startsWith('iscsi_name!')),
      ['iscsi_name!iqn.2020-01.t:a', 'iscsi_name!iqn.2020-01.t:a2'],
    );
  });

  it('refuses duplicate names, reused IQNs and invalid names', async () => {
    const s = await setup();
    await fails(s, "svctask mkhost -force -iscsiname 'iqn.2020-01.t:c' -name 'ha'", 'CMMVC6035E');
    await fails(s, "svctask mkhost -force -iscsiname 'iqn.2020-01.t:a' -name 'hc'", 'CMMVC6581E');
    await fails(s, "svctask mkhost -force -iscsiname 'iqn.2020-01.t:c' -name '9c'", 'CMMVC6527E');
    await fails(s, "svctask mkhost -force -iscsiname 'not-an-iqn' -name 'hc'", 'CMMVC6581E');
  });

  it('LUNs are unique per host, not per array; the real SCSI id is listed', async () => {
    const s = await setup();
    assert.equal(await ok(s, 'svctask mkvdiskhostmap -host ha -scsi 1 v1'), 'Virtual Disk to Host map, id [0], successfully created\n');
    await ok(s, 'svctask mkvdiskhostmap -host hb -scsi 1 v2');
    await fails(s, 'svctask mkvdiskhostmap -host ha -scsi 1 v2', 'CMMVC5879E');
    await ok(s, 'svctask mkvdiskhostmap -force -host ha -scsi 5 v2');
    assert.match(await ok(s, 'svcinfo lshostvdiskmap -delim ! ha'), /^id!name!SCSI_id!vdisk_id!vdisk_name.*\n0!ha!1!0!v1!.*\n0!ha!5!1!v2!/);
    assert.match(await ok(s, 'svcinfo lsvdiskhostmap -delim ! v2'), /\n1!v2!1!1!hb!.*\n1!v2!5!0!ha!/);
    assert.equal(await ok(s, "svctask mkvdisk -name v3 -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb"), 'Virtual Disk, id [2], successfully created\n');
    assert.equal(await ok(s, 'svcinfo lsvdiskhostmap -delim ! v3'), '');
    assert.equal(await ok(s, "svctask mkhost -force -iscsiname 'iqn.2020-01.t:e' -name 'empty'"), 'Host, id [2], successfully created\n');
    assert.equal(await ok(s, 'svcinfo lshostvdiskmap -delim ! empty'), 'id!name!SCSI_id!vdisk_id!vdisk_name!vdisk_UID!IO_group_id!IO_group_name!mapping_type\n');
  });

  it('needs -force for a second host (configurable CMMVC6071E / CMMVC6045E)', async () => {
    for (const code of ['CMMVC6071E', 'CMMVC6045E'] as const) {
      const s = await setup();
      s.multiHostMapError = code;
      await ok(s, 'svctask mkvdiskhostmap -host ha -scsi 1 v1');
      await fails(s, 'svctask mkvdiskhostmap -host hb -scsi 1 v1', code);
      await ok(s, 'svctask mkvdiskhostmap -force -host hb -scsi 1 v1');
    }
  });

  it('refuses to delete mapped vdisks and hosts with mappings; unmapping a non-mapping fails', async () => {
    const s = await setup();
    await ok(s, 'svctask mkvdiskhostmap -host ha -scsi 1 v1');
    await fails(s, 'svctask rmvdisk v1', 'CMMVC5840E');
    await fails(s, 'svctask rmhost ha', 'CMMVC5871E');
    await fails(s, 'svctask rmvdiskhostmap -host hb v1', 'CMMVC5842E');
    await ok(s, 'svctask rmvdiskhostmap -host ha v1');
    await ok(s, 'svctask rmhost ha');
    await ok(s, 'svctask mkvdiskhostmap -host hb -scsi 1 v1');
    await ok(s, 'svctask rmvdisk -force v1');
    assert.equal(s.mappings.size, 0);
  });
});

describe('simulator nodes, ports, system', () => {
  it('lists two online nodes in io_grp0 with the config node, and their IP ports', async () => {
    const s = new FlashSystemState();
    const nodes = (await ok(s, 'svcinfo lsnode -delim !')).trim().split('\n');
    assert.equal(nodes.length, 3);
    assert.match(nodes[0]!, /^id!name!UPS_serial_number!WWNN!status!IO_group_id!IO_group_name!config_node!/);
    assert.match(nodes[1]!, /^1!node1!!5005076802002B6C!online!0!io_grp0!yes!/);
    const ports = (await ok(s, 'svcinfo lsportip -delim !')).trim().split('\n');
    assert.match(ports[0]!, /^id!node_id!node_name!IP_address!/);
    assert.match(ports[1]!, /^1!1!node1!192\.168\.1\.10!/);
    assert.match(await ok(s, 'svcinfo lssystem -delim !'), /\nopen_access_enabled!off\n/);
  });

  it('injects one-shot faults in order', async () => {
    const s = new FlashSystemState();
    s.injectFault('lssystem', { kind: 'open_access' });
    s.injectFault('lssystem', { kind: 'error', code: 'CMMVC5786E' }, 2);
    assert.match(await ok(s, 'svcinfo lssystem -delim !'), /open_access_enabled!on/);
    await fails(s, 'svcinfo lssystem -delim !', 'CMMVC5786E');
    await fails(s, 'svcinfo lssystem -delim !', 'CMMVC5786E');
    assert.match(await ok(s, 'svcinfo lssystem -delim !'), /open_access_enabled!off/);
    s.injectFault('lsnode', { kind: 'header_mismatch' });
    const out = (await ok(s, 'svcinfo lsnode -delim !')).split('\n');
    assert.equal(out[0]!.split('!').length + 1, out[1]!.split('!').length);
    s.injectFault('lsmdiskgrp', { kind: 'pool_offline' });
    assert.match(await ok(s, 'svcinfo lsmdiskgrp -bytes -delim ! mdiskgrp0'), /\nstatus!offline\n/);
  });
});

describe('simulator FlashCopy', () => {
  it('copies with progress over time and auto-deletes the mapping', async () => {
    let now = 1_000_000;
    const copies: [string, string][] = [];
    const s = new FlashSystemState({ now: () => now, copyDurationMs: 1000, backing: { copyVdisk: (a: SimVdisk, b: SimVdisk) => void copies.push([a.name, b.name]) } });
    await ok(s, 'svctask mkvdisk -name src -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb');
    await ok(s, `svctask mkvdisk -name dst -mdiskgrp mdiskgrp0 -iogrp 0 -size ${GIB} -unit b`);
    await ok(s, 'svctask mkvdisk -name odd -mdiskgrp mdiskgrp0 -iogrp 0 -size 2 -unit gb');
    await fails(s, 'svctask mkfcmap -source src -target odd', 'CMMVC5924E');
    await fails(s, 'svctask mkfcmap -source src -target src', 'CMMVC5741E');
    assert.equal(await ok(s, "svctask mkfcmap -source 'src' -target 'dst' -name 'fc1' -copyrate 50 -autodelete"), 'FlashCopy Mapping, id [0], successfully created\n');
    await fails(s, 'svctask startfcmap fc1', 'CMMVC5907E');
    await ok(s, 'svctask startfcmap -prep fc1');
    assert.deepEqual(copies, [['src', 'dst']]);
    await fails(s, 'svctask rmvdisk dst', 'CMMVC5840E');
    await fails(s, 'svctask expandvdisksize -size 1 -unit gb dst', 'CMMVC5903E');
    now += 500;
    assert.match(await ok(s, 'svcinfo lsfcmap -delim ! fc1'), /\nstatus!copying\nprogress!50\n/);
    now += 600;
    await fails(s, 'svcinfo lsfcmap -delim ! fc1', 'CMMVC5754E');
    await ok(s, 'svctask rmvdisk dst');
  });

  it('stops and removes a mapping with -force; is absent on arrays without FlashCopy', async () => {
    const s = new FlashSystemState({ copyDurationMs: 1e9 });
    await ok(s, 'svctask mkvdisk -name a -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb');
    await ok(s, 'svctask mkvdisk -name b -mdiskgrp mdiskgrp0 -iogrp 0 -size 1 -unit gb');
    await ok(s, 'svctask mkfcmap -source a -target b -name m');
    await ok(s, 'svctask startfcmap -prep m');
    await fails(s, 'svctask rmfcmap m', 'CMMVC5903E');
    await ok(s, 'svctask stopfcmap -force m');
    await ok(s, 'svctask rmfcmap -force m');
    assert.equal(s.fcmaps.size, 0);
    const none = new FlashSystemState({ flashCopy: false });
    await fails(none, 'svcinfo lsfcmap -delim !', 'CMMVC7205E');
  });
});
