/**
 * The E-Series backend's capability report: one Cinder pool-stats entry per storage pool,
 * with capacities in GiB and the storage-service-catalog keys Cinder's scheduler filters on
 * (`netapp_raid_type`, `netapp_disk_type`, `netapp_thin_provisioned`, ...). Cinder's
 * `NetAppESeriesLibrary._update_volume_stats` and `_update_ssc_info`.
 *
 * @module
 */
import type { PoolStats, VolumeStats } from '../driver.js';
import type { EseriesConfig } from './config.js';
import { gib, type EsPool, type EsSscPool, type EsVolume } from './types.js';

/** Cinder's `netapp_raid_type` for an array RAID level (`raidDiskPool` is `DDP`). */
function raidType(raid: string): string {
  return raid === 'raidDiskPool' ? 'DDP' : raid === 'raid3' ? 'raid5' : /^raid[0156]$/.test(raid) ? raid : 'unknown';
}

/** Cinder's `netapp_disk_type` from a pool's drive media and physical type. */
function diskType(ssc: EsSscPool | undefined): string {
  const media = ssc?.pool?.driveMediaType;
  const phys = (ssc?.pool?.drivePhysicalType ?? '').toLowerCase();
  return media === 'ssd' ? 'SSD' : ({ scsi: 'SCSI', fibre: 'FCAL', sas: 'SAS', sata: 'SATA' } as Record<string, string>)[phys] ?? 'unknown';
}

/**
 * The stats of pool `p`: `ssc` is its storage-service entry (if any), `volumes` all volumes
 * of the array (repositories, labelled `repos_…`, are not counted as provisioned).
 */
export function poolStats(p: EsPool, ssc: EsSscPool | undefined, volumes: EsVolume[], config: EseriesConfig): PoolStats {
  const own = volumes.filter((v) => v.volumeGroupRef === p.volumeGroupRef && !v.label.startsWith('repos_'));
  const provisioned = own.reduce((sum, v) => sum + Number(v.capacity), 0);
  const thin = ssc?.thinProvisioningCapable ?? p.diskPool;
  return {
    pool_name: p.label,
    QoS_support: false,
    reserved_percentage: config.reservedPercentage,
    max_over_subscription_ratio: config.maxOverSubscriptionRatio,
    total_capacity_gb: gib(p.totalRaidedSpace),
    free_capacity_gb: gib(Number(p.totalRaidedSpace) - Number(p.usedSpace)),
    provisioned_capacity_gb: gib(provisioned),
    total_volumes: own.length,
    thin_provisioning_support: thin,
    thick_provisioning_support: true,
    multiattach: config.enableMultiattach,
    consistencygroup_support: true,
    consistent_group_snapshot_enabled: true,
    netapp_disk_encryption: String(ssc?.encrypted ?? p.securityType === 'enabled'),
    netapp_eseries_disk_spindle_speed: ssc?.spindleSpeed ?? 'unknown',
    netapp_eseries_flash_read_cache: String(ssc?.flashCacheCapable ?? false),
    netapp_eseries_data_assurance: 'false',
    netapp_raid_type: raidType((ssc?.raidLevel ?? p.raidLevel) as string),
    netapp_thin_provisioned: String(thin),
    netapp_disk_type: diskType(ssc),
  };
}

/**
 * The backend's stats over the matching `pools`: totals are the pools' sums, in GiB with two decimals.
 * @param driverVersion reported as `driver_version`
 */
export function backendStats(pools: EsPool[], sscPools: EsSscPool[], volumes: EsVolume[], config: EseriesConfig, driverVersion: string): VolumeStats {
  const out = pools.map((p) => poolStats(p, sscPools.find((s) => s.poolId === p.volumeGroupRef || s.name === p.label), volumes, config));
  const sum = (key: 'total_capacity_gb' | 'free_capacity_gb'): number => Math.round(out.reduce((s, p) => s + (p[key] as number), 0) * 100) / 100;
  return {
    volume_backend_name: config.backendName,
    vendor_name: 'NetApp',
    driver_version: driverVersion,
    storage_protocol: 'iSCSI',
    total_capacity_gb: sum('total_capacity_gb'),
    free_capacity_gb: sum('free_capacity_gb'),
    pools: out,
  };
}
