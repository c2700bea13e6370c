/**
 * The workers' write journals and the data patterns they write.
 *
 * Each worker process appends JSON lines to its own file, each line fsynced before the worker
 * goes on: `intent` before it writes a pattern to a volume, `done` after the device write and
 * its fsync returned, `delete` before it asks to delete a volume. Worker `w` writes only in its
 * own region of a volume (64 MiB at `w * 64 MiB`), one operation at a time, and a killed
 * worker's successor starts after it is dead, so for every (volume, offset) the journals give a
 * total order of writes. The last write there is known to be on disk when its `done` line is
 * present and no later `intent` for the same place exists; a place whose last intent has no
 * `done` (killed or failed mid-write) may hold anything and is not checked.
 */
import { closeSync, fsyncSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Bytes per written block. */
export const BLOCK = 64 * 1024;
/** Bytes per worker region. */
export const REGION = 64 * 1024 * 1024;

/** One journal line. */
export type JournalEntry =
  | { t: 'intent'; n: number; vol: string; off: number; tag: string }
  | { t: 'done'; n: number }
  | { t: 'delete'; vol: string };

/** Byte offset of `slot` in worker `worker`'s region. */
export function writeOffset(worker: number, slot: number): number {
  return worker * REGION + slot * BLOCK;
}

/** The block written for `tag`: the tag and a separator, repeated. */
export function pattern(tag: string): Buffer {
  const unit = Buffer.from(`${tag}|`);
  const buf = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i += unit.length) unit.copy(buf, i);
  return buf;
}

/** Journal file name of worker `worker`, incarnation `life` (0 first, 1 after a kill). */
export function journalName(worker: number, life: number): string {
  return `journal-${String(worker).padStart(2, '0')}-${life}.jsonl`;
}

/** An append-only journal whose every line is on disk when {@link Journal.append} returns. */
export class Journal {
  private readonly fd: number;
  constructor(path: string) {
    this.fd = openSync(path, 'a', 0o600);
  }
  append(entry: JournalEntry): void {
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    fsyncSync(this.fd);
  }
  close(): void {
    closeSync(this.fd);
  }
}

/** What the journals say must be found on disk. */
export interface Expectations {
  /** Volumes some worker asked to delete (their data is not checked). */
  deleted: Set<string>;
  /** Per volume id, offset -> tag of the block that must be there. */
  blocks: Map<string, Map<number, string>>;
}

/**
 * Read every journal in `dir` in (worker, incarnation) order and work out the expected blocks.
 * A torn last line (a kill in the middle of `writeSync`) is ignored: its fsync never returned.
 */
export function readJournals(dir: string): Expectations {
  const files = readdirSync(dir).filter((f) => /^journal-\d+-\d+\.jsonl$/.test(f)).sort();
  const deleted = new Set<string>();
  const last = new Map<string, { vol: string; off: number; tag: string; done: boolean }>();
  for (const f of files) {
    const open = new Map<number, string>();
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      let e: JournalEntry;
      try {
        e = JSON.parse(line) as JournalEntry;
      } catch {
        continue;
      }
      if (e.t === 'delete') deleted.add(e.vol);
      else if (e.t === 'intent') {
        const key = `${e.vol}@${e.off}`;
        last.set(key, { vol: e.vol, off: e.off, tag: e.tag, done: false });
        open.set(e.n, key);
      } else {
        const key = open.get(e.n);
        const cur = key === undefined ? undefined : last.get(key);
        if (cur) cur.done = true;
      }
    }
  }
  const blocks = new Map<string, Map<number, string>>();
  for (const { vol, off, tag, done } of last.values()) {
    if (!done) continue;
    if (!blocks.has(vol)) blocks.set(vol, new Map());
    blocks.get(vol)!.set(off, tag);
  }
  return { deleted, blocks };
}
