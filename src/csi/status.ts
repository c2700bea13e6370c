/**
 * gRPC status codes for the CSI plugin: the one table that turns Brick's stable error codes into
 * the codes the CSI spec prescribes, and {@link CsiError} for the spec's own conditions (a missing
 * field, an out-of-range capacity, an operation already pending).
 *
 * @module
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { BrickError, type BrickErrorCode } from '../errors.js';

/** An error that carries its gRPC status code (the spec's condition, not a Brick failure). */
export class CsiError extends Error {
  /** The gRPC status code sent to the caller. */
  readonly grpcCode: GrpcStatus;

  constructor(grpcCode: GrpcStatus, message: string) {
    super(message);
    this.name = 'CsiError';
    this.grpcCode = grpcCode;
  }
}

/** INVALID_ARGUMENT: a required field is missing or a value is malformed (checked before anything runs). */
export function invalidArgument(message: string): CsiError {
  return new CsiError(GrpcStatus.INVALID_ARGUMENT, message);
}

/** NOT_FOUND: the volume, snapshot or node named does not exist. */
export function notFound(message: string): CsiError {
  return new CsiError(GrpcStatus.NOT_FOUND, message);
}

/**
 * Brick error code -> gRPC status code. Codes not listed are INTERNAL. The spec's mapping:
 * bad input INVALID_ARGUMENT; an unknown object NOT_FOUND; a state that forbids the call
 * (snapshots left, attached elsewhere) FAILED_PRECONDITION; a name reused incompatibly
 * ALREADY_EXISTS; no room RESOURCE_EXHAUSTED; a bound that ran out DEADLINE_EXCEEDED.
 */
export const GRPC_CODE_FOR: Readonly<Partial<Record<BrickErrorCode, GrpcStatus>>> = {
  INVALID_INPUT: GrpcStatus.INVALID_ARGUMENT,
  PROTOCOL_NOT_SUPPORTED: GrpcStatus.INVALID_ARGUMENT,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  INVALID_STATE: GrpcStatus.FAILED_PRECONDITION,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  INSUFFICIENT_CAPACITY: GrpcStatus.RESOURCE_EXHAUSTED,
  PROCESS_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  LOCK_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  RETRY_EXHAUSTED: GrpcStatus.DEADLINE_EXCEEDED,
};

/** The gRPC status code for any error: a {@link CsiError}'s own, a Brick error's by the table, else INTERNAL. */
export function grpcCodeFor(err: unknown): GrpcStatus {
  if (err instanceof CsiError) return err.grpcCode;
  if (err instanceof BrickError) return GRPC_CODE_FOR[err.code] ?? GrpcStatus.INTERNAL;
  return GrpcStatus.INTERNAL;
}

/** The name of a gRPC status code (`NOT_FOUND`), for logs and metrics labels. */
export function grpcCodeName(code: GrpcStatus): string {
  return GrpcStatus[code] ?? String(code);
}
