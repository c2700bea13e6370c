/**
 * Creating volumes on the array: the pool choice, the extra specs that shape a volume, and the
 * create with clean-up of a half-made volume. Used by the driver's create, by snapshots (the
 * target of a copy) and by clones. Cinder's `NetAppESeriesLibrary._create_volume` and
 * `_get_sorted_available_storage_pools`, with the fixes noted on each function.
 *
 * @module
 */
import { BrickError, InsufficientCapacityError, InvalidInputError } from '../../errors.js';
import type { EseriesArray } from './array.js';
import { GIB, type EsPool, type EsVolume, type EseriesVolume } from './types.js';
import { MAX_LUNS_PER_HOST, specBool } from './utils.js';

/**
 * Check a size in GiB.
 * @throws {@link InvalidInputError} (`field`) unless `size` is a positive whole number
 */
export function checkSize(size: number, field: string): void {
  if (!Number.isInteger(size) || size < 1) throw new InvalidInputError(field, `${size} must be a positive whole number of GiB`);
}

/**
 * The volume's extra specs: the `netapp*` keys of its admin metadata (how Brick's library
 * passes per-volume options), then Cinder's volume-type extra specs, then `extra_specs`.
 */
export function volumeSpecs(volume: EseriesVolume): Record<string, unknown> {
  const fromMetadata = Object.fromEntries(Object.entries(volume.admin_metadata ?? {}).filter(([k]) => k.startsWith('netapp')));
  return { ...fromMetadata, ...(volume.volume_type?.extra_specs ?? {}), ...(volume.extra_specs ?? {}) };
}

/** The pool a volume asks for: the `#pool` part of Cinder's `host`, else admin metadata `pool`. */
function requestedPool(volume: EseriesVolume): string | undefined {
  const host = volume.host ?? undefined;
  if (host && host.includes('#')) return host.slice(host.lastIndexOf('#') + 1);
  return volume.admin_metadata?.pool;
}

/**
 * The pool for a new volume of `sizeGib`: the requested one (`#pool` of `volume.host`), else
 * `preferRef` if it fits, else the matching pool with the most free space that fits (only
 * disk pools for thin volumes).
 * @throws {@link InvalidInputError} (`volume.host`) for a requested pool that does not exist or cannot hold a thin volume
 * @throws {@link InsufficientCapacityError} when no matching pool has room
 */
export async function choosePool(array: EseriesArray, volume: EseriesVolume, sizeGib: number, thin: boolean, preferRef?: string): Promise<EsPool> {
  const pools = await array.filteredPools();
  const free = (p: EsPool): number => Number(p.totalRaidedSpace) - Number(p.usedSpace);
  const requested = requestedPool(volume);
  if (requested !== undefined) {
    const p = pools.find((x) => x.label === requested);
    if (!p) throw new InvalidInputError('volume.host', `pool ${JSON.stringify(requested)} does not exist or does not match netapp_pool_name_search_pattern`);
    if (thin && !p.diskPool) throw new InvalidInputError('volume.volume_type.extra_specs.netapp_thin_provisioned', `pool ${p.label} is not a disk pool and cannot hold thin volumes`);
    return p;
  }
  const candidates = pools.filter((p) => (!thin || p.diskPool) && (thin || free(p) >= sizeGib * GIB));
  const preferred = candidates.find((p) => p.volumeGroupRef === preferRef);
  if (preferred) return preferred;
  candidates.sort((a, b) => free(b) - free(a));
  if (candidates.length === 0) {
    throw new InsufficientCapacityError(`no ${thin ? 'disk pool' : 'pool'} matching netapp_pool_name_search_pattern has ${sizeGib} GiB free`, {
      details: { size_gb: sizeGib, thin },
    });
  }
  return candidates[0]!;
}

/** With multi-attach every volume may end up in one host group, so the backend holds at most 256. */
async function checkMultiattachLimit(array: EseriesArray): Promise<void> {
  if (!array.config.enableMultiattach) return;
  const all = await array.client.get<EsVolume[]>('/ssc/volumes');
  if (all.filter((v) => !v.label.startsWith('repos_')).length >= MAX_LUNS_PER_HOST) {
    throw new InsufficientCapacityError(`with netapp_enable_multiattach the backend holds at most ${MAX_LUNS_PER_HOST} volumes, and the array already has that many`);
  }
}

/**
 * Create a volume labelled `label` of `sizeGib` GiB, thick or thin as `specs` say (default
 * `netapp_thin_provisioned_default`), in the pool {@link choosePool} picks. A create that
 * fails half-way has its partial volume removed (upstream's clean-up never worked).
 * @returns the new array volume
 * @throws {@link InvalidInputError}, {@link InsufficientCapacityError}, {@link AlreadyExistsError}, {@link BackendError}
 */
export async function createVolumeOnArray(
  array: EseriesArray,
  volume: EseriesVolume,
  label: string,
  sizeGib: number,
  specs: Record<string, unknown>,
  preferPool?: string,
): Promise<EsVolume> {
  await checkMultiattachLimit(array);
  const thin = specBool(specs.netapp_thin_provisioned) ?? array.config.thinProvisionedDefault;
  const pool = await choosePool(array, volume, sizeGib, thin, preferPool);
  const body = {
    poolId: pool.volumeGroupRef,
    name: label,
    sizeUnit: 'gb',
    size: sizeGib,
    dataAssuranceEnable: specBool(specs.netapp_eseries_data_assurance),
    flashCacheEnable: specBool(specs.netapp_eseries_flash_read_cache),
    readCacheEnable: specBool(specs['netapp:read_cache']),
    writeCacheEnable: specBool(specs['netapp:write_cache']),
    thinProvision: thin,
  };
  try {
    const v = await array.client.post<EsVolume>('/ssc/volumes', body);
    array.log.info({ volume_id: volume.id, label, pool: pool.label, size_gb: sizeGib, thin }, 'created E-Series volume');
    return v;
  } catch (err) {
    if (err instanceof BrickError && err.code === 'ALREADY_EXISTS') throw err;
    try {
      const partial = await array.getVolumeByLabel(label);
      await array.client.delete(`/ssc/volumes/${partial.volumeRef}`);
    } catch {
      /* nothing was left */
    }
    throw err;
  }
}
