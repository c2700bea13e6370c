/**
 * Scheduling priority of this process: the nice value of every thread.
 *
 * Why Brick has this: attaches are latency-bound on a busy host. In the lab, eight concurrent
 * multipath connects keep the guest's CPUs saturated by udev's rule programs, multipathd and the
 * kernel's scans; Brick's own main thread needed about 1.0–1.4 CPU-seconds but spent 3.3–9.5 s of
 * a 5–12 s connect runnable and waiting for a CPU (`/proc/self/task/<tid>/schedstat`). Run at nice
 * −10 the same connects took 2.0–2.3 s instead of 5.2–7.8 s, while Brick's CPU use stayed the same.
 * The process asks for little CPU, so a higher priority mostly shortens its wait for it.
 *
 * On Linux (NPTL) the nice value belongs to a thread, not to the process (setpriority(2), NOTES
 * and BUGS): `setpriority(PRIO_PROCESS, pid)` changes the main thread only. So
 * {@link setProcessNice} sets every thread listed in `/proc/self/task`. Threads made later
 * (libuv's pool starts lazily) inherit the value of the thread that creates them, and so do child
 * processes, so programs Brick runs (iscsiadm, dmsetup, ...) get it too. Lowering the nice value
 * needs `CAP_SYS_NICE` (root has it) or an `RLIMIT_NICE` that allows it (sched(7)).
 *
 * os-brick leaves the priority of its host process alone, and so does Brick unless asked (the
 * CLI's and CSI plugin's `process_nice`, or a library user calling this).
 *
 * @module
 */
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { InvalidInputError, HostIoError } from '../errors.js';

/** The nice values Linux accepts: −20 (most favourable) to 19 (least). */
export const NICE_MIN = -20;
/** See {@link NICE_MIN}. */
export const NICE_MAX = 19;

/** What {@link setProcessNice} did. */
export interface ProcessNiceResult {
  /** The main thread's nice value before. */
  previous: number;
  /** Threads set (the ones that still existed when reached). */
  threads: number;
}

/**
 * Set the nice value of every thread of this process to `nice` (an integer from −20 to 19).
 * Threads that end while this runs are skipped.
 * @param field the name given in an {@link InvalidInputError}, e.g. the configuration key
 * @throws {@link InvalidInputError} (field `field`) when `nice` is not an integer from −20 to 19,
 *   before anything changes
 * @throws {@link HostIoError} (field `field`) when the kernel refuses (EACCES/EPERM: lowering the
 *   value without `CAP_SYS_NICE`), naming the errno; threads already set keep the new value
 */
export function setProcessNice(nice: number, field = 'nice'): ProcessNiceResult {
  if (!Number.isInteger(nice) || nice < NICE_MIN || nice > NICE_MAX) throw new InvalidInputError(field, `must be an integer from ${NICE_MIN} to ${NICE_MAX}, got ${JSON.stringify(nice)}`);
  const previous = getPriority(0);
  let tids: number[];
  try {
    tids = readdirSync('/proc/self/task').map(Number).filter((t) => Number.isInteger(t) && t > 0);
  } catch {
    tids = [process.pid];
  }
  let threads = 0;
  for (const tid of tids) {
    try {
      setPriority(tid, nice);
      threads += 1;
    } catch (err) {
      // os.setPriority throws a SystemError whose errno name is in `info.code` (`code` is ERR_SYSTEM_ERROR).
      const code = (err as { info?: { code?: string } }).info?.code ?? (err as NodeJS.ErrnoException).code;
      if (code === 'ESRCH') continue;
      throw new HostIoError(`cannot apply ${field} ${nice}: the kernel refused (${code ?? (err as Error).message}); lowering the nice value needs CAP_SYS_NICE (root)`, { field, cause: err });
    }
  }
  return { previous, threads };
}
