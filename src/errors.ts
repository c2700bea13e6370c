/**
 * Brick's one error hierarchy.
 *
 * Every error Brick throws is a {@link BrickError} with a stable `code` (a string that callers
 * may switch on and that never changes between releases) and, where one input was at fault, the
 * `field` that named it. Messages name the offending field, device or object and never contain
 * a secret (CHAP or array passwords): values that may be secret are masked before they reach an
 * error. The classes mirror os-brick's `os_brick.exception` module (`BrickException`,
 * `VolumeDeviceNotFound`, `TargetPortalsNotFound`, `ProcessExecutionError`, ...) and cinderlib's
 * use of Cinder's exceptions (`InvalidInput`, `NotFound`, `InvalidVolume`).
 *
 * The CLI derives its exit status from the code with {@link exitCodeFor}.
 *
 * @module
 */

/** Stable error codes. Append only: a code once published is never renamed. */
export type BrickErrorCode =
  | 'BRICK_ERROR'
  | 'INVALID_INPUT'
  | 'INVALID_CONFIG'
  | 'NOT_FOUND'
  | 'INVALID_STATE'
  | 'ALREADY_EXISTS'
  | 'INSUFFICIENT_CAPACITY'
  | 'PROCESS_EXECUTION'
  | 'PROCESS_TIMEOUT'
  | 'PRIVILEGE_REQUIRED'
  | 'LOCK_TIMEOUT'
  | 'RETRY_EXHAUSTED'
  | 'PROTOCOL_NOT_SUPPORTED'
  | 'VOLUME_DEVICE_NOT_FOUND'
  | 'VOLUME_PATH_NOT_REMOVED'
  | 'TARGET_PORTAL_LOGIN_FAILED'
  | 'AUTHENTICATION_FAILED'
  | 'BACKEND_ERROR'
  | 'BACKEND_UNREACHABLE'
  | 'EXTEND_FAILED'
  | 'PERSISTENCE_ERROR'
  | 'ENCRYPTION_FAILED';

/** Options common to every Brick error. */
export interface BrickErrorOptions {
  /** The input field (dotted path, e.g. `connection_info.data.target_portal`) that was at fault. */
  field?: string;
  /** The error that caused this one, kept for diagnosis (its message must already be masked). */
  cause?: unknown;
  /** Extra structured detail, safe to log (no secrets). */
  details?: Record<string, unknown>;
}

/**
 * Base class of every error Brick throws.
 *
 * `code` is stable; `field` names the faulty input when there is one; `details` carries
 * structured, secret-free context. `toJSON()` gives the shape the CLI prints with `--json`.
 */
export class BrickError extends Error {
  /** The stable error code. */
  readonly code: BrickErrorCode;
  /** The input field at fault, when one is. */
  readonly field: string | undefined;
  /** Structured, secret-free detail. */
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, code: BrickErrorCode = 'BRICK_ERROR', options: BrickErrorOptions = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.field = options.field;
    this.details = options.details;
  }

  /** The error as a plain object: `{ error, code, message, field?, details? }`. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { error: this.name, code: this.code, message: this.message };
    if (this.field !== undefined) out.field = this.field;
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

/** Bad input: a missing, malformed or out-of-range value. Thrown before anything is executed. Cinder's `InvalidInput`. */
export class InvalidInputError extends BrickError {
  constructor(field: string, problem: string, options: Omit<BrickErrorOptions, 'field'> = {}) {
    super(`invalid ${field}: ${problem}`, 'INVALID_INPUT', { ...options, field });
  }
}

/** A configuration file or backend configuration that cannot be used. */
export class InvalidConfigError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'INVALID_CONFIG', options);
  }
}

/** A named object (volume, snapshot, backend, device, host...) does not exist. Cinder's `NotFound`. */
export class NotFoundError extends BrickError {
  constructor(kind: string, id: string, options: BrickErrorOptions = {}) {
    super(`${kind} ${id} not found`, 'NOT_FOUND', { ...options, details: { kind, id, ...options.details } });
  }
}

