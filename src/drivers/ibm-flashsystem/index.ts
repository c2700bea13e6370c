/**
 * The `ibm_flashsystem` driver module: registers {@link FlashSystemIscsiDriver} under its short
 * name (Cinder's class path is its alias in the registry's table, `registry.ts`), and re-exports
 * its parts.
 *
 * @module
 */
import { registerDriver } from '../registry.js';
import { FlashSystemIscsiDriver } from './driver.js';

registerDriver('ibm_flashsystem', (config, ctx) => new FlashSystemIscsiDriver(config, ctx));

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
