/**
 * The cinderlib-shaped object API.
 *
 * @module
 */
export * from './context.js';
export * from './objects.js';
export * from './serialization.js';
