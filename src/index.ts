/**
 * Brick's public API.
 *
 * @module
 */
export * from './errors.js';
export * from './log.js';
export * from './exec/executor.js';
export * from './exec/recording.js';
export * from './exec/mask.js';
export * from './host/context.js';
export * from './host/lock.js';
export * from './host/retry.js';
export * from './host/loop.js';
export * from './host/blockdev.js';
export * from './initiator/connector.js';
export * from './initiator/factory.js';
export * from './initiator/properties.js';
export * from './initiator/connectors/index.js';
export * from './drivers/driver.js';
export * from './drivers/registry.js';
export * from './persistence/store.js';
export * from './persistence/memory.js';
export * from './drivers/index.js';
export * from './drivers/file/driver.js';
export * from './host/copy.js';
export * from './library/index.js';
export * from './persistence/sqlite.js';
export * from './persistence/postgresql.js';
export * from './persistence/factory.js';
export * from './host/nvme.js';
export * from './host/fc.js';
export * from './host/mount.js';
export * from './initiator/connectors/nvmeof.js';
export * from './initiator/connectors/fibre_channel.js';
export * from './initiator/connectors/aoe.js';
export * from './initiator/connectors/remotefs.js';
export * from './initiator/connectors/rbd.js';
export * from './initiator/connectors/huawei_sdshypervisor.js';
export * from './drivers/ibm-flashsystem/index.js';
export { NetAppEseriesIscsiDriver, parseEseriesConfig, EseriesRestClient, uuidToLabel, labelToUuid, type EseriesVolume, type DriverGroup, type DriverGroupSnapshot, type EseriesConfig } from './drivers/netapp-eseries/index.js';
export { LvmDriver, parseLvmConfig, VolumeGroup, parseLvs, parseVgs } from './drivers/lvm/index.js';
export { createTargetHelper, parseTargetConfig, LioTarget, TgtTarget, NvmetTarget, Configfs, type TargetHelper, type TargetConfig, formatIscsiLocation, parseIscsiLocation, formatNvmetLocation, parseNvmetLocation, parseProviderAuth } from './target/index.js';
export { IscsiConnector, validateIscsiProperties, type IscsiProperties, type IscsiTarget, type IscsiConnectorTunables } from './initiator/connectors/iscsi/index.js';
export * as scsi from './host/scsi.js';
export * as multipath from './host/multipath.js';
export * as iscsiadm from './host/iscsiadm.js';
