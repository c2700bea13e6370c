import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copySparse, copyVolumeData, dataExtents } from '../../../src/host/copy.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';

async function sparseFile(path: string, size: number, writes: [number, string][]): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  for (const [off, text] of writes) await fh.write(Buffer.from(text), 0, text.length, off);
  await fh.close();
}

test('the streamed copy keeps data, size and holes, and reports progress to the total', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-copy-'));
  try {
    const src = join(dir, 'src.img');
    const size = 256 * 1024 * 1024;
    await sparseFile(src, size, [[0, 'head'], [100 * 1024 * 1024 + 7, 'middle'], [size - 4, 'tail']]);
    const seen: number[] = [];
    const method = await copySparse(src, join(dir, 'dst.img'), { reflink: false, onProgress: (d, t) => { assert.equal(t, size); seen.push(d); } });
    assert.equal(method, 'stream');
    const a = await readFile(src);
    const b = await readFile(join(dir, 'dst.img'));
    assert.ok(a.equals(b), 'contents equal');
    const st = await stat(join(dir, 'dst.img'));
    assert.equal(st.size, size);
    assert.ok(st.blocks * 512 < 16 * 1024 * 1024, `destination stays sparse (${st.blocks * 512} bytes allocated)`);
    assert.equal(seen.at(-1), size);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, 'progress never goes back');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('dataExtents finds the written regions of a sparse file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-copy-'));
  try {
    const f = join(dir, 'x.img');
    await sparseFile(f, 64 * 1024 * 1024, [[32 * 1024 * 1024, 'x']]);
    const fh = await open(f, 'r');
    const ext = dataExtents(fh.fd, 64 * 1024 * 1024);
    await fh.close();
    const covered = ext.reduce((n, [s, e]) => n + (e - s), 0);
    assert.ok(ext.some(([s, e]) => s <= 32 * 1024 * 1024 && e > 32 * 1024 * 1024), JSON.stringify(ext));
    assert.ok(covered < 64 * 1024 * 1024, 'holes are not reported as data');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('copying onto an existing destination fails and leaves it untouched', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-copy-'));
  try {
    await writeFile(join(dir, 'a'), 'a');
    await writeFile(join(dir, 'b'), 'keep');
    await assert.rejects(copySparse(join(dir, 'a'), join(dir, 'b'), { reflink: false }), /EEXIST/);
    assert.equal(await readFile(join(dir, 'b'), 'utf8'), 'keep');
    await assert.rejects(copySparse(join(dir, 'missing'), join(dir, 'c')), /ENOENT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const MiB = 1024 * 1024;

test('copyVolumeData runs bounded dd chunks through the executor (root helper applied) and reports progress after each', async () => {
  const executor = new RecordingExecutor({ rootHelper: ['sudo', '-n'] }).on(['dd'], {});
  const seen: [number, number][] = [];
  const method = await copyVolumeData({ executor }, '/dev/sda', '/dev/sdb', { sizeBytes: 300 * MiB, chunkBytes: 128 * MiB, onProgress: (d, t) => seen.push([d, t]) });
  assert.equal(method, 'dd');
  const run = (skip: number, count: number) => ['sudo', '-n', 'dd', 'if=/dev/sda', 'of=/dev/sdb', 'bs=1M', `skip=${skip}`, `seek=${skip}`, `count=${count}`, 'iflag=direct', 'oflag=direct', 'conv=notrunc'];
  assert.deepEqual(executor.calls.map((c) => c.argv), [run(0, 128), run(128, 128), run(256, 44)]);
  assert.deepEqual(executor.calls.map((c) => c.options.timeoutMs), [188_000, 188_000, 104_000], '60 s plus 1 s per MiB of the run');
  assert.deepEqual(seen, [[0, 300 * MiB], [128 * MiB, 300 * MiB], [256 * MiB, 300 * MiB], [300 * MiB, 300 * MiB]]);
});

test('copyVolumeData: sparse, buffered, synced, odd block size, and the tail rounded up to a whole block', async () => {
  const executor = new RecordingExecutor().on(['dd'], {});
  const seen: number[] = [];
  await copyVolumeData({ executor }, 'a', 'b', { sizeBytes: 10_000, blockBytes: 4096, chunkBytes: 8192, sparse: true, direct: false, sync: true, timeoutMs: 5_000, onProgress: (d) => seen.push(d) });
  assert.deepEqual(executor.commands(), [
    'dd if=a of=b bs=4K skip=0 seek=0 count=2 conv=sparse,notrunc',
    'dd if=a of=b bs=4K skip=2 seek=2 count=1 conv=sparse,notrunc,fdatasync',
  ]);
  assert.deepEqual(executor.calls.map((c) => c.options.timeoutMs), [5_000, 5_000]);
  assert.deepEqual(seen, [0, 8192, 10_000]);
});

test('copyVolumeData stops at the first failed run and reports no progress past it', async () => {
  const executor = new RecordingExecutor().on(['dd'], {}).on((argv) => argv.includes('skip=2'), { exitCode: 1, stderr: 'dd: error reading: Input/output error\n' });
  const seen: number[] = [];
  await assert.rejects(copyVolumeData({ executor }, 's', 'd', { sizeBytes: 4 * MiB, chunkBytes: 2 * MiB, onProgress: (d) => seen.push(d) }), /Input\/output error/);
  assert.equal(executor.calls.length, 2);
  assert.deepEqual(seen, [0, 2 * MiB]);
});

test('copyVolumeData copies files Brick owns in-process (no program run), keeping holes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-copy-'));
  try {
    const src = join(dir, 'src.img');
    await sparseFile(src, 64 * MiB, [[5, 'data']]);
    const executor = new RecordingExecutor();
    const seen: number[] = [];
    const method = await copyVolumeData({ executor }, src, join(dir, 'dst.img'), { sizeBytes: 64 * MiB, ownedFiles: { reflink: false }, onProgress: (d) => seen.push(d) });
    assert.equal(method, 'stream');
    assert.equal(executor.calls.length, 0);
    assert.ok((await readFile(src)).equals(await readFile(join(dir, 'dst.img'))));
    assert.equal(seen.at(-1), 64 * MiB);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
