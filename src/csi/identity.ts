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
 * GetPluginCapabilities: the Controller service and online and offline volume expansion. They
 * describe the plugin as a whole, so a node-only process says the same as the controller (a CO
 * asks the node plugin whether to expect a controller). No topology: a volume is reachable from
 * every node the backend's protocol reaches.
 */
export function pluginCapabilities(): Record<string, unknown> {
  return { capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }, { volume_expansion: { type: 'ONLINE' } }, { volume_expansion: { type: 'OFFLINE' } }] };
}

/** Probe: ready once the backends are set up (the server starts listening only then). */
export function probe(): Record<string, unknown> {
  return { ready: { value: true } };
}
