/**
 * The connector properties document a consumer host hands to `brick volume connect`: checked
 * key by key before anything runs, so that a mistyped document (`{"host": 5}`) is refused with
 * the key named instead of reaching a driver that would export and map for it.
 *
 * The keys and their types are os-brick's (`get_connector_properties` and the connectors'
 * own `get_connector_properties`: iSCSI `initiator`, NVMe-oF `nqn`/`nvme_hostid`/`uuid`,
 * FC `wwpns`/`wwnns`) plus Cinder's `do_local_attach`. Keys Brick does not know are kept as
 * they are, as os-brick and Cinder pass them through to drivers.
 *
 * @module
 */
import { InvalidInputError } from '../errors.js';
import type { ConnectorProperties } from '../initiator/properties.js';

type KeyType = 'string' | 'boolean' | 'string[]';

/** os-brick's connector property keys and the type each must have when present. */
export const CONNECTOR_PROPERTY_TYPES: Readonly<Record<string, KeyType>> = {
  platform: 'string',
  os_type: 'string',
  ip: 'string',
  host: 'string',
  initiator: 'string',
  nqn: 'string',
  nvme_hostid: 'string',
  uuid: 'string',
  'system uuid': 'string',
  multipath: 'boolean',
  enforce_multipath: 'boolean',
  nvme_native_multipath: 'boolean',
  do_local_attach: 'boolean',
  wwpns: 'string[]',
  wwnns: 'string[]',
};

function checkKey(key: string, type: KeyType, value: unknown): void {
  if (type === 'boolean') {
    if (typeof value !== 'boolean') throw new InvalidInputError(key, `must be true or false, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === 'string') {
    if (typeof value !== 'string' || value.trim() === '') throw new InvalidInputError(key, `must be a non-empty string, got ${JSON.stringify(value)}`);
    return;
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v.trim() !== '')) {
    throw new InvalidInputError(key, `must be a list of non-empty strings, got ${JSON.stringify(value)}`);
  }
}

/**
 * Check a connector properties document (the JSON `brick connector properties` prints on the
 * consumer host) and return it typed. Keys absent or `null` are left to the driver, which says
 * which ones it needs (`initiator` for iSCSI, `wwpns` for FC, `nqn` for NVMe-oF).
 *
 * @param doc the parsed document
 * @returns the same object, typed as {@link ConnectorProperties}
 * @throws {@link InvalidInputError} (field `connector`) when `doc` is not an object, or (field the key, e.g. `host`) when a known key has the wrong type
 */
export function validateConnectorProperties(doc: unknown): ConnectorProperties {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidInputError('connector', 'must be a JSON object of connector properties');
  const record = doc as Record<string, unknown>;
  for (const [key, type] of Object.entries(CONNECTOR_PROPERTY_TYPES)) {
    const value = record[key];
    if (value !== undefined && value !== null) checkKey(key, type, value);
  }
  return record as ConnectorProperties;
}
