/**
 * Shared set-up for the E-Series unit tests: a simulator on a free loopback port and a driver
 * configured against it (fast polls, small bounds).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startEseriesSimulator, type EseriesSimulator, type EseriesSimulatorOptions } from '../../../sims/eseries/simulator.js';
import { NetAppEseriesIscsiDriver } from '../../../src/drivers/netapp-eseries/driver.js';
import type { EseriesVolume } from '../../../src/drivers/netapp-eseries/types.js';
import { createHostContext } from '../../../src/host/context.js';
import { LockManager } from '../../../src/host/lock.js';
import { createCapturingLogger } from '../../../src/log.js';
import type { DriverSnapshot } from '../../../src/drivers/driver.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';

export interface Rig {
  sim: EseriesSimulator;
  driver: NetAppEseriesIscsiDriver;
  logs: ReturnType<typeof createCapturingLogger>;
  stateDir: string;
  close(): Promise<void>;
}

/** Driver configuration pointing at `sim`. */
export function baseConfig(sim: EseriesSimulator, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    netapp_server_hostname: '127.0.0.1',
    netapp_server_port: sim.port,
    netapp_transport_type: 'http',
    netapp_login: 'rw',
    netapp_password: 'rw',
    netapp_controller_ips: '10.113.1.10,10.113.1.11',
    netapp_poll_interval: 0.01,
    netapp_sa_comm_timeout: 0.3,
    netapp_api_retries: 1,
    netapp_api_timeout: 2,
    use_multipath_for_image_xfer: true,
    ...overrides,
  };
}

/** A driver (not yet set up) against `sim`. */
export function makeDriver(
  sim: EseriesSimulator,
  overrides: Record<string, unknown> = {},
  random?: () => number,
): { driver: NetAppEseriesIscsiDriver; logs: ReturnType<typeof createCapturingLogger>; stateDir: string } {
  const logs = createCapturingLogger('debug');
  const stateDir = mkdtempSync(join(tmpdir(), 'brick-eseries-state-'));
  // A short lock bound: LockManager.withLock leaves a timer of the whole bound running after
  // the lock is taken (reported to the lead), which would keep the test process alive.
  const host = createHostContext({ logger: logs.logger, locks: new LockManager(join(stateDir, 'locks'), 3000) });
  const driver = new NetAppEseriesIscsiDriver(baseConfig(sim, overrides), { ...host, backendName: 'eseries', stateDir }, random ? { random } : {});
  return { driver, logs, stateDir };
}

/** A simulator and a set-up driver. */
export async function rig(
  overrides: Record<string, unknown> = {},
  simOptions: EseriesSimulatorOptions = {},
  random?: () => number,
): Promise<Rig> {
  const sim = await startEseriesSimulator(simOptions);
  const { driver, logs, stateDir } = makeDriver(sim, overrides, random);
  await driver.doSetup();
  await driver.checkForSetupError();
  return {
    sim,
    driver,
    logs,
    stateDir,
    close: async () => {
      await driver.close();
      await sim.close();
    },
  };
}

/** A Cinder-shaped volume. */
export function vol(size = 1, extra: Partial<EseriesVolume> = {}): EseriesVolume {
  const id = randomUUID();
  return { id, name: `volume-${id}`, size, ...extra };
}

/** A Cinder-shaped snapshot of `v`. */
export function snap(v: EseriesVolume, providerId?: string): DriverSnapshot {
  const id = randomUUID();
  return { id, name: `snapshot-${id}`, volume_id: v.id, volume_size: v.size, volume: v, provider_id: providerId ?? null };
}

/** A connector for initiator `iqn`. */
export function connector(iqn: string): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux', ip: '192.0.2.10', host: 'node', multipath: true, enforce_multipath: false, initiator: iqn };
}

/** A deterministic random source cycling through `values`. */
export function seq(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

export const IQN_A = 'iqn.1993-08.org.debian:01:aaaaaaaaaaaa';
export const IQN_B = 'iqn.1993-08.org.debian:01:bbbbbbbbbbbb';
