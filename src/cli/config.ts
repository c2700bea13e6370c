/**
 * The `brick` configuration file: YAML or JSON, validated with zod, errors naming the key.
 *
 * ```yaml
 * data_dir: /var/lib/brick          # default: $XDG_DATA_HOME/brick or ~/.local/share/brick; yours, not group/other-writable
 * persistence: sqlite:///var/lib/brick/brick.sqlite   # or postgresql://..., memory://, or { storage: ... }
 * root_helper: sudo -n              # string or argv list; default: none as root, `sudo -n` otherwise
 * lock_path: /run/brick/locks       # default: /run/brick/locks as root, <data_dir>/locks otherwise
 * my_ip: 192.0.2.10                 # connector property `ip`
 * host: node-1                      # connector property `host`
 * default_backend: lvm1             # used when a command is not given --backend
 * process_nice: -10                 # nice value of brick's threads; default: left as started
 * backends:
 *   - volume_backend_name: lvm1
 *     volume_driver: lvm
 *     volume_group: cinder-volumes
 * ```
 *
 * With no file, one backend is used: the file backend named `default`, whose pool is
 * `<data_dir>/volumes`.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, isAbsolute } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { InvalidConfigError, NotFoundError, BrickError } from '../errors.js';
import { defaultDataDir, type Env } from '../persistence/factory.js';
import { resolveDriverName, knownDrivers } from '../drivers/registry.js';

const backendSchema = z
  .object({
    volume_backend_name: z.string().min(1),
    volume_driver: z.string().min(1),
  })
  .passthrough();

const configSchema = z
  .object({
    data_dir: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
    persistence: z.union([z.string().min(1), z.object({ storage: z.enum(['memory', 'sqlite', 'postgresql']) }).passthrough()]).optional(),
    root_helper: z.union([z.string(), z.array(z.string())]).optional(),
    lock_path: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
    my_ip: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    default_backend: z.string().min(1).optional(),
    process_nice: z.number().int().min(-20).max(19).optional(),
    backends: z.array(backendSchema).min(1).optional(),
  })
  .strict();

/** The validated configuration with defaults applied. */
export interface BrickConfig {
  /** Where the config came from (a path), or `default`. */
  source: string;
  /**
   * The data directory (`data_dir`): the store's default file and the default file pool live
   * there. Like `lockPath` it must be (or be made, 0700) a private directory of the running user;
   * the CLI checks that before it creates anything (`ensurePrivateDirectory` in `host/private-dir.ts`).
   */
  dataDir: string;
  persistence: string | Record<string, unknown> | undefined;
  rootHelper: string[] | undefined;
  /**
   * The one lock directory of the library and the connectors (`lock_path`): the configured one,
   * else `/run/brick/locks` for root and `<data_dir>/locks` for anyone else. It must be (or be
   * made) a private directory of the running user: see `ensurePrivateDirectory` in `host/private-dir.ts`.
   */
  lockPath: string;
  myIp: string | undefined;
  host: string | undefined;
  defaultBackend: string;
  /**
   * The nice value (−20 to 19) `brick` sets on its threads before it attaches, detaches or serves
   * CSI (`process_nice`; see `setProcessNice` in `host/priority.ts`), or `undefined` to leave the
   * priority it was started with. Below 0 needs root (`CAP_SYS_NICE`).
   */
  processNice: number | undefined;
  backends: { volume_backend_name: string; volume_driver: string; [k: string]: unknown }[];
}

/**
 * Parse and validate configuration text (YAML, of which JSON is a subset).
 * @param uid the user brick runs as (`process.geteuid()`); only the default `lock_path` depends
 *   on it. Omitted: a user other than root.
 * @throws {@link InvalidConfigError} naming the file and key, e.g. `brick.yaml: backends.0.volume_driver: Required`
 */
