/**
 * The shapes of the CSI messages the plugin reads and writes, as `@grpc/proto-loader` gives them
 * with the plugin's options (see `proto.ts`): snake_case field names as in `csi.proto`, int64 as
 * numbers, enums as their names, absent messages as null, and a oneof's set member named by a
 * virtual field (`access_type: 'mount' | 'block'`). Only the fields the plugin uses are declared.
 *
 * @module
 */

/** `VolumeCapability.AccessMode.Mode` values. */
export type AccessModeName =
  | 'UNKNOWN'
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

/** `VolumeCapability`. */
export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type: string; mount_flags: string[]; volume_mount_group?: string } | null;
  access_type?: 'block' | 'mount';
  access_mode?: { mode: AccessModeName } | null;
}

/** `CapacityRange` (bytes; 0 means unset). */
export interface CapacityRange {
  required_bytes: number;
  limit_bytes: number;
}

/** `VolumeContentSource`. */
export interface VolumeContentSource {
  snapshot?: { snapshot_id: string } | null;
  volume?: { volume_id: string } | null;
  type?: 'snapshot' | 'volume';
}

/** `Volume`. */
export interface CsiVolume {
  volume_id: string;
  capacity_bytes: number;
  volume_context: Record<string, string>;
  content_source: VolumeContentSource | null;
}

/** `Snapshot`. */
export interface CsiSnapshot {
  snapshot_id: string;
  source_volume_id: string;
  size_bytes: number;
  creation_time: { seconds: number; nanos: number };
  ready_to_use: boolean;
}

/** `VolumeCondition`. */
export interface VolumeCondition {
  abnormal: boolean;
  message: string;
}

/** A request as received: any message, with the fields the handler reads. */
export type CsiRequest = Record<string, unknown>;
