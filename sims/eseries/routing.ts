/**
 * The simulator's request plumbing: the array's error answers ({@link SimError}: 404 for a
 * missing object, 422 with a `retcode` for a refusal), request-body readers that refuse
 * like the array does, and the route table the resource modules fill.
 *
 * @module
 */

/** Bytes in a GiB. */
export const GIB = 1024 ** 3;
/** Path prefix of the REST API. */
export const BASE = '/devmgr/v2';
/** Path prefix of one storage system's resources (`sid` param). */
export const SYS = `${BASE}/storage-systems/{sid}`;

/** An error the array answers with: HTTP `status` and the body's `retcode` and `codeType`. */
export class SimError extends Error {
  constructor(
    readonly status: number,
    readonly retcode: string,
    message: string,
    readonly codeType = 'symbol',
  ) {
    super(message);
  }
}

/** 404 `objectNotFound` for a `kind` object `id`. */
export function notFound(kind: string, id: string): SimError {
  return new SimError(404, 'objectNotFound', `${kind} ${id} was not found`, 'webservice');
}

/** 422 refusal with `retcode`. */
export function invalid(retcode: string, message: string): SimError {
  return new SimError(422, retcode, message);
}

/**
 * The request body as an object.
 * @throws {@link SimError} 422 `invalidParameters` for anything else
 */
export function asRecord(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('invalidParameters', 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

/**
 * A required non-empty string field.
 * @throws {@link SimError} 422 `invalidParameters` naming `key`
 */
export function str(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v === '') throw invalid('invalidParameters', `${key} is required`);
  return v;
}

/**
 * A size in bytes from a number (or numeric string) and a `sizeUnit` (`bytes`, `kb` .. `tb`; default `gb`).
 * @throws {@link SimError} 422 `invalidParameters` for a non-positive size or an unknown unit
 */
export function unitBytes(size: unknown, unit: unknown): number {
  const n = typeof size === 'string' ? Number(size) : size;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) throw invalid('invalidParameters', 'size must be a positive number');
  const u = typeof unit === 'string' ? unit.toLowerCase() : 'gb';
  const mult: Record<string, number> = { bytes: 1, b: 1, kb: 1024, mb: 1024 ** 2, gb: GIB, tb: 1024 ** 4 };
  const m = mult[u];
  if (m === undefined) throw invalid('invalidParameters', `unknown sizeUnit ${u}`);
  return Math.round(n * m);
}

/** Path parameters by name (`{sid}`, `{id}`, ...), still URL-encoded. */
export type Params = Record<string, string>;
/** A route handler: its return value is the JSON answer (null for 204). */
export type Handler = (p: Params, body: unknown, query: URLSearchParams) => unknown | Promise<unknown>;

/** One REST route. */
export interface Route {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: Handler;
  /** Needs a registered storage system with this id (`sid` param) that is not offline. */
  system: boolean;
}

/** The routes, in the order they are tried. */
export class RouteTable {
  readonly routes: Route[] = [];

  /**
   * Add a route. `path` has `{name}` placeholders for one path segment each; a trailing slash is optional.
   * @param system false for routes that answer while the storage system is offline
   */
  add(method: string, path: string, handler: Handler, system = true): void {
    const names: string[] = [];
    const pattern = new RegExp(
      '^' +
        path.replace(/\/$/, '').replace(/\{(\w+)\}/g, (_m, n: string) => {
          names.push(n);
          return '([^/]+)';
        }) +
        '/?$',
    );
    this.routes.push({ method, pattern, names, handler, system });
  }
}
