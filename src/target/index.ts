/**
 * Target helpers: the factory keyed by Cinder's `target_helper` (`lioadm`, `tgtadm`, `nvmet`)
 * and `target_protocol` (`iscsi`, `nvmet_tcp`), plus the helper classes.
 *
 * @module
 */
import type { DriverContext } from '../drivers/driver.js';
import { parseTargetConfig, type TargetConfig } from './config.js';
import type { TargetHelper } from './helper.js';
import { LioTarget } from './lio.js';
import { NvmetTarget } from './nvmet.js';
import { TgtTarget } from './tgt.js';
import type { Configfs } from './configfs.js';

export type { TargetHelper } from './helper.js';
export { parseTargetConfig, TARGET_OPTIONS, type TargetConfig, TARGET_HELPERS, TARGET_PROTOCOLS, DEFAULT_ISCSI_PREFIX, DEFAULT_NVME_PREFIX } from './config.js';
export { LioTarget } from './lio.js';
export { NvmetTarget, formatNvmetLocation, parseNvmetLocation } from './nvmet.js';
export { TgtTarget, parseTgtShow, parseTgtPortals } from './tgt.js';
export { Configfs } from './configfs.js';
export { formatIscsiLocation, parseIscsiLocation, parseProviderAuth, formatProviderAuth, generateChap } from './common.js';

/** Options for {@link createTargetHelper}. */
export interface TargetHelperOptions {
  /** configfs access for `lioadm`/`nvmet` (tests inject a kernel emulation). */
  configfs?: Configfs;
}

/**
 * The target helper a backend configuration asks for.
 * @param config the backend's options (`target_helper`, `target_protocol`, `target_prefix`, `target_ip_address`, ...), or an already parsed {@link TargetConfig}
 * @throws {@link InvalidInputError} naming the offending key
 */
export function createTargetHelper(config: Record<string, unknown> | TargetConfig, ctx: DriverContext, options: TargetHelperOptions = {}): TargetHelper {
  const cfg = isParsed(config) ? config : parseTargetConfig(config);
  switch (cfg.helper) {
    case 'lioadm':
      return new LioTarget(cfg, ctx, { configfs: options.configfs });
    case 'tgtadm':
      return new TgtTarget(cfg, ctx);
    case 'nvmet':
      return new NvmetTarget(cfg, ctx, { configfs: options.configfs });
  }
}

function isParsed(c: Record<string, unknown> | TargetConfig): c is TargetConfig {
  return typeof (c as TargetConfig).helper === 'string' && typeof (c as TargetConfig).port === 'number' && Array.isArray((c as TargetConfig).secondaryIpAddresses);
}
