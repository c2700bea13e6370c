/**
 * Bounded retries and polls with deadlines.
 *
 * Brick never sleeps a fixed time and hopes: every wait is a poll with a deadline the caller
 * can set, and every retry loop has a bounded number of attempts. This replaces os-brick's
 * `utils.retry` decorator (exponential back-off over a fixed attempt count) and its
 * `time.sleep` loops in `_get_potential_volume_paths` / `wait_for_volumes_removal`.
 *
 * @module
 */
import { RetryExhaustedError, InvalidInputError } from '../errors.js';

/** Resolve after `ms` milliseconds (a building block for polls, never used as a bare wait for a condition). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Options for {@link retry}. */
export interface RetryOptions {
  /** Total attempts, at least 1. */
  attempts: number;
  /** Delay before the second attempt, in ms. Default 100. */
  delayMs?: number;
  /** Multiplier applied to the delay after each failure. Default 2. */
  backoff?: number;
  /** Cap on a single delay, in ms. Default 5 000. */
  maxDelayMs?: number;
  /** Retry only errors for which this returns true; others are thrown at once. Default: retry all. */
  retryIf?: (err: unknown) => boolean;
  /** Called after each failed attempt that will be retried. */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Run `fn` up to `attempts` times with exponential back-off. The last error is rethrown as is
 * (so its type and code survive); errors `retryIf` rejects are thrown at once.
 * @throws whatever `fn` threw last
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  if (!Number.isInteger(options.attempts) || options.attempts < 1) throw new InvalidInputError('attempts', 'must be an integer of at least 1');
  let wait = options.delayMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= options.attempts || (options.retryIf && !options.retryIf(err))) throw err;
      options.onRetry?.(err, attempt);
      await delay(Math.min(wait, options.maxDelayMs ?? 5_000));
      wait *= options.backoff ?? 2;
    }
  }
}

/** Options for {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this many ms. */
  timeoutMs: number;
  /** First poll interval in ms (default 20); it grows by half each poll up to `maxIntervalMs`. */
  intervalMs?: number;
  /** Longest poll interval in ms. Default 500. */
  maxIntervalMs?: number;
  /** What is being waited for, used in the error message. */
  description: string;
  /** Stop early (the wait then throws as if timed out). */
  signal?: AbortSignal;
}

/**
 * Poll `probe` until it returns a value other than `undefined`/`null`/`false`, and return it.
 * The probe runs at once, then at growing intervals, until the deadline.
 * @throws {@link RetryExhaustedError} when the deadline passes (message: "timed out after N ms waiting for DESCRIPTION")
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let interval = options.intervalMs ?? 20;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v as T;
    const left = deadline - Date.now();
    if (left <= 0 || options.signal?.aborted) {
      throw new RetryExhaustedError(`timed out after ${options.timeoutMs} ms waiting for ${options.description}`, {
        details: { timeout_ms: options.timeoutMs },
      });
    }
    await delay(Math.min(interval, left), options.signal);
    interval = Math.min(Math.ceil(interval * 1.5), options.maxIntervalMs ?? 500);
  }
}
