/**
 * The SANtricity Web Services REST client: HTTP Basic auth over undici, TLS verification on by
 * default, a bound on every request, bounded retries on 5xx answers and connection errors, and
 * the array's error bodies (`{errorMessage, retcode, codeType}`) mapped to typed
 * {@link BrickError}s. Follows Cinder's `netapp/eseries/client.py` `RestClient` (paths, bodies,
 * `_eval_response`) with two fixes: the certificate is verified unless configured otherwise,
 * and the `about` URL is derived from the configured web-service path instead of assuming
 * `/devmgr/v2`. Passwords never reach a log line or an error message.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import {
  AlreadyExistsError,
  AuthenticationError,
  BackendError,
  BackendUnreachableError,
  BrickError,
  InsufficientCapacityError,
  InvalidConfigError,
  InvalidStateError,
  NotFoundError,
} from '../../errors.js';
import { maskObject, maskText } from '../../exec/mask.js';
import { retry } from '../../host/retry.js';
import type { Logger } from '../../log.js';
import type { EseriesConfig } from './config.js';

/** SANtricity return codes that mean the array password is wrong (Cinder's `_eval_response`). */
const PASSWORD_RETCODES = new Set(['30', 'authFailPassword']);
const CAPACITY_RETCODES = /capacity|space|noSpace|insufficient/i;
const STATE_RETCODES = new Set([
  'volumeMapped',
  'volumeAlreadyMapped',
  'volumeInCopy',
  'notOldestPit',
  'lunCollision',
  'hostHasMappings',
  'maxLunsExceeded',
  'maxSnapshotsExceeded',
  'maxSnapshotGroupsExceeded',
  'alreadyMember',
  'duplicatePort',
  'invalidCopyTarget',
]);

/** Options of one request. */
export interface RequestOptions {
  /** JSON body (sent only when defined). */
  body?: unknown;
  /** The path is under `/storage-systems/{system-id}`. Default true. */
  system?: boolean;
  /** An absolute path on the server (not under the web-service path). */
  absolute?: boolean;
}

function retryable(method: string, err: unknown): boolean {
  if (!(err instanceof BrickError)) return false;
  const status = err.details?.http_status as number | undefined;
  const conn = err.details?.connection_error as string | undefined;
  if (method === 'POST') {
    // A POST is only repeated when the array surely did not act on it.
    return conn === 'ECONNREFUSED' || status === 503;
  }
  return conn !== undefined || (status !== undefined && status >= 500);
}

/** The REST client. One per driver; `systemId` is set by the driver's setup. */
export class EseriesRestClient {
  /** The storage-system id paths are built with (set at setup). */
  systemId: string | undefined;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly auth: string;
  private readonly dispatcher: Dispatcher;
  private readonly secrets: string[];

  /**
   * Build the client (no request is made yet).
   * @throws {@link InvalidConfigError} (field `netapp_ca_certificate_path`) when the CA certificate file cannot be read
   */
  constructor(
    private readonly cfg: EseriesConfig,
    private readonly logger: Logger,
  ) {
    const host = cfg.serverHostname.includes(':') ? `[${cfg.serverHostname}]` : cfg.serverHostname;
    this.origin = `${cfg.transportType}://${host}:${cfg.serverPort}`;
    this.basePath = cfg.webservicePath;
    this.auth = 'Basic ' + Buffer.from(`${cfg.login}:${cfg.password}`).toString('base64');
    this.secrets = [cfg.password, cfg.saPassword ?? '', cfg.chapPassword ?? '', this.auth].filter((s) => s !== '');
    let ca: string | undefined;
    if (cfg.caCertificatePath) {
      try {
        ca = readFileSync(cfg.caCertificatePath, 'utf8');
      } catch (err) {
        throw new InvalidConfigError(`invalid netapp_ca_certificate_path: cannot read ${cfg.caCertificatePath}: ${(err as Error).message}`, {
          field: 'netapp_ca_certificate_path',
        });
      }
    }
    this.dispatcher = new Agent({
      connect: { rejectUnauthorized: cfg.verifyCertificate, ...(ca ? { ca } : {}), timeout: cfg.apiTimeoutMs },
      headersTimeout: cfg.apiTimeoutMs,
      bodyTimeout: cfg.apiTimeoutMs,
    });
  }

  /** The server's base URL for messages (no credentials in it). */
  get endpoint(): string {
    return `${this.origin}${this.basePath}`;
  }

