/**
 * The CLI's runtime: configuration, store, library context and backends, built once per
 * command from flags and the environment (the only place below the entry point that the
 * environment is read).
 *
 * @module
 */
import { join } from 'node:path';
import { openStore } from '../persistence/factory.js';
import { setup, type BrickContext } from '../library/context.js';
import { Backend } from '../library/backend.js';
import { createLogger, type Logger } from '../log.js';
import { ensurePrivateDirectory } from '../host/private-dir.js';
import { AttachJournal } from '../host/journal.js';
import { setProcessNice } from '../host/priority.js';
import { loadConfig, loadConfigSync, checkBackends, backendConfig, type BrickConfig } from './config.js';
import type { Store } from '../persistence/store.js';
import '../initiator/connectors/index.js';

/** Global flags every command accepts. */
export interface GlobalFlags {
  config?: string;
  json?: boolean;
  backend?: string;
  rootHelper?: string;
  verbose?: boolean;
}

/** What a command works with. */
export interface Runtime {
  config: BrickConfig;
  context: BrickContext;
  store: Store;
  logger: Logger;
  rootHelper: string[];
  /** The backend named by `--backend` or the default, set up and ready. */
  backend(name?: string): Promise<Backend>;
  /** Every configured backend, set up. */
  allBackends(): Promise<Backend[]>;
  close(): Promise<void>;
}

/**
 * The root helper to use: the flag, else the config, else none when running as root and
 * `sudo -n` otherwise (os-brick's deployments pass `sudo` or `privsep-helper` the same way).
 */
export function resolveRootHelper(flag: string | undefined, config: BrickConfig, uid: number): string[] {
  if (flag !== undefined) return flag.split(/\s+/).filter(Boolean);
  if (config.rootHelper !== undefined) return config.rootHelper;
  return uid === 0 ? [] : ['sudo', '-n'];
}

/**
 * The lock directory (`lock_path`) of the configuration named by `--config` or `BRICK_CONFIG`,
 * with the default for the user running this process: what host-side commands that need no
 * store (`brick connector connect/disconnect/extend`) give the connector, so that they and the
 * library lock in the same place.
 * @throws {@link InvalidConfigError} as {@link loadConfig}
 */
export function configuredLockPath(flags: GlobalFlags, env: NodeJS.ProcessEnv): string {
  return loadConfigSync(flags.config ?? env.BRICK_CONFIG, env, process.geteuid?.() ?? 0).lockPath;
}

/**
 * The crash-test hook of the attach journal: when `BRICK_TEST_KILL_AT` in `env` names a journal
 * event (`intent:<kind>`, `attached`, `detach`; see `AttachJournalOptions.onEvent`), this
 * process kills itself with SIGKILL the moment the journal reaches it, as a `kill -9` at that
 * point would. For crash tests only; unset, it does nothing.
 */
export function journalKillHook(env: NodeJS.ProcessEnv): (event: string) => void {
  const at = env.BRICK_TEST_KILL_AT;
  return (event) => {
    if (at && event === at) process.kill(process.pid, 'SIGKILL');
  };
}

/**
 * The host attach journal (`<data_dir>/journal`) of the configuration named by `--config` or
 * `BRICK_CONFIG`, for host-side commands that need no store (`brick connector connect` and
 * `disconnect`): they record into the same journal as the library. Makes the data directory
 * (private, as {@link createRuntime} does); the journal directories are made on first write.
 * @throws {@link InvalidConfigError} as {@link loadConfig}; field `data_dir` as {@link createRuntime}
 * @throws {@link HostIoError} (field `process_nice`) when the configured nice value cannot be set (below 0 without root)
 */
export function configuredJournal(flags: GlobalFlags, env: NodeJS.ProcessEnv): AttachJournal {
  const config = loadConfigSync(flags.config ?? env.BRICK_CONFIG, env, process.geteuid?.() ?? 0);
  ensurePrivateDirectory(config.dataDir, process.geteuid?.() ?? 0, 'data_dir');
  if (config.processNice !== undefined) setProcessNice(config.processNice, 'process_nice');
  return new AttachJournal(join(config.dataDir, 'journal'), { onEvent: journalKillHook(env) });
}

/**
 * Build the runtime for one command: load and check the configuration (drivers known,
 * `--backend` configured) before the data directory is made or the store opened, so that a bad
 * configuration leaves nothing behind. The data directory must be (or is made, 0700) a private
 * directory of the running user, as the lock and pool directories: `ensurePrivateDirectory` in
 * `host/private-dir.ts`.
 * @throws {@link InvalidConfigError} for a configuration that cannot be used (naming the file and key); field
 *   `data_dir` when the data directory is `/`, under `/proc`, `/sys` or `/dev`, not a directory, cannot be
 *   created, or is owned by another user or writable by group or others
 * @throws {@link NotFoundError} (field `backend`) when `--backend` names no configured backend
 * @throws {@link HostIoError} (field `process_nice`) when the configured nice value cannot be set (below 0 without root)
 */
export async function createRuntime(flags: GlobalFlags, env: NodeJS.ProcessEnv, onProgress?: (op: string, done: number, total: number) => void): Promise<Runtime> {
  const config = await loadConfig(flags.config ?? env.BRICK_CONFIG, env, process.geteuid?.() ?? 0);
  checkBackends(config, flags.backend);
  const logger = flags.verbose ? createLogger({ destination: process.stderr, level: 'debug' }) : createLogger();
  if (config.processNice !== undefined) setProcessNice(config.processNice, 'process_nice');
  ensurePrivateDirectory(config.dataDir, process.geteuid?.() ?? 0, 'data_dir');
  const store = await openStore((config.persistence ?? undefined) as Parameters<typeof openStore>[0], { env, dataDir: config.dataDir });
  const rootHelper = resolveRootHelper(flags.rootHelper, config, process.getuid?.() ?? 0);
  const context = setup({
    persistence: store,
    rootHelper,
    lockPath: config.lockPath,
    stateDir: config.dataDir,
    journal: new AttachJournal(join(config.dataDir, 'journal'), { onEvent: journalKillHook(env) }),
    logger,
    myIp: config.myIp,
    hostName: config.host,
    onProgress,
  });
  const made = new Map<string, Backend>();
  const backend = async (name?: string): Promise<Backend> => {
    const wanted = name ?? flags.backend ?? config.defaultBackend;
    const cfg = backendConfig(config, wanted);
    let b = made.get(wanted);
    if (!b) {
      b = new Backend(cfg, { context });
      made.set(wanted, b);
    }
    await b.ready;
    return b;
  };
  return {
    config,
    context,
    store,
    logger,
    rootHelper,
    backend,
    allBackends: async () => Promise.all(config.backends.map((b) => backend(b.volume_backend_name))),
    close: async () => {
      for (const b of made.values()) await b.close().catch(() => undefined);
      await store.close();
    },
  };
}