/** The object exists but its state forbids the operation (e.g. deleting a volume with snapshots). Cinder's `InvalidVolume`. */
export class InvalidStateError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'INVALID_STATE', options);
  }
}

/** An object with that name or id already exists (or a backend name is reused with another config). */
export class AlreadyExistsError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'ALREADY_EXISTS', options);
  }
}

/** Not enough free capacity for the requested size. Cinder's `VolumeSizeExceedsAvailableQuota` / `NotEnoughSpace`. */
export class InsufficientCapacityError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'INSUFFICIENT_CAPACITY', options);
  }
}

/**
 * A program exited with an unexpected status. os-brick's (oslo.concurrency's) `ProcessExecutionError`.
 * `command` is the argv with secrets masked; `stdout`/`stderr` are masked too.
 */
export class ProcessExecutionError extends BrickError {
  readonly command: string[];
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;

  constructor(command: string[], exitCode: number | null, stdout: string, stderr: string, options: BrickErrorOptions = {}) {
    const tail = stderr.trim().split('\n').slice(-3).join(' | ');
    super(`command ${command.join(' ')} exited with status ${exitCode}${tail ? `: ${tail}` : ''}`, 'PROCESS_EXECUTION', {
      ...options,
      details: { command, exit_code: exitCode, ...options.details },
    });
    this.command = command;
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** A program did not finish within its timeout and was killed. */
export class ProcessTimeoutError extends BrickError {
  readonly command: string[];
  readonly timeoutMs: number;

  constructor(command: string[], timeoutMs: number) {
    super(`command ${command.join(' ')} did not finish within ${timeoutMs} ms and was killed`, 'PROCESS_TIMEOUT', {
      details: { command, timeout_ms: timeoutMs },
    });
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

/** The operation needs root and neither root nor a working root helper is available. */
export class PrivilegeError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'PRIVILEGE_REQUIRED', options);
  }
}

/**
 * A file or kernel attribute on the host (sysfs, configfs, `/etc`, `/run`) could not be read or
 * written by this process. `details` carries the host `path` and, for a failed system call, the
 * `errno` name (`EACCES`, `EINVAL`, `ENODEV`...). The code is the generic `BRICK_ERROR` that
 * these failures have always reported, so the CLI's exit status for them is unchanged.
 */
export class HostIoError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'BRICK_ERROR', options);
  }
}

/**
 * A connect that was abandoned while one of its steps waited (its caller gave up, or a
 * disconnect of the same volume stopped the paths still joining in the background). Internal
 * to the connectors that run background path attaches; the code stays the generic `BRICK_ERROR`.
 */
export class ConnectAbandonedError extends BrickError {
  constructor(message = 'connect abandoned', options: BrickErrorOptions = {}) {
    super(message, 'BRICK_ERROR', options);
  }
}

/** A lock could not be taken within its bound. */
export class LockTimeoutError extends BrickError {
  constructor(name: string, timeoutMs: number) {
    super(`lock ${name} not acquired within ${timeoutMs} ms`, 'LOCK_TIMEOUT', { details: { lock: name, timeout_ms: timeoutMs } });
  }
}

/** A bounded retry or wait ran out. os-brick's `ExceedRetryLimit`. */
export class RetryExhaustedError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'RETRY_EXHAUSTED', options);
  }
}

/** An unknown connector protocol or driver name. os-brick's `InvalidConnectorProtocol` / `ProtocolNotSupported`. */
export class ProtocolNotSupportedError extends BrickError {
  constructor(field: string, name: string, known: readonly string[]) {
    super(`invalid ${field}: ${JSON.stringify(name)} is not supported (known: ${known.join(', ')})`, 'PROTOCOL_NOT_SUPPORTED', {
      field,
      details: { name, known },
    });
  }
}

/** The volume's device did not appear on the host. os-brick's `VolumeDeviceNotFound`. */
export class VolumeDeviceNotFoundError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'VOLUME_DEVICE_NOT_FOUND', options);
  }
}

