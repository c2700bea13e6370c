/**
 * The host-wide lab lock: one lab VM at a time on a host, first come first served. The
 * machines the lab runs on have two cores; two TCG guests at once each run at half speed and
 * risk their timeouts.
 *
 * The lock is a pid file created with O_EXCL (a stale one, whose process is gone, is removed).
 * Waiters queue through ticket files (`queue/<ms>-<pid>`) next to it, so a long line of lab runs
 * cannot starve one of them.
 *
 * @module
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';

/** True when a process with this pid exists (EPERM: it exists but belongs to another user). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The tickets in `queue` whose process is alive, oldest first (`own` always counts); the others are removed. */
function liveTickets(queue: string, own: string): string[] {
  return fs
    .readdirSync(queue)
    .filter((t) => {
      const pid = Number(t.split('-')[1]);
      if (t === own || (Number.isInteger(pid) && pid > 0 && pidAlive(pid))) return true;
      fs.rmSync(join(queue, t), { force: true });
      return false;
    })
    .sort();
}

/** Creates the lock file with our pid; returns its release function, or undefined when it exists already. */
function tryCreate(path: string): (() => void) | undefined {
  try {
    fs.writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return undefined;
  }
  return () => {
    try {
      if (fs.readFileSync(path, 'utf8').trim() === String(process.pid)) fs.rmSync(path, { force: true });
    } catch {
      /* already gone */
    }
  };
}

/** What one attempt at the head of the queue gave: the lock, the pid holding it, or neither (try again at once). */
interface Attempt {
  release?: () => void;
  holder?: string;
}

/** At the head of the queue: take the lock, or learn who holds it; a lock file that vanished or is stale means try again. */
function attempt(path: string): Attempt {
  const release = tryCreate(path);
  if (release) return { release };
  let holder: string;
  try {
    holder = fs.readFileSync(path, 'utf8').trim();
  } catch {
    return {};
  }
  const pid = Number(holder);
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) {
    fs.rmSync(path, { force: true });
    return {};
  }
  return { holder };
}

/** The pid in the lock file, for the waiting message. */
function currentHolder(path: string): string {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return 'none yet';
  }
}

/**
 * Takes the host-wide lab lock at `path`, waiting in line for it (polled once a second).
 * @param timeoutMs how long to wait in all, in ms
 * @param onWait called once, when the lock is not free at once, with the holder's pid and how many are ahead
 * @returns the function that releases the lock (it removes the file only while it still holds our pid)
 * @throws Error when the lock is not ours within `timeoutMs`, or the queue directory cannot be written
 */
export async function acquireLock(path: string, timeoutMs: number, onWait: (holder: string, position: number) => void): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  const queue = join(dirname(path), 'queue');
  fs.mkdirSync(queue, { recursive: true });
  const ticket = `${String(Date.now()).padStart(15, '0')}-${process.pid}`;
  fs.writeFileSync(join(queue, ticket), '');
  const leave = (): void => fs.rmSync(join(queue, ticket), { force: true });
  let told = false;
  try {
    for (;;) {
      const waiting = liveTickets(queue, ticket);
      let holder: string;
      if (waiting[0] === ticket) {
        const got = attempt(path);
        if (got.release) {
          leave();
          return got.release;
        }
        if (got.holder === undefined) continue;
        holder = got.holder;
      } else holder = currentHolder(path);
      if (!told) {
        onWait(holder, waiting.indexOf(ticket));
        told = true;
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the lab VM lock ${path} (held by pid ${holder})`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  } catch (e) {
    leave();
    throw e;
  }
}
