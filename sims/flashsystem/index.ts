/**
 * IBM FlashSystem SSH CLI simulator: `startFlashSystemSimulator()` and the state it drives.
 *
 * @module
 */
export { startFlashSystemSimulator, generateSshKeyPair, sshFingerprint, type FlashSystemSimulator, type FlashSystemSimulatorOptions, type SimulatorUser } from './server.js';
export {
  FlashSystemState,
  GIB,
  type FlashSystemStateOptions,
  type SimVdisk,
  type SimHost,
  type SimMapping,
  type SimNode,
  type SimPortIp,
  type SimFcMap,
  type SimFault,
  type CommandResult,
  type SimulatorBackingStore,
} from './state.js';
export { CMMVC_MESSAGES, CliError } from './errors.js';
export { tokenize, ShellSyntaxError } from './tokenize.js';
