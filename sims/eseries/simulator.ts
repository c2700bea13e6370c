/**
 * A stateful simulator of the NetApp SANtricity Web Services REST API (proxy or embedded), as
 * far as Brick's E-Series driver uses it.
 *
 * Upstream Cinder never had a REST simulator (its tests replace the client with canned JSON),
 * so this one is written from the Web Services' endpoint, body and field tables. It keeps the
 * array's state (storage system, pools with capacity, thick and thin volumes, snapshot groups /
 * images / views, copy jobs that advance over time, hosts, host groups, host types, LUN
 * mappings, iSCSI target settings, persistent records, consistency groups) and reproduces the
 * array's refusals: 422 bodies (`{errorMessage, localizedMessage, retcode, codeType}`), 404 for
 * missing objects, 424 when the storage system is offline, 401 for bad credentials, capacity
 * exhaustion, LUN collisions, the one-mapping-per-volume rule and the oldest-first rule for
 * snapshot images.
 *
 * This file is the HTTP server: authentication, injected faults, routing and answers. The
 * array lives in `state.ts` (shapes in `types.ts`), the routes in `routes/` (one module per
 * resource family), the JSON shapes in `format.ts` and the request plumbing in `routing.ts`.
 *
 * Tests and `brick sim eseries` start it with {@link startEseriesSimulator}; faults are injected
 * through the returned {@link EseriesSimulator.state}.
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { errorBody } from './format.js';
import { RouteTable, SimError, notFound, type Params, type Route } from './routing.js';
import { consistencyGroupRoutes, cgSnapshotRoutes, cgViewRoutes, memberRoutes } from './routes/consistency-groups.js';
import { hostGroupRoutes, hostRoutes, mappingRoutes } from './routes/hosts.js';
import { iscsiTargetRoutes } from './routes/iscsi.js';
import { snapshotGroupRoutes, snapshotImageRoutes, snapshotViewRoutes } from './routes/snapshots.js';
import { inventoryRoutes, poolRoutes, recordRoutes, storageSystemRoutes } from './routes/system.js';
import { copyJobRoutes, expansionRoutes, volumeRoutes } from './routes/volumes.js';
import { EseriesSimState } from './state.js';
import type { EseriesSimulatorOptions, SimFault } from './types.js';

export { EseriesSimState } from './state.js';
export {
  NULL_REF,
  type EseriesSimulatorOptions,
  type SimBackingHooks,
  type SimFault,
  type SimPoolSpec,
  type SimPortalSpec,
  type SimRequestRecord,
  type SimVolume,
} from './types.js';

/** The REST routes over a state, every resource family in turn. */
function buildRoutes(s: EseriesSimState): Route[] {
  const r = new RouteTable();
  for (const family of [
    storageSystemRoutes,
    inventoryRoutes,
    recordRoutes,
    poolRoutes,
    volumeRoutes,
    expansionRoutes,
    snapshotGroupRoutes,
    snapshotImageRoutes,
    snapshotViewRoutes,
    copyJobRoutes,
    hostRoutes,
    hostGroupRoutes,
    mappingRoutes,
    iscsiTargetRoutes,
    consistencyGroupRoutes,
    memberRoutes,
    cgSnapshotRoutes,
    cgViewRoutes,
  ]) {
    family(r, s);
  }
  return r.routes;
}

