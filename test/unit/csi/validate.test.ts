/**
 * The CSI plugin's request checks, its error-code table and its pagination, without a server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  BackendError,
  BrickError,
  InsufficientCapacityError,
  InvalidInputError,
  InvalidStateError,
  LockTimeoutError,
  NotFoundError,
  ProcessExecutionError,
  ProcessTimeoutError,
  ProtocolNotSupportedError,
  RetryExhaustedError,
} from '../../../src/errors.js';
import { CsiError, grpcCodeFor } from '../../../src/csi/status.js';
import { GiB, checkCapabilities, checkCapability, parseParameters, requireString, sizeFits, sizeGiBFor } from '../../../src/csi/validate.js';
import { decodeToken, encodeToken, paginate } from '../../../src/csi/pagination.js';
import { socketPath, withoutSecrets } from '../../../src/csi/server.js';
import type { VolumeCapability } from '../../../src/csi/types.js';

function codeOf(fn: () => unknown): status | undefined {
  try {
    fn();
  } catch (err) {
    return grpcCodeFor(err);
  }
  return undefined;
}

test('error codes: one table from Brick codes to the spec\'s gRPC codes', () => {
  const cases: [unknown, status][] = [
    [new InvalidInputError('size', 'bad'), status.INVALID_ARGUMENT],
    [new ProtocolNotSupportedError('volume_driver', 'x', []), status.INVALID_ARGUMENT],
    [new NotFoundError('volume', 'v1'), status.NOT_FOUND],
    [new InvalidStateError('has snapshots'), status.FAILED_PRECONDITION],
    [new AlreadyExistsError('taken'), status.ALREADY_EXISTS],
    [new InsufficientCapacityError('full'), status.RESOURCE_EXHAUSTED],
    [new ProcessTimeoutError(['mkfs.ext4'], 10), status.DEADLINE_EXCEEDED],
    [new LockTimeoutError('x', 10), status.DEADLINE_EXCEEDED],
    [new RetryExhaustedError('gave up'), status.DEADLINE_EXCEEDED],
    [new ProcessExecutionError(['mount'], 32, '', 'failed'), status.INTERNAL],
    [new BackendError('array said no'), status.INTERNAL],
    [new BrickError('generic'), status.INTERNAL],
    [new Error('plain'), status.INTERNAL],
    ['a string', status.INTERNAL],
    [new CsiError(status.ABORTED, 'pending'), status.ABORTED],
  ];
  for (const [err, code] of cases) assert.equal(grpcCodeFor(err), code, String((err as Error).message ?? err));
});

test('required fields: missing or empty is INVALID_ARGUMENT naming the field', () => {
  assert.equal(requireString({ volume_id: 'v' }, 'volume_id'), 'v');
  for (const req of [{}, { volume_id: '' }, { volume_id: 3 }]) {
    assert.throws(() => requireString(req, 'volume_id'), (e: CsiError) => e.grpcCode === status.INVALID_ARGUMENT && /volume_id is required/.test(e.message));
  }
});

test('capabilities: access type, access mode and file system type are checked', () => {
  const mount = (mode: string, fs = ''): VolumeCapability => ({ mount: { fs_type: fs, mount_flags: [] }, access_type: 'mount', access_mode: { mode: mode as 'SINGLE_NODE_WRITER' } });
  assert.equal(checkCapability(mount('SINGLE_NODE_WRITER'), 'c').access_type, 'mount');
  assert.equal(checkCapability({ block: {}, access_type: 'block', access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }, 'c').access_type, 'block');
  assert.equal(codeOf(() => checkCapability(null, 'volume_capability')), status.INVALID_ARGUMENT);
  assert.equal(codeOf(() => checkCapability({ access_mode: { mode: 'SINGLE_NODE_WRITER' } }, 'c')), status.INVALID_ARGUMENT, 'no access type');
  assert.equal(codeOf(() => checkCapability(mount('UNKNOWN'), 'c')), status.INVALID_ARGUMENT);
  assert.equal(codeOf(() => checkCapability({ access_type: 'mount', mount: { fs_type: '', mount_flags: [] }, access_mode: null }, 'c')), status.INVALID_ARGUMENT);
  assert.equal(codeOf(() => checkCapability(mount('SINGLE_NODE_WRITER', 'ntfs'), 'c')), status.INVALID_ARGUMENT);
  assert.equal(codeOf(() => checkCapabilities([])), status.INVALID_ARGUMENT);
  assert.equal(codeOf(() => checkCapabilities(undefined)), status.INVALID_ARGUMENT);
  assert.equal(checkCapabilities([mount('SINGLE_NODE_READER_ONLY', 'ext4')]).length, 1);
});

test('capacity: required bytes round up to whole GiB; a limit that no whole GiB fits is OUT_OF_RANGE', () => {
  assert.equal(sizeGiBFor(null), 1);
  assert.equal(sizeGiBFor({ required_bytes: 0, limit_bytes: 0 }), 1);
  assert.equal(sizeGiBFor({ required_bytes: 1, limit_bytes: 0 }), 1);
  assert.equal(sizeGiBFor({ required_bytes: GiB + 1, limit_bytes: 0 }), 2);
  assert.equal(sizeGiBFor({ required_bytes: 2 * GiB, limit_bytes: 2 * GiB }), 2);
  assert.equal(sizeGiBFor({ required_bytes: 0, limit_bytes: 0 }, 3), 3, 'a content source sets the minimum');
  assert.equal(codeOf(() => sizeGiBFor({ required_bytes: 64 * 1024 * 1024, limit_bytes: 64 * 1024 * 1024 })), status.OUT_OF_RANGE);
  assert.equal(codeOf(() => sizeGiBFor({ required_bytes: 0, limit_bytes: 2 * GiB }, 3)), status.OUT_OF_RANGE);
  assert.equal(codeOf(() => sizeGiBFor({ required_bytes: 2 * GiB, limit_bytes: GiB })), status.INVALID_ARGUMENT);
  assert.equal(codeOf(() => sizeGiBFor({ required_bytes: -1, limit_bytes: 0 })), status.INVALID_ARGUMENT);
  assert.equal(sizeFits(1, { required_bytes: GiB, limit_bytes: 0 }), true);
  assert.equal(sizeFits(1, { required_bytes: 2 * GiB, limit_bytes: 0 }), false);
  assert.equal(sizeFits(2, { required_bytes: 0, limit_bytes: GiB }), false);
});

test('parameters: backend and multiattach; sidecar keys ignored; anything else INVALID_ARGUMENT', () => {
  assert.deepEqual(parseParameters(undefined), {});
  assert.deepEqual(parseParameters({ backend: 'lvm', multiattach: 'True', 'csi.storage.k8s.io/pvc/name': 'data' }), { backend: 'lvm', multiattach: true });
  assert.deepEqual(parseParameters({ multiattach: 'false' }), { multiattach: false });
  assert.equal(codeOf(() => parseParameters({ fstype: 'ext4' })), status.INVALID_ARGUMENT);
  assert.equal(codeOf(() => parseParameters({ multiattach: 'maybe' })), status.INVALID_ARGUMENT);
  assert.equal(codeOf(() => parseParameters({ backend: '' })), status.INVALID_ARGUMENT);
});

interface Item {
  id: string;
  createdAt: string;
}
const key = (i: Item) => ({ createdAt: i.createdAt, id: i.id });
const at = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();

test('pagination: pages in creation order, a token that survives deletions and sees new entries', () => {
  const items: Item[] = ['c', 'a', 'b', 'd'].map((id, i) => ({ id, createdAt: at(i) }));
  const first = paginate(items, key, '', 2);
  assert.deepEqual(first.entries.map((i) => i.id), ['c', 'a']);
  assert.notEqual(first.nextToken, '');
  // The last entry of the first page is deleted and a new entry is created before the next page.
  const later = [...items.filter((i) => i.id !== 'a'), { id: 'e', createdAt: at(10) }];
  const second = paginate(later, key, first.nextToken, 0);
  assert.deepEqual(second.entries.map((i) => i.id), ['b', 'd', 'e']);
  assert.equal(second.nextToken, '');
  assert.deepEqual(paginate(items, key, '', 0).entries.length, 4);
  assert.deepEqual(paginate(items, key, '', 4).nextToken, '', 'an exact last page has no next token');
  // Same creation time: the id breaks the tie.
  const tied: Item[] = [{ id: 'y', createdAt: at(0) }, { id: 'x', createdAt: at(0) }];
  const p1 = paginate(tied, key, '', 1);
  assert.deepEqual(p1.entries.map((i) => i.id), ['x']);
  assert.deepEqual(paginate(tied, key, p1.nextToken, 1).entries.map((i) => i.id), ['y']);
});

test('pagination: a token this plugin did not make is ABORTED; a negative max_entries INVALID_ARGUMENT', () => {
  for (const token of ['invalid-token', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["not a date","x"]').toString('base64url')]) {
    assert.equal(codeOf(() => paginate([], key, token, 0)), status.ABORTED, token);
  }
  assert.equal(codeOf(() => paginate([], key, '', -1)), status.INVALID_ARGUMENT);
  assert.deepEqual(decodeToken(encodeToken({ createdAt: at(3), id: 'v' })), { createdAt: at(3), id: 'v' });
});

test('logs: secrets maps are dropped at any depth; endpoints must be unix sockets', () => {
  const req = { volume_id: 'v', secrets: { password: 'p' }, nested: [{ secrets: { k: 's' }, keep: 1 }] };
  assert.deepEqual(withoutSecrets(req), { volume_id: 'v', nested: [{ keep: 1 }] });
  assert.equal(socketPath('unix:///run/brick/csi.sock'), '/run/brick/csi.sock');
  assert.equal(socketPath('unix:/run/brick/csi.sock'), '/run/brick/csi.sock');
  assert.throws(() => socketPath('tcp://127.0.0.1:1000'), /endpoint/);
  assert.throws(() => socketPath('unix://relative.sock'), /endpoint/);
});
