/**
 * `brick/drivers`: the storage drivers as classes, their option declarations and the target
 * helpers they export volumes through, for people who build a driver of their own or use one
 * without the object API. Most users reach drivers through `new Backend({ volume_driver, ... })`
 * and never import this.
 *
 * Each driver declares its options once with {@link defineOption} (Cinder's `cfg.*Opt` as data)
 * and exports the list (`FILE_OPTIONS`, `LVM_OPTIONS`, `ESERIES_OPTIONS`, `FLASHSYSTEM_OPTIONS`,
 * `TARGET_OPTIONS`); {@link renderOptionsTable} turns a list into the README's tables.
 *
 * @module
 */
import './index.js';
export type { VolumeDriver, DriverContext, DriverFactory, DriverVolume, DriverSnapshot, ModelUpdate, ConnectionInfo, VolumeStats, PoolStats, TerminateOptions } from './driver.js';
export { registerDriver, knownDrivers, driverFactory, loadDriverFactory, resolveDriverName } from './registry.js';
export {
  defineOption,
  readOption,
  pickOption,
  convertOption,
  requireConfigObject,
  renderOptionsTable,
  configError,
  type DriverOption,
  type OptionType,
  type OptionValue,
  type ReadValue,
} from '../options.js';
export { FileDriver, parseFileDriverConfig, FILE_OPTIONS, type FileDriverConfig } from './file/driver.js';
export * from './lvm/index.js';
export * from './netapp-eseries/index.js';
export * from './ibm-flashsystem/index.js';
export * from '../target/index.js';
