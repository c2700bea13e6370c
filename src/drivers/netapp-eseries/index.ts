/**
 * Registers the NetApp E-Series iSCSI driver as `netapp_eseries` (Cinder's class paths are its
 * aliases in the registry's table, `registry.ts`), and re-exports its public pieces.
 *
 * @module
 */
import { registerDriver } from '../registry.js';
import { NetAppEseriesIscsiDriver } from './driver.js';

registerDriver('netapp_eseries', (config, ctx) => new NetAppEseriesIscsiDriver(config, ctx));

export { NetAppEseriesIscsiDriver } from './driver.js';
export type { EseriesVolume, DriverGroup, DriverGroupSnapshot, ObjectUpdate, EseriesDriverOptions } from './types.js';
export { parseEseriesConfig, ESERIES_OPTIONS, type EseriesConfig } from './config.js';
export { EseriesRestClient } from './client.js';
export { uuidToLabel, labelToUuid, wsVersionAtLeast, compilePoolPattern } from './utils.js';
