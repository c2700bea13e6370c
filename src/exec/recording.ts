/**
 * A recording fake Executor for unit tests.
 *
 * It records every call (argv with the root helper applied, masked as the real executor would
 * show it, and the raw argv), and answers from handlers registered with {@link RecordingExecutor.on}.
 * A handler may be a fixed result or a function that inspects the argv, changes a fixture tree
 * (to play the kernel's part: a scan that makes a device appear) and returns a result. Calls
 * that no handler matches fail with exit status 127, so a test never silently passes a command
 * it did not expect.
 *
 * @module
 */
import { ProcessExecutionError, ProcessTimeoutError } from '../errors.js';
import type { ExecOptions, ExecResult, Executor } from './executor.js';
import { maskArgv, maskText } from './mask.js';

/** One recorded call. */
export interface RecordedCall {
  /** The argv as run (root helper prefix included), unmasked: only tests see it. */
  argv: string[];
  /** The argv as the real executor would log it (secrets masked). */
  shown: string[];
  /** The options passed. */
  options: ExecOptions;
}

/** What a handler returns: a partial result (missing fields default to empty / exit 0), or `'timeout'`. */
export type FakeResult = Partial<ExecResult> | 'timeout';

/** A handler: a fixed result, or a function of the argv (root helper stripped) and options. */
export type FakeHandler = FakeResult | ((argv: string[], options: ExecOptions) => FakeResult | Promise<FakeResult>);

/** How a handler is matched: an argv prefix, a predicate, or a regular expression over the argv joined with spaces. */
export type FakeMatcher = readonly string[] | RegExp | ((argv: string[]) => boolean);

function matches(m: FakeMatcher, argv: string[]): boolean {
  if (m instanceof RegExp) return m.test(argv.join(' '));
  if (typeof m === 'function') return m(argv);
  return m.every((v, i) => argv[i] === v);
}

/** The recording fake. Later `on()` registrations take precedence over earlier ones. */
export class RecordingExecutor implements Executor {
  readonly rootHelper: readonly string[];
  /** Every call, in order. */
  readonly calls: RecordedCall[] = [];
  private readonly handlers: { matcher: FakeMatcher; handler: FakeHandler; times: number }[] = [];

  constructor(options: { rootHelper?: readonly string[] } = {}) {
    this.rootHelper = [...(options.rootHelper ?? [])];
  }

  /**
   * Answer calls matching `matcher` with `handler`. `times` limits how many calls it answers
   * (default unlimited). Returns this, for chaining.
   */
  on(matcher: FakeMatcher, handler: FakeHandler, times = Infinity): this {
    this.handlers.unshift({ matcher, handler, times });
    return this;
  }

  /** The recorded argvs (root helper stripped), each joined with spaces: handy for assertions. */
  commands(): string[] {
    return this.calls.map((c) => c.argv.slice(c.options.root === false ? 0 : this.rootHelper.length).join(' '));
  }

  /** Everything recorded, masked, as one string (for "no secret appears" assertions). */
  shownText(): string {
    return this.calls.map((c) => c.shown.join(' ')).join('\n');
  }

  /**
   * Record the call and answer it from the first matching handler that has uses left.
   * @throws {@link ProcessExecutionError} (exit status 127) when no handler matches, so an unexpected command fails the test;
   *   the errors a real executor throws when the handler's result asks for them (non-zero exit, `'timeout'`)
   */
  async run(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const bare = [...argv];
    const full = options.root === false ? bare : [...this.rootHelper, ...bare];
    const shown = maskArgv(full, options.secrets ?? []);
    this.calls.push({ argv: full, shown, options });
    const entry = this.handlers.find((h) => h.times > 0 && matches(h.matcher, bare));
    if (!entry) throw new ProcessExecutionError(shown, 127, '', `fake executor: no handler for ${shown.join(' ')}`);
    entry.times -= 1;
    const raw = typeof entry.handler === 'function' ? await entry.handler(bare, options) : entry.handler;
    if (raw === 'timeout') throw new ProcessTimeoutError(shown, options.timeoutMs ?? 0);
    const result: ExecResult = { stdout: raw.stdout ?? '', stderr: raw.stderr ?? '', exitCode: raw.exitCode === undefined ? 0 : raw.exitCode };
    const check = options.checkExitCode;
    const ok = check === false ? true : check === undefined || check === true ? result.exitCode === 0 : result.exitCode !== null && check.includes(result.exitCode);
    if (!ok) {
      const secrets = options.secrets ?? [];
      throw new ProcessExecutionError(shown, result.exitCode, maskText(result.stdout, secrets), maskText(result.stderr, secrets));
    }
    return result;
  }
}
