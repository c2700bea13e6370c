/**
 * `setup()`: the library's global configuration, cinderlib's `cinderlib.setup(...)`.
 *
 * cinderlib keeps this in class attributes of `Backend`; Brick returns a {@link BrickContext}
 * and also remembers the most recent one so that `new Backend(config)` works as in cinderlib
 * without passing it. Programs that need two independent configurations pass `{ context }`
 * explicitly.
 *
 * @module
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Executor } from '../exec/executor.js';
import { createHostContext, type HostContext } from '../host/context.js';
import { AttachJournal } from '../host/journal.js';
import { silentLogger, type Logger } from '../log.js';
import type { Store } from '../persistence/store.js';
import { FileKeyManager, type KeyManager } from '../host/key-manager.js';
import { MemoryStore } from '../persistence/memory.js';
import { InvalidConfigError } from '../errors.js';

/** Options for {@link setup}, cinderlib's `setup()` arguments in camelCase. */
export interface SetupOptions {
  /** The metadata store. Default: an in-memory store (the CLI passes the SQLite default). */
  persistence?: Store;
  /** Root helper prefix for privileged commands, e.g. `['sudo', '-n']`. Default none. */
  rootHelper?: readonly string[];
  /** Directory for cross-process lock files. Default `<stateDir>/locks`. */
  lockPath?: string;
  /** Directory where drivers keep private state and the file backend its default pool. Required unless `host` is given with everything. */
  stateDir?: string;
  /** Structured logger; default silent. */
  logger?: Logger;
  /** Filesystem root for host reads (tests point it at a fixture tree). Default `/`. */
  hostRoot?: string;
  /** Executor; default a ProcessExecutor with the root helper. */
  executor?: Executor;
  /** This host's name as reported in connector properties. Default `os.hostname()`. */
  hostName?: string;
  /** This host's IP for connector properties. Default: first non-internal IPv4. */
  myIp?: string;
  /** Progress of long copies (bytes done, bytes total). */
  onProgress?: (operation: string, done: number, total: number) => void;
  /** Default bound on lock waits in ms. */
  lockTimeoutMs?: number;
  /**
   * The host attach journal connectors and drivers record into (`host/journal.ts`). Default one
   * at `<stateDir>/journal`; the CLI passes its own (with its crash-test hook).
   */
  journal?: AttachJournal;
  /**
   * Where encrypted volumes' keys are kept (Castellan's key manager in Cinder and Nova). Default
   * a {@link FileKeyManager} under `<stateDir>/keys` (one 0600 file per key, the directory
   * private to the running user, created on first use).
   */
  keyManager?: KeyManager;
}

/**
 * What `setup()` returns: the host seams (it is a {@link HostContext}: executor, host root,
 * logger, locks) and the configuration every Backend of this program shares.
 */
export interface BrickContext extends HostContext {
  readonly store: Store;
  readonly stateDir: string;
  readonly hostName: string;
  readonly myIp: string | undefined;
  readonly onProgress: SetupOptions['onProgress'];
  /** The encryption keys of encrypted volumes. */
  readonly keyManager: KeyManager;
  /** Backends by name (cinderlib's `Backend.backends`). */
  readonly backends: Map<string, unknown>;
  /** Identity map: one object per id, so loading twice gives the same instance. */
  readonly objects: Map<string, unknown>;
}

let current: BrickContext | undefined;

/**
 * Configure the library. Call once at start-up; returns the context and makes it the default
 * for `new Backend(config)`.
 * @throws {@link InvalidConfigError} (field `stateDir`) when no state directory is given
 */
export function setup(options: SetupOptions = {}): BrickContext {
  if (!options.stateDir) throw new InvalidConfigError('setup() needs stateDir: the directory for driver state and default pools', { field: 'stateDir' });
  const logger = options.logger ?? silentLogger;
  current = {
    ...createHostContext({
      executor: options.executor,
      rootHelper: options.rootHelper ?? [],
      hostRoot: options.hostRoot ?? '/',
      logger,
      lockPath: options.lockPath ?? join(options.stateDir, 'locks'),
      journal: options.journal ?? new AttachJournal(join(options.stateDir, 'journal')),
    }),
    store: options.persistence ?? new MemoryStore(),
    stateDir: options.stateDir,
    hostName: options.hostName ?? hostname(),
    myIp: options.myIp,
    onProgress: options.onProgress,
    keyManager: options.keyManager ?? new FileKeyManager(join(options.stateDir, 'keys')),
    backends: new Map(),
    objects: new Map(),
  };
  return current;
}

/**
 * The context from the most recent `setup()`.
 * @throws {@link InvalidConfigError} when `setup()` was never called
 */
export function currentContext(): BrickContext {
  if (!current) throw new InvalidConfigError('call setup() before creating a Backend', { field: 'setup' });
  return current;
}
