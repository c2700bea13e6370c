/**
 * The connector factory: os-brick's `InitiatorConnector.factory(protocol, root_helper, ...)`.
 *
 * Protocols are keyed by os-brick's upper-case names. Each connector module registers itself
 * here with {@link registerConnector}; `connectors/index.ts` imports them all, so importing the
 * package makes every protocol available.
 *
 * @module
 */
import { ProtocolNotSupportedError } from '../errors.js';
import { createHostContext, type HostContext } from '../host/context.js';
import type { Connector, ConnectorOptions } from './connector.js';

/**
 * Builds a connector from the host seams and the resolved options. Every connector class takes
 * its arguments in this order too: `new XConnector(ctx, options)`.
 */
export type ConnectorConstructor = (ctx: HostContext, options: ResolvedConnectorOptions) => Connector;

/** {@link ConnectorOptions} with defaults applied. */
export interface ResolvedConnectorOptions extends ConnectorOptions {
  useMultipath: boolean;
  deviceScanAttempts: number;
  protocol: string;
}

const registry = new Map<string, ConnectorConstructor>();
const aliases = new Map<string, string>();

/**
 * Register `ctor` for protocol `name` (upper case) and its aliases (e.g. `NVME` for `NVMEOF`).
 * Registering a name twice replaces the earlier one (tests use this to inject fakes).
 */
export function registerConnector(name: string, ctor: ConnectorConstructor, aliasNames: readonly string[] = []): void {
  registry.set(name.toUpperCase(), ctor);
  for (const a of aliasNames) aliases.set(a.toUpperCase(), name.toUpperCase());
}

/** The protocol names (and aliases) the factory knows, sorted. */
export function knownProtocols(): string[] {
  return [...registry.keys(), ...aliases.keys()].sort();
}

/** The canonical protocol for `name` (alias resolved, upper case), or undefined. */
export function canonicalProtocol(name: string): string | undefined {
  const up = name.toUpperCase();
  if (registry.has(up)) return up;
  const a = aliases.get(up);
  return a && registry.has(a) ? a : undefined;
}

/**
 * A connector for `protocol` (case-insensitive, aliases accepted).
 * @param protocol os-brick protocol name: `LOCAL`, `ISCSI`, `ISER`, `FIBRE_CHANNEL`, `NVMEOF`/`NVME`, `AOE`, ...
 * @param options common and protocol-specific options; `ctx`, `rootHelper` and `lockPath` build
 *   the {@link HostContext} the connector is given. `lockPath` is the lock directory when `ctx`
 *   brings no `locks`; its default is the library's rule for the running user (`/run/brick/locks`
 *   for root, a per-user directory otherwise, see `defaultLockPath` in `host/lock.ts`), so a
 *   connector built here and the library configured with the same `lock_path` share their locks.
 * @throws {@link ProtocolNotSupportedError} (field `protocol`) for an unknown name, and (field
 *   `deviceScanAttempts`) when `deviceScanAttempts` is not a positive integer
 * @throws {@link InvalidInputError} when the connector rejects a protocol-specific option
 *   (e.g. a relative `mountPointBase` for `NFS`)
 */
export function connectorFor(protocol: string, options: ConnectorOptions & { lockPath?: string } = {}): Connector {
  const canonical = typeof protocol === 'string' ? canonicalProtocol(protocol) : undefined;
  if (!canonical) throw new ProtocolNotSupportedError('protocol', String(protocol), knownProtocols());
  const attempts = options.deviceScanAttempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new ProtocolNotSupportedError('deviceScanAttempts', String(attempts), ['a positive integer']);
  }
  const ctx = createHostContext({ rootHelper: options.rootHelper ?? [], lockPath: options.lockPath, ...options.ctx });
  const resolved: ResolvedConnectorOptions = { ...options, useMultipath: options.useMultipath ?? false, deviceScanAttempts: attempts, protocol: canonical };
  return registry.get(canonical)!(ctx, resolved);
}