  /** `GET {path}`. @throws as {@link EseriesRestClient.invoke} */
  get<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.invoke<T>('GET', path, options);
  }

  /** `POST {path}` with a JSON body. @throws as {@link EseriesRestClient.invoke} */
  post<T = unknown>(path: string, body: unknown, options: RequestOptions = {}): Promise<T> {
    return this.invoke<T>('POST', path, { ...options, body });
  }

  /** `DELETE {path}`. @throws as {@link EseriesRestClient.invoke} */
  delete<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.invoke<T>('DELETE', path, options);
  }

  /** `GET {scheme}://{host}:{port}{parent of the web-service path}/utils/about`. */
  about(): Promise<{ runningAsProxy?: boolean; version?: string }> {
    const parent = this.basePath.replace(/\/[^/]*$/, '');
    return this.invoke('GET', `${parent}/utils/about`, { absolute: true });
  }

  /** Release the HTTP connection pool. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /**
   * Run a request with the configured retries (`netapp_api_retries`; a POST is repeated only when the array surely did not
   * act on it). The last attempt's error is thrown as is.
   * @throws {@link InvalidStateError} for a path under the storage system before {@link EseriesRestClient.systemId} is set (before set-up)
   * @throws {@link BackendUnreachableError} (field `netapp_server_hostname`) when the server cannot be reached or does not
   *   answer within `netapp_api_timeout`, (field `netapp_verify_certificate`) when its TLS certificate is not accepted,
   *   or for HTTP 424 (the storage system is offline)
   * @throws {@link AuthenticationError} (field `netapp_password`) for HTTP 401/403, (field `netapp_sa_password`) for a
   *   wrong array password
   * @throws {@link NotFoundError} for HTTP 404; for HTTP 400/409/422 {@link InsufficientCapacityError},
   *   {@link AlreadyExistsError} (`duplicateLabel`) or {@link InvalidStateError} by the array's `retcode`
   *   (see {@link EseriesRestClient.mapError}); {@link BackendError} for any other error answer
   */
  async invoke<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    let full: string;
    if (options.absolute) full = path;
    else if (options.system === false) full = `${this.basePath}${path}`;
    else {
      if (!this.systemId) throw new InvalidStateError('the E-Series driver is not set up: storage system id not known (call doSetup first)');
      full = `${this.basePath}/storage-systems/${encodeURIComponent(this.systemId)}${path}`;
    }
    return retry(() => this.once<T>(method, full, options.body), {
      attempts: this.cfg.apiRetries + 1,
      delayMs: Math.min(this.cfg.pollIntervalMs, 1000),
      maxDelayMs: 5000,
      retryIf: (err) => retryable(method, err),
      onRetry: (err, attempt) => this.logger.warn({ method, path: full, attempt, err: (err as Error).message }, 'E-Series request failed, retrying'),
    });
  }

  private async once<T>(method: string, path: string, body: unknown): Promise<T> {
    const url = `${this.origin}${path}`;
    const started = Date.now();
    this.logger.debug({ method, path, body: body === undefined ? undefined : maskObject(body) }, 'E-Series request');
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: method as Dispatcher.HttpMethod,
        dispatcher: this.dispatcher,
        headers: {
          authorization: this.auth,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(this.cfg.apiTimeoutMs),
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
      const code = e.cause?.code ?? e.code ?? e.name;
      const certificate = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i.test(String(code));
      const msg = maskText(e.message, this.secrets);
      if (certificate) {
        throw new BackendUnreachableError(
          `TLS certificate of SANtricity Web Services at ${this.origin} was not accepted (${code}); give netapp_ca_certificate_path, or set netapp_verify_certificate false for a lab`,
          { field: 'netapp_verify_certificate', details: { method, path, connection_error: 'certificate' } },
        );
      }
      throw new BackendUnreachableError(`cannot reach SANtricity Web Services at ${this.origin} (${method} ${path}): ${code}: ${msg}`, {
        field: 'netapp_server_hostname',
        details: { method, path, connection_error: String(code) },
      });
    }
    const raw = await res.body.text();
    this.logger.debug({ method, path, status: res.statusCode, ms: Date.now() - started }, 'E-Series response');
    let parsed: unknown = null;
    if (raw !== '') {
      try {
        parsed = JSON.parse(raw) as unknown;
      } catch {
        parsed = null;
      }
    }
    if (res.statusCode >= 300) throw this.mapError(method, path, res.statusCode, parsed, raw);
    return parsed as T;
  }

  /** Map an error answer to a typed error (Cinder's `_eval_response`, with more precise types). */
  mapError(method: string, path: string, status: number, parsed: unknown, raw: string): BrickError {
    const body = parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
    const retcode = body.retcode !== undefined ? String(body.retcode) : undefined;
    const arrayMsg = maskText(String(body.errorMessage ?? body.localizedMessage ?? raw ?? '').slice(0, 500), this.secrets);
    const details = { http_status: status, retcode, method, path };
    const where = `${method} ${path}`;
    if (status === 401 || status === 403) {
      return new AuthenticationError(
        `SANtricity Web Services at ${this.origin} refused the credentials of netapp_login ${JSON.stringify(this.cfg.login)} (HTTP ${status}); check netapp_login and netapp_password`,
        { field: 'netapp_password', details },
      );
    }
    if (status === 422 && retcode !== undefined && PASSWORD_RETCODES.has(retcode)) {
      return new AuthenticationError('the storage array password (netapp_sa_password) is incorrect', { field: 'netapp_sa_password', details });
    }
    if (status === 424) {
      return new BackendUnreachableError(`the storage system is offline (HTTP 424 on ${where})`, { details });
    }
    if (status === 404) {
      const segs = path.split('/').filter((s) => s !== '');
      const id = decodeURIComponent(segs[segs.length - 1] ?? path);
      const kind = segs.length >= 2 ? segs[segs.length - 2]!.replace(/s$/, '') : 'resource';
      return new NotFoundError(kind, id, { details: { ...details, array_message: arrayMsg } });
    }
    if (status === 422 || status === 400 || status === 409) {
      const msg = `the storage array refused ${where}: ${arrayMsg || `HTTP ${status}`}${retcode ? ` (retcode ${retcode})` : ''}`;
      if (retcode && CAPACITY_RETCODES.test(retcode)) return new InsufficientCapacityError(msg, { details });
      if (retcode === 'duplicateLabel') return new AlreadyExistsError(msg, { details });
      if (retcode && STATE_RETCODES.has(retcode)) return new InvalidStateError(msg, { details });
      return new BackendError(msg, { details });
    }
    return new BackendError(`SANtricity Web Services answered ${where} with HTTP ${status}${arrayMsg ? `: ${arrayMsg}` : ''}`, { details });
  }
}
