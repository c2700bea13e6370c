/**
 * The gRPC server of the CSI plugin on a unix socket: the Identity service always, the
 * Controller and Node services as the mode says, every call wrapped the same way (one log line,
 * metrics, the error-code table of `status.ts`).
 *
 * Logs never carry a field the spec marks `csi_secret`: every such field in `csi.proto` is a map
 * named `secrets`, and {@link withoutSecrets} drops that key at any depth before a request is
 * logged; replies are not logged.
 *
 * @module
 */
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import { InvalidInputError } from '../errors.js';
import { createSnapshot, deleteSnapshot, listSnapshots } from './controller-snapshots.js';
import * as controller from './controller.js';
import { pluginCapabilities, pluginInfo, probe } from './identity.js';
import * as node from './node.js';
import type { Plugin } from './plugin.js';
import { loadCsiServices } from './proto.js';
import { grpcCodeFor, grpcCodeName } from './status.js';
import type { CsiRequest } from './types.js';

type Handler = (req: CsiRequest) => Promise<unknown> | unknown;

/** A copy of `value` without any `secrets` key, at any depth (the spec's `csi_secret` fields). */
export function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (k !== 'secrets') out[k] = withoutSecrets(v);
  return out;
}

/**
 * The socket path of a `unix://` endpoint (`unix:///run/brick/csi.sock` or `unix:/run/...`).
 * @throws {@link InvalidInputError} (field `endpoint`) for any other endpoint
 */
export function socketPath(endpoint: string): string {
  const path = endpoint.startsWith('unix://') ? endpoint.slice(7) : endpoint.startsWith('unix:') ? endpoint.slice(5) : '';
  if (!/^\/[^/]/.test(path)) throw new InvalidInputError('endpoint', `must be unix:///absolute/path.sock, got ${JSON.stringify(endpoint)}`);
  return path;
}

/** The ids a log line carries (never the whole request at info level). */
function logFields(req: CsiRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['volume_id', 'node_id', 'name', 'snapshot_id', 'source_volume_id']) if (typeof req[k] === 'string' && req[k] !== '') out[k] = req[k];
  return out;
}

function wrap(plugin: Plugin, logger: Logger, method: string, fn: Handler): grpc.handleUnaryCall<CsiRequest, unknown> {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const req = call.request ?? {};
    plugin.metrics.inFlight(1);
    logger.debug({ method, request: withoutSecrets(req) }, 'csi call');
    const finish = (code: grpc.status, err?: unknown) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      plugin.metrics.inFlight(-1);
      plugin.metrics.rpc(method, grpcCodeName(code), seconds);
      const line = { method, ...logFields(req), code: grpcCodeName(code), ms: Math.round(seconds * 1000) };
      if (err === undefined) logger.info(line, 'csi call done');
      else if (code === grpc.status.INTERNAL || code === grpc.status.DEADLINE_EXCEEDED) logger.error({ ...line, err }, 'csi call failed');
      else logger.info({ ...line, message: (err as Error).message }, 'csi call refused');
    };
    Promise.resolve()
      .then(() => fn(req))
      .then(
        (res) => {
          finish(grpc.status.OK);
          callback(null, res);
        },
        (err: unknown) => {
          const code = grpcCodeFor(err);
          finish(code, err);
          callback({ code, details: err instanceof Error ? err.message : String(err) });
        },
      );
  };
}

function handlers(plugin: Plugin, logger: Logger, table: Record<string, Handler>): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const [method, fn] of Object.entries(table)) out[method] = wrap(plugin, logger, method, fn);
  return out;
}

function controllerTable(p: Plugin): Record<string, Handler> {
  return {
    CreateVolume: (r) => controller.createVolume(p, r),
    DeleteVolume: (r) => controller.deleteVolume(p, r),
    ControllerPublishVolume: (r) => controller.controllerPublish(p, r),
    ControllerUnpublishVolume: (r) => controller.controllerUnpublish(p, r),
    ValidateVolumeCapabilities: (r) => controller.validateCapabilities(p, r),
    ListVolumes: (r) => controller.listVolumes(p, r),
    GetCapacity: (r) => controller.getCapacity(p, r),
    ControllerGetCapabilities: () => controller.controllerCapabilities(),
    CreateSnapshot: (r) => createSnapshot(p, r),
    DeleteSnapshot: (r) => deleteSnapshot(p, r),
    ListSnapshots: (r) => listSnapshots(p, r),
    ControllerExpandVolume: (r) => controller.controllerExpand(p, r),
    ControllerGetVolume: (r) => controller.controllerGetVolume(p, r),
  };
}

function nodeTable(p: Plugin): Record<string, Handler> {
  return {
    NodeStageVolume: (r) => node.nodeStage(p, r),
    NodeUnstageVolume: (r) => node.nodeUnstage(p, r),
    NodePublishVolume: (r) => node.nodePublish(p, r),
    NodeUnpublishVolume: (r) => node.nodeUnpublish(p, r),
    NodeGetVolumeStats: (r) => node.nodeGetVolumeStats(p, r),
    NodeExpandVolume: (r) => node.nodeExpand(p, r),
    NodeGetCapabilities: () => node.nodeCapabilities(),
    NodeGetInfo: () => node.nodeInfo(p),
  };
}

/** A running plugin server. */
export interface CsiServer {
  /** The unix socket it listens on. */
  readonly socket: string;
  /** Refuse new calls, let running ones finish (at most `graceMs`, then cancel them), remove the socket. */
  close(graceMs?: number): Promise<void>;
}

/** Remove a socket left by a previous process (nothing else: a regular file there is an error). */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) throw new InvalidInputError('endpoint', `${path} exists and is not a socket`);
  await unlink(path);
}

/**
 * Serve the plugin on `endpoint` (a `unix://` socket, made in a directory created when missing).
 * Methods the mode does not serve answer UNIMPLEMENTED (grpc-js's answer for a missing method).
 * @throws {@link InvalidInputError} (field `endpoint`) for a non-unix endpoint or a non-socket file at its path
 */
export async function startCsiServer(plugin: Plugin, endpoint: string, logger: Logger): Promise<CsiServer> {
  const path = socketPath(endpoint);
  const services = loadCsiServices();
  const server = new grpc.Server();
  server.addService(services.Identity, handlers(plugin, logger, { GetPluginInfo: () => pluginInfo(plugin), GetPluginCapabilities: () => pluginCapabilities(), Probe: () => probe() }));
  server.addService(services.Controller, plugin.mode === 'node' ? {} : handlers(plugin, logger, controllerTable(plugin)));
  server.addService(services.Node, plugin.mode === 'controller' ? {} : handlers(plugin, logger, nodeTable(plugin)));
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  await removeStaleSocket(path);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  logger.info({ endpoint, mode: plugin.mode, node_id: plugin.nodeId, driver: plugin.driverName }, 'csi plugin listening');
  return {
    socket: path,
    close: async (graceMs = 30_000) => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await unlink(path).catch(() => undefined);
    },
  };
}
