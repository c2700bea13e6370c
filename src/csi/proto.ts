/**
 * The CSI wire definition: `proto/csi.proto` (CSI v1.10.0, package `csi.v1`, vendored unmodified
 * from container-storage-interface/spec with its licence beside it), loaded at run time with
 * `@grpc/proto-loader`.
 *
 * Loader options, fixed for the whole plugin: `keepCase` (fields keep the spec's snake_case
 * names, `volume_id`, `staging_target_path`), `longs: Number` (every int64 — capacities, byte and
 * inode counts — is a JavaScript number; exact up to 2^53 bytes, 8 PiB), `enums: String`
 * (`'SINGLE_NODE_WRITER'`), `defaults` (absent scalars read as `''`, `0`, `false`; absent
 * messages as null), `oneofs` (a oneof's set member is named by a virtual field, e.g.
 * `access_type: 'mount'`).
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The proto-loader options every CSI message is (de)serialized with. */
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

/**
 * The vendored `csi.proto`: `proto/csi.proto` at the package root (this file is
 * `dist/src/csi/proto.js` in the build and in the npm package, three levels below it).
 */
export function csiProtoPath(): string {
  return fileURLToPath(new URL('../../../proto/csi.proto', import.meta.url));
}

/** The three services of `csi.v1` the plugin serves, as grpc-js service definitions. */
export interface CsiServices {
  Identity: grpc.ServiceDefinition;
  Controller: grpc.ServiceDefinition;
  Node: grpc.ServiceDefinition;
}

let cached: CsiServices | undefined;

/**
 * Load `csi.proto` once and return its Identity, Controller and Node services.
 * @throws Error when the vendored proto file is missing (a broken installation)
 */
export function loadCsiServices(): CsiServices {
  if (cached) return cached;
  const file = csiProtoPath();
  if (!existsSync(file)) throw new Error(`the CSI definition ${file} is missing: the package is incomplete`);
  const definition = protoLoader.loadSync(file, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { csi: { v1: Record<string, { service: grpc.ServiceDefinition }> } };
  const v1 = pkg.csi.v1;
  cached = { Identity: v1.Identity!.service, Controller: v1.Controller!.service, Node: v1.Node!.service };
  return cached;
}

/**
 * A client constructor for one CSI service, for tests and tools that talk to a running plugin.
 */
export function csiClientConstructor(service: keyof CsiServices): grpc.ServiceClientConstructor {
  loadCsiServices();
  const definition = protoLoader.loadSync(csiProtoPath(), LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { csi: { v1: Record<string, grpc.ServiceClientConstructor> } };
  return pkg.csi.v1[service]!;
}
