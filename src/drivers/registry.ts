/**
 * Driver registry: maps `volume_driver` names (short names and Cinder's class paths) to factories.
 *
 * @module
 */
import { ProtocolNotSupportedError } from '../errors.js';
import type { DriverFactory } from './driver.js';

const drivers = new Map<string, DriverFactory>();
const aliases = new Map<string, string>();

/**
 * Register driver `name` (e.g. `lvm`) with Cinder class-path aliases
 * (e.g. `cinder.volume.drivers.lvm.LVMVolumeDriver`).
 */
export function registerDriver(name: string, factory: DriverFactory, aliasNames: readonly string[] = []): void {
  drivers.set(name, factory);
  for (const a of aliasNames) aliases.set(a, name);
}

/** Registered driver names. */
export function knownDrivers(): string[] {
  return [...drivers.keys()].sort();
}

/**
 * The factory for `name` (short name or alias).
 * @throws {@link ProtocolNotSupportedError} (field `volume_driver`) for an unknown name
 */
export function driverFactory(name: string): { name: string; factory: DriverFactory } {
  const canonical = drivers.has(name) ? name : aliases.get(name);
  if (!canonical) throw new ProtocolNotSupportedError('volume_driver', name, knownDrivers());
  return { name: canonical, factory: drivers.get(canonical)! };
}
