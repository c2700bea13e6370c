import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copySparse, dataExtents } from '../../../src/host/copy.js';

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
