/**
 * `brick/connectors`: the connector classes and their connection-properties validators, for
 * people who compose or extend a protocol rather than go through {@link connectorFor}. Each
 * class takes `(ctx, options)`; each validator turns os-brick's connection properties into a
 * typed object or throws an `InvalidInputError` naming the key. os-brick's encryptors
 * ({@link encryptorFor}, {@link parseEncryption}) are here too: they sit on a connector's device.
 *
 * @module
 */
export { LocalConnector } from './local.js';
export * from './iscsi/index.js';
export * from './fibre_channel.js';
export * from './nvmeof.js';
export * from './aoe.js';
export * from './remotefs.js';
export * from './rbd.js';
export * from './huawei_sdshypervisor.js';
export type { Connector, ConnectorOptions, ConnectionProperties, DeviceInfo, DisconnectOptions } from '../connector.js';
export * from '../encryptors/index.js';
export { registerConnector, connectorFor, type ConnectorConstructor, type ResolvedConnectorOptions } from '../factory.js';
