/**
 * `brick/host`: the Linux mechanisms Brick's connectors are built from, for people writing
 * connectors of their own (os-brick's `linuxscsi`, `linuxfc`, `linuxrbd` and the `privileged`
 * helpers play this role there). Every function takes the {@link HostContext} (`ctx`): programs
 * run through its executor, and files are read under its host root.
 *
 * - context and seams: {@link createHostContext}, {@link hostPath}, {@link hostPathExists}
 * - sysfs and host files: {@link readAttr}, {@link listDir}, {@link writeAttr}, {@link writeFilePrivate}, files.ts
 * - SCSI: `scsi` (scan, flush, pinned delete, removal wait) and `teardown` (the one disconnect teardown, {@link ErrorChain})
 * - multipath (`multipath`), iSCSI node records and sessions (`iscsiadm`), NVMe-oF (nvme.ts), Fibre Channel (fc.ts)
 * - loop devices, block devices, mounts, named cross-process locks, private directories and files, retries with deadlines, copies
 * - the host attach journal ({@link AttachJournal}): what Brick created on this host, recorded before it exists;
 *   {@link cleanupHost}: what attaches and detaches left behind, listed and (Brick's part) removed
 * - the host doctor ({@link runHostDoctor}): is this host ready for its first attach, and how to fix what is not
 * - volume condition ({@link blockVolumeCondition}, {@link VolumeCondition}): device, paths and read test of an attached volume
 * - dm-crypt mappings through cryptsetup (crypt.ts) and encryption keys ({@link FileKeyManager}, {@link CallbackKeyManager})
 * - the scheduling priority of this process ({@link setProcessNice}): shorter waits for a CPU on a busy host
 *
 * @module
 */
export * from './context.js';
export * from './sysfs.js';
export * from './files.js';
export * from './blockdev.js';
export * from './loop.js';
export * from './mount.js';
export * from './lock.js';
export * from './private-dir.js';
export * from './retry.js';
export * from './copy.js';
export * from './nvme.js';
export * from './fc.js';
export * from './error-chain.js';
export * from './journal.js';
export * from './doctor.js';
export * from './cleanup.js';
export { surveyHost, blockDeviceBusy, parseMountInfo, type HostSurvey, type BusyOptions } from './cleanup-survey.js';
export * from './crypt.js';
export * from './key-manager.js';
export * from './priority.js';
export * as scsi from './scsi.js';
export * as teardown from './scsi-teardown.js';
export * as multipath from './multipath.js';
export * as iscsiadm from './iscsiadm.js';
export { maskArgv, maskText, maskObject, MASK } from '../exec/mask.js';
export * from './condition.js';