/** A device or path could not be removed on disconnect. os-brick's `VolumePathNotRemoved`. */
export class VolumePathNotRemovedError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'VOLUME_PATH_NOT_REMOVED', options);
  }
}

/** Login to the target portal(s) failed. os-brick's `FailedISCSITargetPortalLogin` / `TargetPortalsNotFound`. */
export class TargetPortalLoginError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'TARGET_PORTAL_LOGIN_FAILED', options);
  }
}

/** Credentials were refused (CHAP, array password, SSH key). */
export class AuthenticationError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'AUTHENTICATION_FAILED', options);
  }
}

/** A storage backend (driver or array) reported a failure. Cinder's `VolumeBackendAPIException`. */
export class BackendError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'BACKEND_ERROR', options);
  }
}

/** A storage backend's management endpoint could not be reached. */
export class BackendUnreachableError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'BACKEND_UNREACHABLE', options);
  }
}

/** Extending a volume or rescanning its new size failed. os-brick's `ExtendVolumeError`. */
export class ExtendError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'EXTEND_FAILED', options);
  }
}

/** The metadata store failed. */
export class PersistenceError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'PERSISTENCE_ERROR', options);
  }
}

/**
 * Opening, formatting, resizing or closing a dm-crypt mapping failed (os-brick's encryptors, where
 * `cryptsetup` raises `ProcessExecutionError`), or an encryption key could not be had from the key
 * manager. `details.reason` says which: `wrong-key` (cryptsetup exit status 2, "No key available
 * with this passphrase"), `busy` (status 5: the mapping exists or the device is in use),
 * `no-device` (status 4), `key-store` (the key manager), `cryptsetup` (anything else). The key
 * itself never appears in the message or the details.
 */
export class EncryptionError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'ENCRYPTION_FAILED', options);
  }
}

/**
 * A check of an operation's outcome found something other than what the operation promised
 * (data read back from a device, a device's size, objects left behind), as `brick quickstart`
 * verifies every step. Code `BRICK_ERROR`: nothing more specific is known about the cause.
 */
export class VerificationError extends BrickError {
  constructor(message: string, options: BrickErrorOptions = {}) {
    super(message, 'BRICK_ERROR', options);
  }
}

/**
 * Process exit status for an error, used by the `brick` CLI:
 * 2 bad input or config, 3 not found, 4 invalid state or already exists, 5 capacity,
 * 6 privilege, 7 timeouts and exhausted retries, 8 device, login or encryption failures, 9 backend errors,
 * 1 anything else (including anything that is not a {@link BrickError}).
 */
export function exitCodeFor(err: unknown): number {
  return err instanceof BrickError ? exitCodeForCode(err.code) : 1;
}

/**
 * Process exit status for an error code, as {@link exitCodeFor} gives it for an error with that
 * code: for an error known only by its JSON form (`{ code }`). An unknown code gives 1.
 */
export function exitCodeForCode(code: string): number {
  switch (code as BrickErrorCode) {
    case 'INVALID_INPUT':
    case 'INVALID_CONFIG':
    case 'PROTOCOL_NOT_SUPPORTED':
      return 2;
    case 'NOT_FOUND':
      return 3;
    case 'INVALID_STATE':
    case 'ALREADY_EXISTS':
      return 4;
    case 'INSUFFICIENT_CAPACITY':
      return 5;
    case 'PRIVILEGE_REQUIRED':
      return 6;
    case 'PROCESS_TIMEOUT':
    case 'LOCK_TIMEOUT':
    case 'RETRY_EXHAUSTED':
      return 7;
    case 'VOLUME_DEVICE_NOT_FOUND':
    case 'VOLUME_PATH_NOT_REMOVED':
    case 'TARGET_PORTAL_LOGIN_FAILED':
    case 'AUTHENTICATION_FAILED':
    case 'EXTEND_FAILED':
    case 'ENCRYPTION_FAILED':
      return 8;
    case 'BACKEND_ERROR':
    case 'BACKEND_UNREACHABLE':
    case 'PERSISTENCE_ERROR':
      return 9;
    default:
      return 1;
  }
}
