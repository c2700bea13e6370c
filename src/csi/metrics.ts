/**
 * Prometheus metrics of the CSI plugin (`--metrics-address HOST:PORT`), with prom-client on a
 * registry of its own, served as text at `/metrics`:
 *
 * - `brick_csi_rpc_total{method,code}`: finished RPCs by method and gRPC status name;
 * - `brick_csi_rpc_duration_seconds{method,code}`: their latency (histogram);
 * - `brick_csi_operations_in_flight`: RPCs running now;
 * - `brick_csi_attach_duration_seconds{operation,protocol}`: host-side attach and detach latency;
 * - `brick_csi_volumes_attached`: connections attached on this node, read from the store at scrape time.
 *
 * @module
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { InvalidInputError } from '../errors.js';

/** What the server and the node service report to. */
export interface CsiMetrics {
  /** One finished RPC. */
  rpc(method: string, code: string, seconds: number): void;
  /** An RPC started (+1) or finished (-1). */
  inFlight(delta: number): void;
  /** One host-side attach or detach. */
  attach(operation: 'attach' | 'detach', protocol: string, seconds: number): void;
}

/** Metrics that go nowhere (no `--metrics-address`). */
export const NO_METRICS: CsiMetrics = { rpc: () => undefined, inFlight: () => undefined, attach: () => undefined };

/** A registry with the plugin's metrics; `attachedVolumes` is asked at every scrape. */
export function createMetrics(attachedVolumes: () => Promise<number>): { metrics: CsiMetrics; registry: Registry } {
  const registry = new Registry();
  const total = new Counter({ name: 'brick_csi_rpc_total', help: 'CSI RPCs finished, by method and gRPC status code', labelNames: ['method', 'code'], registers: [registry] });
  const duration = new Histogram({ name: 'brick_csi_rpc_duration_seconds', help: 'CSI RPC latency in seconds', labelNames: ['method', 'code'], buckets: [0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers: [registry] });
  const inFlight = new Gauge({ name: 'brick_csi_operations_in_flight', help: 'CSI RPCs running now', registers: [registry] });
  const attach = new Histogram({ name: 'brick_csi_attach_duration_seconds', help: 'Host-side attach and detach latency in seconds, by protocol', labelNames: ['operation', 'protocol'], buckets: [0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry] });
  new Gauge({
    name: 'brick_csi_volumes_attached',
    help: 'Volumes attached on this node',
    registers: [registry],
    async collect() {
      this.set(await attachedVolumes());
    },
  });
  return {
    registry,
    metrics: {
      rpc: (method, code, seconds) => {
        total.inc({ method, code });
        duration.observe({ method, code }, seconds);
      },
      inFlight: (delta) => inFlight.inc(delta),
      attach: (operation, protocol, seconds) => attach.observe({ operation, protocol }, seconds),
    },
  };
}

/**
 * `HOST:PORT` (`[v6addr]:PORT` for IPv6) split for `listen`.
 * @throws {@link InvalidInputError} (field `metrics_address`) for anything else
 */
export function parseListenAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidInputError('metrics_address', `must be HOST:PORT, got ${JSON.stringify(address)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** Serve `registry` at `http://address/metrics`; resolves once listening. */
export async function serveMetrics(registry: Registry, address: string): Promise<Server> {
  const { host, port } = parseListenAddress(address);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
