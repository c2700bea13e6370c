/**
 * Reaching and checking the array at driver setup: controller names that must resolve, the
 * storage system's id (registered with a proxy or read from embedded Web Services), the wait
 * for a system that accepts the array password and is online, the host type, and the pool
 * pattern. Cinder's `NetAppESeriesLibrary.do_setup`, `_check_host_type`,
 * `_check_storage_system` and `_check_pools`, with bounded waits and errors naming the option.
 *
 * @module
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { AuthenticationError, BackendError, BackendUnreachableError, BrickError, InvalidConfigError } from '../../errors.js';
import { waitFor } from '../../host/retry.js';
import type { EseriesArray } from './array.js';
import type { EsHostType, EsPool } from './types.js';
import { HOST_TYPE_ALIASES } from './utils.js';

/**
 * The addresses `name` resolves to (an IP address is itself), within 5 s.
 * @throws {@link InvalidConfigError} (`field`) when it does not resolve
 */
export async function resolveAddresses(name: string, field: string): Promise<string[]> {
  if (isIP(name)) return [name];
  try {
    const res = await Promise.race([
      lookup(name, { all: true }),
      new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('lookup timed out after 5000 ms')), 5000).unref()),
    ]);
    return res.map((a) => a.address);
  } catch (err) {
    throw new InvalidConfigError(`invalid ${field}: ${name} does not resolve (${(err as Error).message})`, { field });
  }
}

/**
 * The storage-system id: embedded Web Services manage one system; a proxy registers the
 * array (idempotently: it answers with the system it knows).
 * @throws {@link BackendError} when the Web Services report no system or no id
 */
export async function storageSystemId(array: EseriesArray, embedded: boolean): Promise<string> {
  const { client, config } = array;
  if (embedded) {
    const systems = await client.get<{ id: string }[]>('/storage-systems', { system: false });
    if (!Array.isArray(systems) || systems.length === 0 || !systems[0]?.id) {
      throw new BackendError(`the embedded Web Services at ${client.endpoint} report no storage system`);
    }
    return systems[0].id;
  }
  const sys = await client.post<{ id: string }>(
    '/storage-systems',
    { controllerAddresses: config.controllerIps, wwn: null, password: config.saPassword ?? null },
    { system: false },
  );
  if (!sys?.id) throw new BackendError(`registering the storage system with ${client.endpoint} returned no id`);
  return sys.id;
}

/**
 * Store the array password, then poll (every `netapp_poll_interval`, at most
 * `netapp_sa_comm_timeout`) until the system accepts it and is neither offline nor never contacted.
 * @throws {@link AuthenticationError} (`netapp_sa_password`) for an array password the array rejects
 * @throws {@link BackendUnreachableError} when the array stays offline or never contacted
 */
export async function waitForSystem(array: EseriesArray): Promise<void> {
  const { client, config: cfg } = array;
  await client.get('');
  if (cfg.saPassword !== undefined) await client.post('', { storedPassword: cfg.saPassword });
  let last: { status?: string; passwordStatus?: string } = {};
  try {
    await waitFor(async () => {
      last = await client.get<{ status: string; passwordStatus: string }>('');
      const pwOk = !['invalid', 'unknown'].includes(last.passwordStatus ?? '');
      const stOk = !['neverContacted', 'offline'].includes(last.status ?? '');
      return pwOk && stOk;
    }, array.pollOptions(cfg.saCommTimeoutMs, 'the storage system to become reachable'));
  } catch (err) {
    if (!(err instanceof BrickError) || err.code !== 'RETRY_EXHAUSTED') throw err;
    if (last.passwordStatus === 'invalid' || last.passwordStatus === 'unknown') {
      throw new AuthenticationError(
        `the storage array's password status is "${last.passwordStatus}": ${cfg.saPassword === undefined ? 'the array has a password; set netapp_sa_password' : 'netapp_sa_password is incorrect'}`,
        { field: 'netapp_sa_password', details: { password_status: last.passwordStatus } },
      );
    }
    throw new BackendUnreachableError(`the storage system's status is "${last.status}" after ${cfg.saCommTimeoutMs} ms; the Web Services cannot manage it`, {
      details: { status: last.status },
    });
  }
}

/**
 * The array's host type for `netapp_host_type`: an alias of {@link HOST_TYPE_ALIASES}, a code
 * or a name (codes also case-insensitively). Upstream matched by name only.
 * @throws {@link InvalidConfigError} (`netapp_host_type`) when the array has no such type
 */
export async function findHostType(array: EseriesArray): Promise<EsHostType> {
  const { client, config: cfg } = array;
  const wanted = HOST_TYPE_ALIASES[cfg.hostType] ?? cfg.hostType;
  const types = await client.get<EsHostType[]>('/host-types');
  const type = types.find((t) => t.code === wanted || t.name === wanted) ?? types.find((t) => t.code.toLowerCase() === wanted.toLowerCase());
  if (!type) {
    throw new InvalidConfigError(
      `invalid netapp_host_type: ${JSON.stringify(cfg.hostType)} is not a host type of this array (known codes: ${types.map((t) => t.code).join(', ')})`,
      { field: 'netapp_host_type' },
    );
  }
  return type;
}

/**
 * At least one pool must match `netapp_pool_name_search_pattern`.
 * @throws {@link InvalidConfigError} (`netapp_pool_name_search_pattern`) naming the array's pools
 */
export async function checkPools(array: EseriesArray): Promise<void> {
  const { client, config: cfg } = array;
  const pools = await client.get<EsPool[]>('/storage-pools');
  if (pools.filter((p) => cfg.poolPattern.test(p.label)).length === 0) {
    throw new InvalidConfigError(
      `invalid netapp_pool_name_search_pattern: ${JSON.stringify(cfg.poolPatternText)} matches none of the array's pools (${pools.map((p) => p.label).join(', ') || 'none'})`,
      { field: 'netapp_pool_name_search_pattern' },
    );
  }
}
