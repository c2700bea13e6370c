/**
 * The `ibm_flashsystem` driver module: registers {@link FlashSystemIscsiDriver} under its short
 * name and Cinder's class path, and re-exports its parts.
 *
 * @module
 */
import { registerDriver } from '../registry.js';
import { FlashSystemIscsiDriver } from './driver.js';

registerDriver('ibm_flashsystem', (config, ctx) => new FlashSystemIscsiDriver(config, ctx), [
  'cinder.volume.drivers.ibm.flashsystem_iscsi.FlashSystemISCSIDriver',
  'ibm_flashsystem_iscsi',
]);

export { FlashSystemIscsiDriver, FLASHSYSTEM_DRIVER_VERSION, hasCmmvc, type FlashSystemNode, type HostCopySeams, type FlashSystemDriverOptions } from './driver.js';
export { parseFlashSystemConfig, hostKeyFingerprint, knownHostsFingerprints, FLASHSYSTEM_OPTIONS, type FlashSystemConfig } from './config.js';
export { SshConnectionPool, sshFingerprint, type SshPoolOptions, type SshResult } from './ssh.js';
export {
  renderCommand,
  v as cliValue,
  validateObjectName,
  validateIqn,
  hostNamePrefix,
  prefixOfHostName,
  parseDetailed,
  parseConcise,
  cmmvcCode,
  cliError,
  type CliWord,
  type CliValue,
  type DetailedView,
} from './cli.js';
