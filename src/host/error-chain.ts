/**
 * Collect the failures of a multi-step cleanup and raise them together at the end.
 *
 * This is os-brick's `exception.ExceptionChainer`: a teardown runs each step in a context that
 * either records the step's failure and carries on (`force`: leave as clean a host as possible)
 * or lets it propagate at once; when the teardown is over, everything recorded is raised as one
 * error, unless the caller asked to ignore errors. Messages are those of the recorded errors,
 * which Brick masks where they are made, so the chain adds no secret.
 *
 * @module
 */
import { VolumePathNotRemovedError } from '../errors.js';

/** One recorded failure: the step that failed (`flush map 36001405...`) and its error. */
export interface ChainedFailure {
  step: string;
  error: unknown;
}

/** The failures of a cleanup, in the order they happened (os-brick `ExceptionChainer`). */
export class ErrorChain {
  private readonly failures: ChainedFailure[] = [];

  /** True once any failure has been recorded. */
  get failed(): boolean {
    return this.failures.length > 0;
  }

  /** The recorded errors, oldest first. */
  get errors(): unknown[] {
    return this.failures.map((f) => f.error);
  }

  /** One line per failure: `step: message`. */
  get messages(): string[] {
    return this.failures.map((f) => `${f.step}: ${errorMessage(f.error)}`);
  }

  /** Record that `step` failed with `error`. */
  add(step: string, error: unknown): void {
    this.failures.push({ step, error });
  }

  /**
   * Run one step (os-brick `ExceptionChainer.context`). When it fails and `catchFailure` is true
   * (a forced teardown), the failure is recorded and `undefined` returned; otherwise it
   * propagates unchanged.
   * @throws whatever `fn` throws, when `catchFailure` is false
   */
  async run<T>(catchFailure: boolean, step: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (!catchFailure) throw err;
      this.add(step, err);
      return undefined;
    }
  }

  /**
   * The one error carrying every failure: a {@link VolumePathNotRemovedError} whose message lists
   * them (`<what> left work undone: step: message; ...`), with the first as its `cause` and the
   * lines in `details.errors`. `undefined` when nothing failed.
   */
  toError(what: string): VolumePathNotRemovedError | undefined {
    if (!this.failed) return undefined;
    const lines = this.messages;
    return new VolumePathNotRemovedError(`${what} left work undone: ${lines.join('; ')}`, { cause: this.failures[0]!.error, details: { errors: lines } });
  }

  /**
   * Raise {@link toError} when anything failed.
   * @throws {@link VolumePathNotRemovedError} carrying every recorded failure
   */
  throwIfFailed(what: string): void {
    const err = this.toError(what);
    if (err) throw err;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
