/**
 * Registers the NetApp E-Series iSCSI driver as `netapp_eseries`, with Cinder's class paths as
 * aliases, and re-exports its public pieces.
 *
 * @module
 */
import { registerDriver } from '../registry.js';
import { NetAppEseriesIscsiDriver } from './driver.js';

registerDriver('netapp_eseries', (config, ctx) => new NetAppEseriesIscsiDriver(config, ctx), [
  'cinder.volume.drivers.netapp.eseries.iscsi_driver.NetAppEseriesISCSIDriver',
  'cinder.volume.drivers.netapp.common.NetAppDriver',
  'netapp-eseries',
  'eseries',
]);

export { NetAppEseriesIscsiDriver } from './driver.js';
export type { EseriesVolume, DriverGroup, DriverGroupSnapshot, ObjectUpdate, EseriesDriverOptions } from './types.js';
export { parseEseriesConfig, ESERIES_OPTIONS, type EseriesConfig } from './config.js';
export { EseriesRestClient } from './client.js';
export { uuidToLabel, labelToUuid, wsVersionAtLeast, compilePoolPattern } from './utils.js';
