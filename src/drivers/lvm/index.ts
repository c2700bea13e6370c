/**
 * Registers the LVM driver as `lvm` (its Cinder aliases are in the registry's table of built-in
 * drivers, `registry.ts`, which imports this module when an `lvm` backend is created).
 *
 * @module
 */
import { registerDriver } from '../registry.js';
import { LvmDriver } from './driver.js';

registerDriver('lvm', (config, ctx) => new LvmDriver(config, ctx));

export { LvmDriver, parseLvmConfig, LVM_OPTIONS, type LvmDriverConfig, type LvmDriverOptions } from './driver.js';
export { VolumeGroup, parseLvs, parseVgs, escapeSnapshotName, mapperName, type LvInfo, type VgInfo } from './lvm.js';
