/**
 * Configuration of the E-Series driver: Cinder's option names (`cinder/volume/drivers/netapp/options.py`),
 * validated up front with errors that name the key, plus a few Brick options for TLS and bounds.
 *
 * @module
 */
import { InvalidConfigError } from '../../errors.js';
import { compilePoolPattern } from './utils.js';

/** The parsed configuration. Times in ms. */
export interface EseriesConfig {
  serverHostname: string;
  serverPort: number;
  transportType: 'http' | 'https';
  /** Base path of the REST API, default `/devmgr/v2`. */
  webservicePath: string;
  login: string;
  password: string;
  controllerIps: string[];
  saPassword: string | undefined;
  poolPattern: RegExp;
  poolPatternText: string;
  /** The configured host type (alias, code or name), default `linux_dm_mp`. */
  hostType: string;
  enableMultiattach: boolean;
  useMultipath: boolean;
  useChapAuth: boolean;
  chapUsername: string;
  chapPassword: string | undefined;
  reservedPercentage: number;
  maxOverSubscriptionRatio: number;
  backendName: string;
  /** Verify the Web Services TLS certificate (Brick default true; upstream never verified). */
  verifyCertificate: boolean;
  caCertificatePath: string | undefined;
  /** One HTTP request's bound. */
  apiTimeoutMs: number;
  /** Extra attempts after a 5xx answer or a connection error. */
  apiRetries: number;
  /** Poll interval for copy jobs, DVE and the storage-system status. */
  pollIntervalMs: number;
  /** Bound on one volume copy (clone, create from snapshot). */
  copyTimeoutMs: number;
  /** Bound on the storage-system status / password poll at setup (upstream `SA_COMM_TIMEOUT`, 30 s). */
  saCommTimeoutMs: number;
  /** Bound on waiting for a thick expansion's dynamic volume expansion. */
  extendTimeoutMs: number;
  /** Default for `netapp_thin_provisioned` when a volume's extra specs do not say. */
  thinProvisionedDefault: boolean;
}

type Raw = Record<string, unknown>;

function pick(raw: Raw, keys: string[]): { key: string; value: unknown } | undefined {
  for (const key of keys) {
    const v = raw[key];
    if (v !== undefined && v !== null && v !== '') return { key, value: v };
  }
  return undefined;
}

function text(raw: Raw, key: string, required: true, aliases?: string[]): string;
function text(raw: Raw, key: string, required: false, aliases?: string[]): string | undefined;
function text(raw: Raw, key: string, required: boolean, aliases: string[] = []): string | undefined {
  const p = pick(raw, [key, ...aliases]);
  if (!p) {
    if (required) throw new InvalidConfigError(`invalid ${key}: required for the netapp_eseries driver`, { field: key });
    return undefined;
  }
  if (typeof p.value !== 'string' && typeof p.value !== 'number') {
    throw new InvalidConfigError(`invalid ${p.key}: must be a string`, { field: p.key });
  }
  return String(p.value).trim();
}

function bool(raw: Raw, key: string, dflt: boolean, aliases: string[] = []): boolean {
  const p = pick(raw, [key, ...aliases]);
  if (!p) return dflt;
  if (typeof p.value === 'boolean') return p.value;
  const s = String(p.value).trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(s)) return true;
  if (['false', 'no', 'off', '0'].includes(s)) return false;
  throw new InvalidConfigError(`invalid ${p.key}: ${JSON.stringify(p.value)} is not a boolean`, { field: p.key });
}

function num(raw: Raw, key: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER, integer = false): number {
  const p = pick(raw, [key]);
  if (!p) return dflt;
  const n = typeof p.value === 'number' ? p.value : Number(String(p.value).trim());
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new InvalidConfigError(`invalid ${key}: ${JSON.stringify(p.value)} must be ${integer ? 'an integer' : 'a number'} in ${min}..${max}`, { field: key });
  }
  return n;
}

/**
 * Validate and parse the backend options of an E-Series backend.
 *
 * Required: `netapp_server_hostname`, `netapp_login`, `netapp_password`, `netapp_controller_ips`.
 * Options (defaults): `netapp_server_port` (8080 for http, 8443 for https), `netapp_transport_type`
 * (`http`), `netapp_webservice_path` (`/devmgr/v2`), `netapp_sa_password`,
 * `netapp_pool_name_search_pattern` (`(.+)`; deprecated aliases `netapp_storage_pools`,
 * `netapp_volume_list`), `netapp_host_type` (`linux_dm_mp`), `netapp_enable_multiattach` (false),
 * `use_multipath_for_image_xfer` (false), `use_chap_auth` (false), `chap_username`
 * (`eserieschapuser`), `chap_password` (generated and kept in the driver's state directory when
 * absent), `reserved_percentage` (0), `max_over_subscription_ratio` (20),
 * `netapp_verify_certificate` / `driver_ssl_cert_verify` (true), `netapp_ca_certificate_path` /
 * `driver_ssl_cert_path`, `netapp_api_timeout` (s, 60), `netapp_api_retries` (3),
 * `netapp_poll_interval` (s, 5), `netapp_copy_timeout` (s, 3600), `netapp_sa_comm_timeout`
 * (s, 30), `netapp_extend_timeout` (s, 3600), `netapp_thin_provisioned` (false).
 *
 * @throws {@link InvalidConfigError} whose `field` names the offending key
 */
