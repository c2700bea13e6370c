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
import { Option, type Command } from 'commander';
import { exitCodeFor, InvalidInputError } from '../errors.js';
import type { GlobalFlags } from '../cli/runtime.js';
import { printError } from '../cli/output.js';
import type { PluginMode } from './plugin.js';

/**
 * The default CSI driver name: reverse DNS under a domain no one else uses. A deployment that
 * runs more than one Brick plugin per cluster gives each its own `--driver-name`.
 */
export const DEFAULT_DRIVER_NAME = 'csi.brick.example.org';

/** Options of `brick csi`, as commander parses them. */
export interface CsiOptions {
  endpoint: string;
  nodeId: string;
  mode: PluginMode;
  driverName: string;
  metricsAddress?: string;
  maxVolumesPerNode: number;
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
        // gRPC, protobuf and prom-client load here, not for every `brick` command (issue 18).
        const { runPlugin } = await import('./run.js');
        await runPlugin(o, flags());
      } catch (err) {
        printError(json, err);
        setExitCode(exitCodeFor(err));
      }
    });
}
