/**
 * Configuration of the E-Series driver: Cinder's option names (`cinder/volume/drivers/netapp/options.py`),
 * validated up front with errors that name the key, plus a few Brick options for TLS and bounds.
 *
 * @module
 */
import { configError, defineOption, pickOption, readOption, requireConfigObject, type DriverOption } from '../../options.js';
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

const str = <const E extends Partial<DriverOption>>(name: string, help: string, extra: E = {} as E) => defineOption({ name, type: 'string' as const, help, ...extra });
const secs = (name: string, dflt: number, max: number, help: string) => defineOption({ name, type: 'float', min: 0.01, max, default: dflt, help: `${help} (seconds).` });

/** The E-Series driver's options (Cinder's `netapp_*` names, plus Brick's TLS and bounds options). */
export const ESERIES_OPT = {
  storageFamily: defineOption({ name: 'netapp_storage_family', type: 'string', help: 'Must be `eseries` when given.' }),
  storageProtocol: defineOption({ name: 'netapp_storage_protocol', type: 'string', help: 'Must be `iscsi` when given.' }),
  transportType: defineOption({ name: 'netapp_transport_type', type: 'enum', choices: ['http', 'https'], ignoreCase: true, default: 'http', help: 'Protocol of the Web Services Proxy.' }),
  serverHostname: str('netapp_server_hostname', 'Host name or address of the Web Services Proxy.', { required: true }),
  serverPort: defineOption({ name: 'netapp_server_port', type: 'int', min: 1, max: 65535, defaultText: '`8080` (http), `8443` (https)', help: 'Port of the Web Services Proxy.' }),
  webservicePath: str('netapp_webservice_path', 'Base path of the REST API.', { default: '/devmgr/v2' }),
  login: str('netapp_login', 'Web Services Proxy user.', { required: true }),
  password: str('netapp_password', 'Web Services Proxy password.', { required: true, secret: true, trim: true }),
  controllerIps: str('netapp_controller_ips', 'Comma-separated management addresses of the controllers.', { required: true }),
  saPassword: str('netapp_sa_password', 'Storage array password.', { secret: true, trim: true }),
  poolPattern: str('netapp_pool_name_search_pattern', 'Regular expression of the pools to use.', { default: '(.+)', aliases: ['netapp_storage_pools', 'netapp_volume_list'], trim: false }),
  hostType: str('netapp_host_type', 'Host type of the host objects (alias, code or name).', { default: 'linux_dm_mp' }),
  enableMultiattach: defineOption({ name: 'netapp_enable_multiattach', type: 'bool', default: false, help: 'Report `multiattach` and allow a volume on several hosts.' }),
  useMultipath: defineOption({ name: 'use_multipath_for_image_xfer', type: 'bool', default: false, help: 'Attaches through the library use multipath.' }),
  useChapAuth: defineOption({ name: 'use_chap_auth', type: 'bool', default: false, help: 'Protect the iSCSI target with CHAP.' }),
  chapUsername: str('chap_username', 'CHAP user name.', { default: 'eserieschapuser' }),
  chapPassword: str('chap_password', 'CHAP secret (12 to 57 characters; generated and kept in the state directory when absent).', { secret: true, trim: true }),
  reservedPercentage: defineOption({ name: 'reserved_percentage', type: 'float', min: 0, max: 100, default: 0, help: 'Reported in the stats.' }),
  maxOverSubscriptionRatio: defineOption({ name: 'max_over_subscription_ratio', type: 'float', min: 1, default: 20, help: 'Reported in the stats.' }),
  backendName: str('volume_backend_name', 'Backend name reported in the stats.', { defaultText: 'the backend\'s name' }),
  verifyCertificate: defineOption({ name: 'netapp_verify_certificate', aliases: ['driver_ssl_cert_verify'], type: 'bool', default: true, help: 'Brick: verify the Web Services TLS certificate.' }),
  caCertificatePath: str('netapp_ca_certificate_path', 'Brick: CA bundle for the Web Services certificate.', { aliases: ['driver_ssl_cert_path'] }),
  apiTimeout: secs('netapp_api_timeout', 60, 3600, 'Brick: bound on one HTTP request'),
  apiRetries: defineOption({ name: 'netapp_api_retries', type: 'int', min: 0, max: 10, default: 3, help: 'Brick: extra attempts after a 5xx answer or a connection error.' }),
  pollInterval: defineOption({ name: 'netapp_poll_interval', type: 'float', min: 0.001, max: 600, default: 5, help: 'Brick: poll interval for copy jobs, expansion and the array status (seconds).' }),
  copyTimeout: secs('netapp_copy_timeout', 3600, 7 * 86400, 'Brick: bound on one volume copy'),
  saCommTimeout: secs('netapp_sa_comm_timeout', 30, 3600, 'Bound on the array status poll at set-up'),
  extendTimeout: secs('netapp_extend_timeout', 3600, 7 * 86400, 'Brick: bound on a thick expansion'),
  thinProvisioned: defineOption({ name: 'netapp_thin_provisioned', type: 'bool', default: false, help: 'Default of the `netapp_thin_provisioned` extra spec.' }),
} as const;