export function parseConfig(text: string, source: string, env: Env, uid?: number): BrickConfig {
  let raw: unknown;
  try {
    raw = text.trim() === '' ? {} : parseYaml(text);
  } catch (err) {
    throw new InvalidConfigError(`${source}: not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`, { field: 'config' });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidConfigError(`${source}: the top level must be a mapping`, { field: 'config' });
  const r = configSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? (issue as { keys?: string[] }).keys?.join(',') ?? 'config' : 'config');
    throw new InvalidConfigError(`${source}: ${key}: ${issue.message}`, { field: key });
  }
  const c = r.data;
  const dataDir = c.data_dir ?? defaultDataDir(env);
  const backends = (c.backends as BrickConfig['backends'] | undefined) ?? [{ volume_backend_name: 'default', volume_driver: 'file', pool_path: join(dataDir, 'volumes') }];
  const names = new Set<string>();
  for (const [i, b] of backends.entries()) {
    if (names.has(b.volume_backend_name)) throw new InvalidConfigError(`${source}: backends.${i}.volume_backend_name: ${b.volume_backend_name} is used twice`, { field: `backends.${i}.volume_backend_name` });
    names.add(b.volume_backend_name);
  }
  const defaultBackend = c.default_backend ?? backends[0]!.volume_backend_name;
  if (!names.has(defaultBackend)) throw new InvalidConfigError(`${source}: default_backend: no backend named ${defaultBackend}`, { field: 'default_backend' });
  const rootHelper = c.root_helper === undefined ? undefined : Array.isArray(c.root_helper) ? c.root_helper : c.root_helper.split(/\s+/).filter(Boolean);
  return {
    source,
    dataDir,
    persistence: c.persistence as BrickConfig['persistence'],
    rootHelper,
    lockPath: c.lock_path ?? (uid === 0 ? '/run/brick/locks' : join(dataDir, 'locks')),
    myIp: c.my_ip,
    host: c.host,
    defaultBackend,
    processNice: c.process_nice,
    backends,
  };
}

/**
 * Load the configuration from `path` (or the defaults when no path is given).
 * @param uid as for {@link parseConfig}
 * @throws {@link InvalidConfigError} (field `config`) when the file cannot be read, or as {@link parseConfig}
 */
export async function loadConfig(path: string | undefined, env: Env, uid?: number): Promise<BrickConfig> {
  if (!path) return parseConfig('', 'default', env, uid);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw unreadableConfig(path, err);
  }
  return parseConfig(text, path, env, uid);
}

/**
 * {@link loadConfig} for callers that cannot wait (building connector options): the same file,
 * defaults and errors, read synchronously.
 * @throws {@link InvalidConfigError} as {@link loadConfig}
 */
export function loadConfigSync(path: string | undefined, env: Env, uid?: number): BrickConfig {
  if (!path) return parseConfig('', 'default', env, uid);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw unreadableConfig(path, err);
  }
  return parseConfig(text, path, env, uid);
}

/** The error for a configuration file that cannot be read. */
function unreadableConfig(path: string, err: unknown): InvalidConfigError {
  return new InvalidConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { field: 'config' });
}

/**
 * The configuration of backend `name`.
 * @throws {@link NotFoundError} (field `backend`) when no backend has that name; details list the known ones
 */
export function backendConfig(config: BrickConfig, name: string): BrickConfig['backends'][number] {
  const cfg = config.backends.find((b) => b.volume_backend_name === name);
  if (!cfg) throw new NotFoundError('backend', name, { field: 'backend', details: { known: config.backends.map((b) => b.volume_backend_name) } });
  return cfg;
}

/**
 * Check what can be checked before anything is created: every backend's `volume_driver` is a
 * built-in or registered driver (short name or Cinder class path), and `selected` (the
 * `--backend` flag), when given, names a configured backend. Reads, creates and loads nothing
 * (a driver's module is imported when its backend is created).
 *
 * @throws {@link InvalidConfigError} (field `volume_driver`) naming the file and the key, e.g. `brick.yaml: backends.0.volume_driver: "nosuch" is not a known driver`
 * @throws {@link NotFoundError} (field `backend`) for an unknown `selected`
 */
export function checkBackends(config: BrickConfig, selected: string | undefined): void {
  for (const [i, b] of config.backends.entries()) {
    try {
      resolveDriverName(b.volume_driver);
    } catch (err) {
      if (!(err instanceof BrickError)) throw err;
      const known = knownDrivers();
      throw new InvalidConfigError(`${config.source}: backends.${i}.volume_driver: ${JSON.stringify(b.volume_driver)} is not a known driver (known: ${known.join(', ')})`, {
        field: 'volume_driver',
        details: { key: `backends.${i}.volume_driver`, known },
      });
    }
  }
  if (selected !== undefined) backendConfig(config, selected);
}
