/**
 * os-brick's `encryptors` package: {@link encryptorFor} gives the {@link Encryptor} for an
 * encryption document validated by {@link parseEncryption}.
 *
 * @module
 */
export * from './spec.js';
export * from './encryptor.js';
