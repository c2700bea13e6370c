/**
 * Shared set-up for the FlashSystem unit tests: a simulator on a free loopback port and a
 * driver configured against it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFlashSystemSimulator, type FlashSystemSimulator, type FlashSystemSimulatorOptions } from '../../../sims/flashsystem/index.js';
import { FlashSystemIscsiDriver, type FlashSystemDriverOptions } from '../../../src/drivers/ibm-flashsystem/index.js';
import { createHostContext } from '../../../src/host/context.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import type { Logger } from '../../../src/log.js';
import type { DriverContext } from '../../../src/drivers/driver.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';

export const GIB = 1024 ** 3;
export const PASSWORD = 'S3cret-pa55';

/** Start a simulator with one password user `superuser`. */
export function startSim(options: FlashSystemSimulatorOptions = {}): Promise<FlashSystemSimulator> {
  return startFlashSystemSimulator({ users: [{ name: 'superuser', password: PASSWORD }], copyDurationMs: 40, ...options });
}

/** A driver context with a private lock directory and a recording executor (the driver must run no local program). */
export function driverContext(logger?: Logger, onProgress?: DriverContext['onProgress']): DriverContext & { executor: RecordingExecutor } {
  const executor = new RecordingExecutor();
  const host = createHostContext({ executor, lockPath: mkdtempSync(join(tmpdir(), 'fs-locks-')), ...(logger ? { logger } : {}) });
  return { ...host, backendName: 'fs1', stateDir: mkdtempSync(join(tmpdir(), 'fs-state-')), executor, ...(onProgress ? { onProgress } : {}) };
}

/** The base configuration for `sim` (password login, the sim's host key, port 1 at 192.168.1.10). */
export function baseConfig(sim: FlashSystemSimulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    volume_driver: 'ibm_flashsystem',
    san_ip: '127.0.0.1',
    san_ssh_port: sim.port,
    san_login: 'superuser',
    san_password: PASSWORD,
    san_ssh_host_key: sim.publicKey,
    flashsystem_connection_protocol: 'iSCSI',
    flashsystem_iscsi_portid: 1,
    target_ip_address: '192.168.1.10',
    ssh_command_timeout: 10,
    // LockManager keeps a timer of the full lock timeout alive after each lock (reported to the
    // lead); a short bound keeps the test process from lingering after the last test.
    flashsystem_lock_timeout: 2,
    ...extra,
  };
}

/** A driver against `sim`, set up. */
export async function setupDriver(
  sim: FlashSystemSimulator,
  extra: Record<string, unknown> = {},
  ctx: DriverContext = driverContext(),
  options: FlashSystemDriverOptions = {},
): Promise<FlashSystemIscsiDriver> {
  const d = new FlashSystemIscsiDriver(baseConfig(sim, extra), ctx, options);
  await d.doSetup();
  await d.checkForSetupError();
  return d;
}

/** A connector for host `host` with initiator `iqn`. */
export function connector(host: string, iqn: string): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux2', ip: '10.0.0.5', host, multipath: false, enforce_multipath: false, initiator: iqn };
}

let n = 0;
/** A fresh volume document of `size` GiB. */
export function volume(size = 1): { id: string; name: string; size: number } {
  n++;
  const id = `0000000${n}-aaaa-bbbb-cccc-${String(n).padStart(12, '0')}`;
  return { id, name: `volume-${id}`, size };
}