export function parseEseriesConfig(raw: Raw, backendName: string): EseriesConfig {
  const family = text(raw, 'netapp_storage_family', false);
  if (family !== undefined && family !== 'eseries') {
    throw new InvalidConfigError(`invalid netapp_storage_family: ${JSON.stringify(family)}; this driver serves "eseries"`, { field: 'netapp_storage_family' });
  }
  const protocol = text(raw, 'netapp_storage_protocol', false);
  if (protocol !== undefined && protocol.toLowerCase() !== 'iscsi') {
    throw new InvalidConfigError(`invalid netapp_storage_protocol: ${JSON.stringify(protocol)}; only iscsi is supported`, { field: 'netapp_storage_protocol' });
  }
  const transportType = (text(raw, 'netapp_transport_type', false) ?? 'http').toLowerCase();
  if (transportType !== 'http' && transportType !== 'https') {
    throw new InvalidConfigError(`invalid netapp_transport_type: ${JSON.stringify(transportType)} must be http or https`, { field: 'netapp_transport_type' });
  }
  const serverHostname = text(raw, 'netapp_server_hostname', true);
  if (/[\s/]/.test(serverHostname)) throw new InvalidConfigError('invalid netapp_server_hostname: must be a host name or address, not a URL', { field: 'netapp_server_hostname' });
  const serverPort = num(raw, 'netapp_server_port', transportType === 'https' ? 8443 : 8080, 1, 65535, true);
  let webservicePath = text(raw, 'netapp_webservice_path', false) ?? '/devmgr/v2';
  if (!webservicePath.startsWith('/')) webservicePath = `/${webservicePath}`;
  webservicePath = webservicePath.replace(/\/+$/, '');
  if (webservicePath === '' || /[\s?#]/.test(webservicePath)) {
    throw new InvalidConfigError('invalid netapp_webservice_path: must be a URL path such as /devmgr/v2', { field: 'netapp_webservice_path' });
  }
  const login = text(raw, 'netapp_login', true);
  const password = text(raw, 'netapp_password', true);
  const controllerText = text(raw, 'netapp_controller_ips', true);
  const controllerIps = controllerText
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  if (controllerIps.length === 0) throw new InvalidConfigError('invalid netapp_controller_ips: no controller given', { field: 'netapp_controller_ips' });
  const patternPick = pick(raw, ['netapp_pool_name_search_pattern', 'netapp_storage_pools', 'netapp_volume_list']);
  const poolPatternText = patternPick ? String(patternPick.value) : '(.+)';
  const poolPattern = compilePoolPattern(poolPatternText, patternPick?.key ?? 'netapp_pool_name_search_pattern');
  const chapPassword = text(raw, 'chap_password', false);
  if (chapPassword !== undefined && (chapPassword.length < 12 || chapPassword.length > 57)) {
    throw new InvalidConfigError('invalid chap_password: E-Series CHAP secrets are 12 to 57 characters', { field: 'chap_password' });
  }
  return {
    serverHostname,
    serverPort,
    transportType,
    webservicePath,
    login,
    password,
    controllerIps,
    saPassword: text(raw, 'netapp_sa_password', false),
    poolPattern,
    poolPatternText,
    hostType: text(raw, 'netapp_host_type', false) ?? 'linux_dm_mp',
    enableMultiattach: bool(raw, 'netapp_enable_multiattach', false),
    useMultipath: bool(raw, 'use_multipath_for_image_xfer', false),
    useChapAuth: bool(raw, 'use_chap_auth', false),
    chapUsername: text(raw, 'chap_username', false) ?? 'eserieschapuser',
    chapPassword,
    reservedPercentage: num(raw, 'reserved_percentage', 0, 0, 100),
    maxOverSubscriptionRatio: num(raw, 'max_over_subscription_ratio', 20, 1),
    backendName: text(raw, 'volume_backend_name', false) ?? backendName ?? 'NetApp_ESeries',
    verifyCertificate: bool(raw, 'netapp_verify_certificate', true, ['driver_ssl_cert_verify']),
    caCertificatePath: text(raw, 'netapp_ca_certificate_path', false, ['driver_ssl_cert_path']),
    apiTimeoutMs: num(raw, 'netapp_api_timeout', 60, 0.01, 3600) * 1000,
    apiRetries: num(raw, 'netapp_api_retries', 3, 0, 10, true),
    pollIntervalMs: num(raw, 'netapp_poll_interval', 5, 0.001, 600) * 1000,
    copyTimeoutMs: num(raw, 'netapp_copy_timeout', 3600, 0.01, 7 * 86400) * 1000,
    saCommTimeoutMs: num(raw, 'netapp_sa_comm_timeout', 30, 0.01, 3600) * 1000,
    extendTimeoutMs: num(raw, 'netapp_extend_timeout', 3600, 0.01, 7 * 86400) * 1000,
    thinProvisionedDefault: bool(raw, 'netapp_thin_provisioned', false),
  };
}
