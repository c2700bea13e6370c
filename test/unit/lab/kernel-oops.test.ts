import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findKernelOops } from '../../../tools/lab/vm.js';

test('findKernelOops names the crash line and its RIP; warnings a loaded guest survives are not crashes', () => {
  const crash = [
    '[  116.414870] Security negotiation failed.',
    '[  116.420312] BUG: kernel NULL pointer dereference, address: 0000000000000018',
    '[  116.420649] #PF: supervisor read access in kernel mode',
    '[  116.421376] Oops: 0000 [#1] PREEMPT SMP NOPTI',
    '[  116.422738] RIP: 0010:iscsi_sw_tcp_release_conn+0x67/0x160 [iscsi_tcp]',
  ].join('\n');
  assert.equal(findKernelOops(crash), 'BUG: kernel NULL pointer dereference, address: 0000000000000018; RIP: 0010:iscsi_sw_tcp_release_conn+0x67/0x160 [iscsi_tcp]');
  assert.equal(findKernelOops('[ 3.1] Kernel panic - not syncing: Attempted to kill init!'), 'Kernel panic - not syncing: Attempted to kill init!');
  for (const benign of [
    '[ 38.5] operation not supported error, dev loop0, sector 8192 op 0x9:(WRITE_ZEROES)',
    '[ 90.1] watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [kworker/1:2:77]',
    '[ 91.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:',
    '[ 92.0] Buffer I/O error on dev sdb, logical block 262112, async page read',
  ]) {
    assert.equal(findKernelOops(benign), undefined, benign);
  }
});
