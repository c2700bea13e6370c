/**
 * The CSI Identity service: GetPluginInfo, GetPluginCapabilities and Probe.
 *
 * @module
 */
import type { Plugin } from './plugin.js';

/** GetPluginInfo: the driver name (reverse DNS) and Brick's version. */
export function pluginInfo(plugin: Plugin): Record<string, unknown> {
  return { name: plugin.driverName, vendor_version: plugin.version, manifest: { mode: plugin.mode } };
}

/**
 * GetPluginCapabilities: the Controller service (where this process serves it) and online and
 * offline volume expansion. No topology: a volume is reachable from every node the backend's
 * protocol reaches.
 */
export function pluginCapabilities(plugin: Plugin): Record<string, unknown> {
  const capabilities: Record<string, unknown>[] = [];
  if (plugin.mode !== 'node') capabilities.push({ service: { type: 'CONTROLLER_SERVICE' } });
  capabilities.push({ volume_expansion: { type: 'ONLINE' } }, { volume_expansion: { type: 'OFFLINE' } });
  return { capabilities };
}

/** Probe: ready once the backends are set up (the server starts listening only then). */
export function probe(): Record<string, unknown> {
  return { ready: { value: true } };
}
