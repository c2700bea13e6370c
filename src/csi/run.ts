/**
 * The body of `brick csi` (see `command.ts`): build the runtime, store this node's connector
 * properties, start the gRPC server and the metrics endpoint, and serve until SIGTERM/SIGINT.
 * Imported by the command's action only, so that gRPC, protobuf and prom-client are not loaded
 * for any other `brick` command.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { InvalidInputError } from '../errors.js';
import { createLogger } from '../log.js';
import { createRuntime, type GlobalFlags, type Runtime } from '../cli/runtime.js';
import { maxVolumesKey } from './controller.js';
import { createMetrics, NO_METRICS, serveMetrics } from './metrics.js';
import type { Plugin } from './plugin.js';
import { startCsiServer } from './server.js';
import type { CsiOptions } from './command.js';

function packageVersion(): string {
  try {
    return (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** Connections attached on this node, counted from the store (for the metrics gauge). */
async function attachedHere(rt: Runtime, nodeId: string): Promise<number> {
  return (await rt.store.getConnections()).filter((c) => c.attached_host === nodeId && c.device !== null).length;
}

/**
 * The node plugin's owned cleanup at start (issue 16): what interrupted attaches and detaches of
 * an earlier run left on this host (by the attach journal) is removed before the first RPC;
 * nothing unowned is touched, nothing open, mounted or held, and nothing a connection record of
 * this node names. A failure is logged and does not stop the plugin.
 */
async function startupCleanup(rt: Runtime, nodeId: string, logger: ReturnType<typeof createLogger>): Promise<void> {
  try {
    const { hostCleanup } = await import('../library/host-cleanup.js');
    const r = await hostCleanup(rt.context, { attachedHosts: [nodeId] });
    const owned = r.leftovers.filter((l) => l.owned);
    logger.info({ removed: r.removed, owned_remaining: r.ownedRemaining, leftovers: owned.map((l) => `${l.kind} ${l.name}: ${l.action}`) }, 'csi node: owned cleanup at start');
  } catch (err) {
    logger.warn({ err }, 'csi node: the cleanup at start failed; the plugin starts anyway');
  }
}

/**
 * Start the plugin and serve until SIGTERM/SIGINT.
 * @throws whatever building the runtime, setting up the backends or binding the socket throws
 */
export async function runPlugin(o: CsiOptions, flags: GlobalFlags): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(o.nodeId)) throw new InvalidInputError('node_id', `must be 1-128 letters, digits, '_', '.', '-', got ${JSON.stringify(o.nodeId)}`);
  const logger = createLogger({ destination: process.stderr, level: flags.verbose ? 'debug' : 'info', name: 'brick-csi' });
  const rt = await createRuntime(flags, process.env);
  try {
    await rt.allBackends();
    const made = o.metricsAddress ? createMetrics(() => attachedHere(rt, o.nodeId)) : undefined;
    const metricsServer = made && o.metricsAddress ? await serveMetrics(made.registry, o.metricsAddress) : undefined;
    const plugin: Plugin = { rt, driverName: o.driverName, version: packageVersion(), nodeId: o.nodeId, mode: o.mode, maxVolumesPerNode: o.maxVolumesPerNode, metrics: made?.metrics ?? NO_METRICS };
    if (o.mode !== 'controller') {
      const props = await (await rt.backend()).connectorProperties();
      await rt.store.setKeyValue({ key: o.nodeId, value: JSON.stringify(props) });
      if (o.maxVolumesPerNode > 0) await rt.store.setKeyValue({ key: maxVolumesKey(o.nodeId), value: String(o.maxVolumesPerNode) });
      else await rt.store.deleteKeyValue(maxVolumesKey(o.nodeId));
      await startupCleanup(rt, o.nodeId, logger);
    }
    const server = await startCsiServer(plugin, o.endpoint, logger);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    logger.info({ signal }, 'csi plugin stopping');
    await server.close();
    await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
    logger.info({ signal }, 'csi plugin stopped');
  } finally {
    await rt.close().catch(() => undefined);
  }
}