/** Every option of the `netapp_eseries` driver. */
export const ESERIES_OPTIONS: readonly DriverOption[] = Object.values(ESERIES_OPT);

function checkFamilyAndProtocol(raw: Raw): void {
  const family = readOption(raw, ESERIES_OPT.storageFamily);
  if (family !== undefined && family !== 'eseries') throw configError('netapp_storage_family', `${JSON.stringify(family)}; this driver serves "eseries"`);
  const protocol = readOption(raw, ESERIES_OPT.storageProtocol);
  if (protocol !== undefined && protocol.toLowerCase() !== 'iscsi') throw configError('netapp_storage_protocol', `${JSON.stringify(protocol)}; only iscsi is supported`);
}

function webservicePathOf(raw: Raw): string {
  let path = readOption(raw, ESERIES_OPT.webservicePath);
  if (!path.startsWith('/')) path = `/${path}`;
  path = path.replace(/\/+$/, '');
  if (path === '' || /[\s?#]/.test(path)) throw configError('netapp_webservice_path', 'must be a URL path such as /devmgr/v2');
  return path;
}

function controllerIpsOf(raw: Raw): string[] {
  const ips = readOption(raw, ESERIES_OPT.controllerIps)
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  if (ips.length === 0) throw configError('netapp_controller_ips', 'no controller given');
  return ips;
}

/**
 * Validate and parse the backend options of an E-Series backend ({@link ESERIES_OPTIONS}).
 *
 * Required: `netapp_server_hostname`, `netapp_login`, `netapp_password`, `netapp_controller_ips`.
 * Defaults as in the option list: `netapp_server_port` is 8080 for http and 8443 for https; an
 * absent `chap_password` is generated and kept in the driver's state directory.
 *
 * @throws {@link InvalidConfigError} whose `field` names the offending key (secrets never appear in the message)
 */
export function parseEseriesConfig(raw: Raw, backendName: string): EseriesConfig {
  const o = ESERIES_OPT;
  requireConfigObject(raw);
  checkFamilyAndProtocol(raw);
  const transportType = readOption(raw, o.transportType);
  const serverHostname = readOption(raw, o.serverHostname);
  if (/[\s/]/.test(serverHostname)) throw configError('netapp_server_hostname', 'must be a host name or address, not a URL');
  const patternPick = pickOption(raw, o.poolPattern);
  const poolPatternText = patternPick ? String(patternPick.value) : '(.+)';
  const chapPassword = readOption(raw, o.chapPassword);
  if (chapPassword !== undefined && (chapPassword.length < 12 || chapPassword.length > 57)) throw configError('chap_password', 'E-Series CHAP secrets are 12 to 57 characters');
  return {
    serverHostname,
    serverPort: readOption(raw, o.serverPort) ?? (transportType === 'https' ? 8443 : 8080),
    transportType,
    webservicePath: webservicePathOf(raw),
    login: readOption(raw, o.login),
    password: readOption(raw, o.password),
    controllerIps: controllerIpsOf(raw),
    saPassword: readOption(raw, o.saPassword),
    poolPattern: compilePoolPattern(poolPatternText, patternPick?.key ?? 'netapp_pool_name_search_pattern'),
    poolPatternText,
    hostType: readOption(raw, o.hostType),
    enableMultiattach: readOption(raw, o.enableMultiattach),
    useMultipath: readOption(raw, o.useMultipath),
    useChapAuth: readOption(raw, o.useChapAuth),
    chapUsername: readOption(raw, o.chapUsername),
    chapPassword,
    reservedPercentage: readOption(raw, o.reservedPercentage),
    maxOverSubscriptionRatio: readOption(raw, o.maxOverSubscriptionRatio),
    backendName: readOption(raw, o.backendName) ?? backendName ?? 'NetApp_ESeries',
    verifyCertificate: readOption(raw, o.verifyCertificate),
    caCertificatePath: readOption(raw, o.caCertificatePath),
    apiTimeoutMs: readOption(raw, o.apiTimeout) * 1000,
    apiRetries: readOption(raw, o.apiRetries),
    pollIntervalMs: readOption(raw, o.pollInterval) * 1000,
    copyTimeoutMs: readOption(raw, o.copyTimeout) * 1000,
    saCommTimeoutMs: readOption(raw, o.saCommTimeout) * 1000,
    extendTimeoutMs: readOption(raw, o.extendTimeout) * 1000,
    thinProvisionedDefault: readOption(raw, o.thinProvisioned),
  };
}
