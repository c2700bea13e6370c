/**
 * Driver registry: maps `volume_driver` names (short names and Cinder's class paths) to factories.
 *
 * The built-in drivers are known by name and alias from a static table here, and their modules
 * (with ssh2, undici and the target helpers they pull in) are imported only when a backend of
 * that driver is created ({@link loadDriverFactory}): a `brick` command or a program that uses
 * the file driver never loads the array drivers (issue 18). A driver module registers its
 * factory with {@link registerDriver} when it is imported; third-party drivers do the same.
 *
 * @module
 */
import { InvalidStateError, ProtocolNotSupportedError } from '../errors.js';
import type { DriverFactory } from './driver.js';

/** A built-in driver: its Cinder aliases and the import that registers its factory. */
interface BuiltinDriver {
  aliases: readonly string[];
  load: () => Promise<unknown>;
}

/** The built-in drivers by short name. Add one entry per driver (see docs/architecture.md). */
const BUILTIN: Readonly<Record<string, BuiltinDriver>> = {
  file: { aliases: ['brick.drivers.file.FileDriver'], load: () => import('./file/driver.js') },
  lvm: { aliases: ['cinder.volume.drivers.lvm.LVMVolumeDriver', 'LVMVolumeDriver'], load: () => import('./lvm/index.js') },
  ibm_flashsystem: {
    aliases: ['cinder.volume.drivers.ibm.flashsystem_iscsi.FlashSystemISCSIDriver', 'ibm_flashsystem_iscsi'],
    load: () => import('./ibm-flashsystem/index.js'),
  },
  netapp_eseries: {
    aliases: ['cinder.volume.drivers.netapp.eseries.iscsi_driver.NetAppEseriesISCSIDriver', 'cinder.volume.drivers.netapp.common.NetAppDriver', 'netapp-eseries', 'eseries'],
    load: () => import('./netapp-eseries/index.js'),
  },
};

const drivers = new Map<string, DriverFactory>();
const aliases = new Map<string, string>();
for (const [name, b] of Object.entries(BUILTIN)) for (const a of b.aliases) aliases.set(a, name);

/**
 * Register driver `name` (e.g. `lvm`) with Cinder class-path aliases
 * (e.g. `cinder.volume.drivers.lvm.LVMVolumeDriver`). A registered factory is used from then on,
 * in place of a built-in driver of the same name.
 */
export function registerDriver(name: string, factory: DriverFactory, aliasNames: readonly string[] = []): void {
  drivers.set(name, factory);
  for (const a of aliasNames) aliases.set(a, name);
}

/** Driver names: the built-in drivers (loaded or not) and every registered one. */
export function knownDrivers(): string[] {
  return [...new Set([...Object.keys(BUILTIN), ...drivers.keys()])].sort();
}

/**
 * The short name of driver `name` (a short name or an alias), loading nothing.
 * @throws {@link ProtocolNotSupportedError} (field `volume_driver`) for an unknown name
 */
export function resolveDriverName(name: string): string {
  const canonical = drivers.has(name) || Object.hasOwn(BUILTIN, name) ? name : aliases.get(name);
  if (canonical === undefined) throw new ProtocolNotSupportedError('volume_driver', name, knownDrivers());
  return canonical;
}

/**
 * The factory of driver `name` (short name or alias) when its module is loaded already (a
 * registered driver, or a built-in one imported before, e.g. through `brick/drivers`), else
 * undefined. Loads nothing.
 * @throws {@link ProtocolNotSupportedError} (field `volume_driver`) for an unknown name
 */
export function loadedDriverFactory(name: string): { name: string; factory: DriverFactory } | undefined {
  const canonical = resolveDriverName(name);
  const factory = drivers.get(canonical);
  return factory ? { name: canonical, factory } : undefined;
}

/**
 * The factory for `name` (short name or alias), synchronously: the driver's module must be
 * loaded (see {@link loadDriverFactory}, which loads it).
 * @throws {@link ProtocolNotSupportedError} (field `volume_driver`) for an unknown name
 * @throws {@link InvalidStateError} (field `volume_driver`) for a built-in driver whose module is not loaded yet
 */
export function driverFactory(name: string): { name: string; factory: DriverFactory } {
  const found = loadedDriverFactory(name);
  if (found) return found;
  throw new InvalidStateError(`driver ${name} is not loaded yet: await loadDriverFactory(${JSON.stringify(name)}) or import 'brick/drivers' first`, { field: 'volume_driver' });
}

/**
 * The factory for `name` (short name or alias), importing a built-in driver's module on first use.
 * @throws {@link ProtocolNotSupportedError} (field `volume_driver`) for an unknown name
 * @throws {@link InvalidStateError} (field `volume_driver`) when a built-in module loaded without registering its driver
 */
export async function loadDriverFactory(name: string): Promise<{ name: string; factory: DriverFactory }> {
  const canonical = resolveDriverName(name);
  if (!drivers.has(canonical)) await BUILTIN[canonical]?.load();
  return driverFactory(canonical);
}
