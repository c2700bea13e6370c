/**
 * Registers the LVM driver as `lvm` (alias Cinder's `cinder.volume.drivers.lvm.LVMVolumeDriver`).
 *
 * @module
 */
import { registerDriver } from '../registry.js';
import { LvmDriver } from './driver.js';

registerDriver('lvm', (config, ctx) => new LvmDriver(config, ctx), ['cinder.volume.drivers.lvm.LVMVolumeDriver', 'LVMVolumeDriver']);

export { LvmDriver, parseLvmConfig, LVM_OPTIONS, type LvmDriverConfig, type LvmDriverOptions } from './driver.js';
export { VolumeGroup, parseLvs, parseVgs, escapeSnapshotName, mapperName, type LvInfo, type VgInfo } from './lvm.js';
