/**
 * Request checks of the CSI plugin, run before anything is stored or executed: required fields,
 * volume capabilities, capacity ranges and StorageClass parameters. Every failure is
 * INVALID_ARGUMENT naming the field, except a capacity the backend's granularity cannot fit,
 * which the spec makes OUT_OF_RANGE.
 *
 * @module
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { CsiError, invalidArgument } from './status.js';
import type { AccessModeName, CapacityRange, CsiRequest, VolumeCapability } from './types.js';

/** One GiB in bytes: Brick sizes volumes in whole GiB. */
export const GiB = 1024 ** 3;

/** File systems NodeStageVolume makes and mounts (`fs_type`; empty means the default, ext4). */
export const FS_TYPES: readonly string[] = ['ext4', 'ext3', 'ext2', 'xfs'];

/** The file system made when a mount capability names none. */
export const DEFAULT_FS_TYPE = 'ext4';

/** Access modes a volume on one node at a time supports. */
const SINGLE_NODE: ReadonlySet<AccessModeName> = new Set(['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER']);

/** Access modes that put one volume on several nodes (they need a multiattach volume). */
const MULTI_NODE: ReadonlySet<AccessModeName> = new Set(['MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER']);

/** Parameter key prefix the Kubernetes sidecars add (PVC name, namespace...): accepted and ignored. */
export const SIDECAR_PREFIX = 'csi.storage.k8s.io/';

/**
 * A non-empty string field of `req`.
 * @throws {@link CsiError} INVALID_ARGUMENT naming `field` when absent or empty
 */
export function requireString(req: CsiRequest, field: string): string {
  const v = req[field];
  if (typeof v !== 'string' || v === '') throw invalidArgument(`${field} is required`);
  return v;
}

/** True for an access mode that puts the volume on several nodes. */
export function isMultiNode(mode: AccessModeName | undefined): boolean {
  return mode !== undefined && MULTI_NODE.has(mode);
}

/** True for an access mode that never writes. */
export function isReadOnlyMode(mode: AccessModeName | undefined): boolean {
  return mode === 'SINGLE_NODE_READER_ONLY' || mode === 'MULTI_NODE_READER_ONLY';
}

/**
 * One volume capability: an access type (`mount` with a known or empty `fs_type`, or `block`)
 * and a known access mode.
 * @throws {@link CsiError} INVALID_ARGUMENT naming `field`
 */
export function checkCapability(cap: VolumeCapability | null | undefined, field: string): VolumeCapability {
  if (!cap) throw invalidArgument(`${field} is required`);
  if (cap.access_type !== 'mount' && cap.access_type !== 'block') throw invalidArgument(`${field}.access_type is required (mount or block)`);
  const mode = cap.access_mode?.mode;
  if (!mode || mode === 'UNKNOWN' || !(SINGLE_NODE.has(mode) || MULTI_NODE.has(mode))) throw invalidArgument(`${field}.access_mode is required`);
  const fs = cap.mount?.fs_type ?? '';
  if (cap.access_type === 'mount' && fs !== '' && !FS_TYPES.includes(fs)) throw invalidArgument(`${field}.mount.fs_type ${JSON.stringify(fs)} is not supported (${FS_TYPES.join(', ')})`);
  return cap;
}

/**
 * A non-empty list of volume capabilities, each checked by {@link checkCapability}.
 * @throws {@link CsiError} INVALID_ARGUMENT naming `field`
 */
export function checkCapabilities(caps: unknown, field = 'volume_capabilities'): VolumeCapability[] {
  if (!Array.isArray(caps) || caps.length === 0) throw invalidArgument(`${field} is required`);
  return caps.map((c, i) => checkCapability(c as VolumeCapability, `${field}[${i}]`));
}

/**
 * The size in whole GiB for a capacity range: `required_bytes` rounded up to GiB (at least 1 GiB;
 * 1 GiB when neither bound is set), at least `minimumGiB` (a content source's size) when the
 * limit allows it.
 * @throws {@link CsiError} INVALID_ARGUMENT for negative bounds or a limit below the requirement;
 *   OUT_OF_RANGE when the smallest whole-GiB size exceeds `limit_bytes`
 */
export function sizeGiBFor(range: CapacityRange | null | undefined, minimumGiB = 1): number {
  const required = range?.required_bytes ?? 0;
  const limit = range?.limit_bytes ?? 0;
  if (required < 0 || limit < 0) throw invalidArgument('capacity_range bounds must not be negative');
  if (limit > 0 && required > limit) throw invalidArgument(`capacity_range.required_bytes ${required} exceeds limit_bytes ${limit}`);
  const gib = Math.max(1, minimumGiB, Math.ceil(required / GiB));
  if (limit > 0 && gib * GiB > limit) {
    throw new CsiError(GrpcStatus.OUT_OF_RANGE, `the smallest size that fits the request is ${gib} GiB (${gib * GiB} bytes), above limit_bytes ${limit}: Brick sizes volumes in whole GiB`);
  }
  return gib;
}

/** True when a volume of `sizeGiB` satisfies `range`. */
export function sizeFits(sizeGiB: number, range: CapacityRange | null | undefined): boolean {
  const bytes = sizeGiB * GiB;
  const required = range?.required_bytes ?? 0;
  const limit = range?.limit_bytes ?? 0;
  return bytes >= required && (limit === 0 || bytes <= limit);
}

/** StorageClass parameters the plugin understands. */
export interface VolumeParameters {
  /** The Brick backend (`volume_backend_name`); default: the configured default backend. */
  backend?: string;
  /** Create a multiattach volume (`"true"` / `"false"`); default: true when a MULTI_NODE mode is asked for. */
  multiattach?: boolean;
}

/**
 * Parse CreateVolume's `parameters`: `backend` and `multiattach`; keys under
 * `csi.storage.k8s.io/` (added by the Kubernetes sidecars) are ignored.
 * @throws {@link CsiError} INVALID_ARGUMENT for an unknown key or a malformed value
 */
export function parseParameters(params: Record<string, string> | null | undefined): VolumeParameters {
  const out: VolumeParameters = {};
  for (const [key, value] of Object.entries(params ?? {})) {
    if (key.startsWith(SIDECAR_PREFIX)) continue;
    if (key === 'backend') {
      if (value === '') throw invalidArgument('parameters.backend must not be empty');
      out.backend = value;
    } else if (key === 'multiattach') {
      if (!/^(true|false)$/i.test(value)) throw invalidArgument(`parameters.multiattach must be "true" or "false", got ${JSON.stringify(value)}`);
      out.multiattach = value.toLowerCase() === 'true';
    } else {
      throw invalidArgument(`parameters.${key} is not a parameter of this plugin (known: backend, multiattach)`);
    }
  }
  return out;
}
