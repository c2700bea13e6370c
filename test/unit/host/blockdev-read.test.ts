import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFirstBlock } from '../../../src/host/blockdev.js';
import { createHostContext } from '../../../src/host/context.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';

test('readFirstBlock reads the first block in-process: data reads, empty, missing and unreadable do not; no program runs', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'brick-read-'));
  try {
    fs.mkdirSync(join(root, 'dev/notadevice'), { recursive: true });
    fs.writeFileSync(join(root, 'dev/dm-0'), Buffer.alloc(8192, 7));
    fs.writeFileSync(join(root, 'dev/dm-1'), '');
    const executor = new RecordingExecutor();
    const ctx = createHostContext({ hostRoot: root, executor });
    assert.equal(await readFirstBlock(ctx, '/dev/dm-0'), true);
    assert.equal(await readFirstBlock(ctx, '/dev/dm-1'), false, 'a device of size 0');
    assert.equal(await readFirstBlock(ctx, '/dev/dm-9'), false, 'gone');
    assert.equal(await readFirstBlock(ctx, '/dev/notadevice'), false, 'read fails (EISDIR)');
    assert.equal(executor.calls.length, 0);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
