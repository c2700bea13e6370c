/**
 * The cinderlib-shaped object API: `setup()`, {@link Backend}, {@link Volume}, {@link Snapshot},
 * {@link Connection} (one file each, over the shared record base in `record.ts`), serialization,
 * and {@link hostCleanup} (`brick host cleanup`).
 *
 * @module
 */
export * from './context.js';
export * from './backend.js';
export * from './volume.js';
export * from './snapshot.js';
export * from './connection.js';
export * from './serialization.js';
export * from './host-cleanup.js';
