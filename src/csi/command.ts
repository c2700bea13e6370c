/**
 * `brick csi`: run the Kubernetes CSI plugin.
 *
 * ```
 * brick csi --endpoint unix:///run/brick/csi.sock --node-id NODE [--mode controller|node|all]
 *           [--driver-name NAME] [--metrics-address HOST:PORT] [--max-volumes-per-node N] [--config FILE]
 * ```
 *
 * The configuration gives backends and persistence exactly as for every `brick` command. The
 * controller (a Deployment) and the node plugin (a DaemonSet) may be separate processes on
 * separate hosts sharing one store: a node plugin stores this host's connector properties in
 * the key-value store under its node id before it listens (and its volume limit under
 * `csi-max-volumes/<node id>`), which is how the controller maps volumes for it. JSON log lines (pino) go to stderr. SIGTERM or SIGINT stops it: new calls are
 * refused, running ones finish (30 s at most), the socket is removed, the store closed.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { Option, type Command } from 'commander';
import { exitCodeFor, InvalidInputError } from '../errors.js';
import { createLogger } from '../log.js';
import { createRuntime, type GlobalFlags, type Runtime } from '../cli/runtime.js';
import { printError } from '../cli/output.js';
import { maxVolumesKey } from './controller.js';
import { createMetrics, NO_METRICS, serveMetrics } from './metrics.js';
import type { Plugin, PluginMode } from './plugin.js';
import { startCsiServer } from './server.js';

/**
 * The default CSI driver name: reverse DNS under a domain no one else uses. A deployment that
 * runs more than one Brick plugin per cluster gives each its own `--driver-name`.
 */
export const DEFAULT_DRIVER_NAME = 'csi.brick.example.org';

/** Options of `brick csi`. */
interface CsiOptions {
  endpoint: string;
  nodeId: string;
  mode: PluginMode;
  driverName: string;
  metricsAddress?: string;
  maxVolumesPerNode: number;
}

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
 * Start the plugin and serve until SIGTERM/SIGINT.
 * @throws whatever building the runtime, setting up the backends or binding the socket throws
 */
async function runPlugin(o: CsiOptions, flags: GlobalFlags): Promise<void> {
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

/** A whole number option. @throws {@link InvalidInputError} naming `field` */
function count(field: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidInputError(field, `must be a whole number, got ${JSON.stringify(value)}`);
    return Number(value);
  };
}

/**
 * Add `brick csi` to `program`. `flags` gives the global flags (`--config`, `--verbose`...);
 * `setExitCode` receives the exit status of a plugin that could not start.
 */
export function registerCsiCommand(program: Command, flags: () => GlobalFlags, setExitCode: (code: number) => void): void {
  program
    .command('csi')
    .description('run the Kubernetes CSI plugin (controller, node or both) on a unix socket until SIGTERM')
    .requiredOption('--endpoint <unix-url>', 'the gRPC endpoint, e.g. unix:///run/brick/csi.sock')
    .requiredOption('--node-id <id>', "this node's id (the key of its connector properties in the store)")
    .addOption(new Option('--mode <mode>', 'services to serve').choices(['controller', 'node', 'all']).default('all'))
    .option('--driver-name <name>', 'CSI driver name (reverse DNS)', DEFAULT_DRIVER_NAME)
    .option('--metrics-address <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics')
    .addOption(new Option('--max-volumes-per-node <n>', 'NodeGetInfo max_volumes_per_node (0: no limit)').argParser(count('max_volumes_per_node')).default(0))
    .action(async (o: CsiOptions) => {
      const json = Boolean(flags().json);
      try {
        await runPlugin(o, flags());
      } catch (err) {
        printError(json, err);
        setExitCode(exitCodeFor(err));
      }
    });
}