/** A running simulator. */
export interface EseriesSimulator {
  /** Base URL of the server, e.g. `http://127.0.0.1:41234` (the driver adds `/devmgr/v2`). */
  url: string;
  host: string;
  port: number;
  /** The array's state, for inspection and fault injection. */
  state: EseriesSimState;
  /** Stop listening and drop open connections. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = body === null || body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The first injected fault matching the request, if any. */
function matchFault(state: EseriesSimState, method: string, path: string): SimFault | undefined {
  return state.faults.find((f) => (!f.method || f.method === method) && (typeof f.path === 'string' ? path.includes(f.path) : f.path.test(path)));
}

/**
 * Count one use of `fault` (dropping it when used up) and answer with it: its status and body,
 * a dropped connection (0), or before handling (`early`) no answer at all (-1).
 */
function fireFault(state: EseriesSimState, fault: SimFault, req: IncomingMessage, res: ServerResponse, early: boolean): void {
  fault.times = (fault.times ?? 1) - 1;
  if (fault.times <= 0) state.faults.splice(state.faults.indexOf(fault), 1);
  if (early && fault.status === -1) return;
  if (fault.status === 0) {
    req.socket.destroy();
    return;
  }
  send(res, fault.status, fault.body ?? { errorMessage: `injected fault ${fault.status}`, retcode: 'injected', codeType: 'webservice' });
}

/** One request, after authentication and faults. */
interface Call {
  method: string;
  path: string;
  body: unknown;
  query: URLSearchParams;
  fault: SimFault | undefined;
}

/**
 * Run the route `r` matched with `params`: check the storage system (404 unknown, 424 offline
 * for routes that need it online), run the handler, and answer with its result, or with an
 * `afterHandling` fault as if the answer were lost.
 */
async function runRoute(state: EseriesSimState, r: Route, params: Params, call: Call, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    if (params.sid !== undefined) {
      if (!state.system || state.system.id !== params.sid) throw notFound('storage system', params.sid);
      if (r.system && (state.system.status === 'offline' || state.system.status === 'neverContacted')) {
        send(res, 424, { errorMessage: 'The storage-system is offline', retcode: 'systemOffline', codeType: 'webservice' });
        return;
      }
    }
    const out = await r.handler(params, call.body, call.query);
    if (call.fault) return fireFault(state, call.fault, req, res, false);
    send(res, call.method === 'POST' && call.path.endsWith('/storage-systems') ? 201 : out === null ? 204 : 200, out);
  } catch (err) {
    if (err instanceof SimError) send(res, err.status, errorBody(err));
    else send(res, 500, { errorMessage: `simulator failure: ${(err as Error).message}`, retcode: 'internalError', codeType: 'webservice' });
  }
}

/** Route `call` to the first matching route, or answer 404 `resourceNotFound`. */
async function dispatch(state: EseriesSimState, routes: Route[], call: Call, req: IncomingMessage, res: ServerResponse): Promise<void> {
  for (const r of routes) {
    if (r.method !== call.method) continue;
    const m = r.pattern.exec(call.path);
    if (!m) continue;
    const params: Params = {};
    r.names.forEach((n, i) => (params[n] = m[i + 1]!));
    await runRoute(state, r, params, call, req, res);
    return;
  }
  send(res, 404, { errorMessage: `no resource ${call.method} ${call.path}`, retcode: 'resourceNotFound', codeType: 'webservice' });
}

/**
 * Handle one request: record it, refuse malformed JSON (400), fire a fault meant to come
 * before handling, refuse bad credentials (401), then dispatch.
 */
async function handle(state: EseriesSimState, routes: Route[], expectedAuth: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://sim');
  const method = (req.method ?? 'GET').toUpperCase();
  const path = url.pathname;
  const raw = await readBody(req);
  let body: unknown = null;
  const authorized = req.headers.authorization === expectedAuth;
  try {
    body = raw === '' ? null : (JSON.parse(raw) as unknown);
  } catch {
    state.requests.push({ method, path, body: raw, authorized });
    send(res, 400, { errorMessage: 'malformed JSON body', retcode: 'invalidJson', codeType: 'webservice' });
    return;
  }
  state.requests.push({ method, path, body, authorized });
  const fault = matchFault(state, method, path);
  if (fault && !fault.afterHandling) return fireFault(state, fault, req, res, true);
  if (!authorized) {
    res.setHeader('www-authenticate', 'Basic realm="devmgr"');
    send(res, 401, { errorMessage: 'Unauthorized', retcode: 'unauthorized', codeType: 'webservice' });
    return;
  }
  await dispatch(state, routes, { method, path, body, query: url.searchParams, fault }, req, res);
}

/**
 * Start a SANtricity Web Services simulator on a loopback port.
 *
 * @returns the URL (no path; the driver's `netapp_webservice_path` `/devmgr/v2` is served under it), the state and `close()`.
 */
export async function startEseriesSimulator(options: EseriesSimulatorOptions = {}): Promise<EseriesSimulator> {
  const state = new EseriesSimState(options);
  const routes = buildRoutes(state);
  const expectedAuth = 'Basic ' + Buffer.from(`${state.options.login}:${state.options.password}`).toString('base64');
  const listener: RequestListener = (req, res) => void handle(state, routes, expectedAuth, req, res);
  const server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, listener) : createServer(listener);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    state,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
