/**
 * `brick volume create`'s encryption options: `--encrypted`, `--encryption-provider`,
 * `--cipher`, `--key-size`, turned into the library's `encryption` option (os-brick's keys).
 *
 * @module
 */
import type { Command } from 'commander';
import type { EncryptionDocument } from '../initiator/encryptors/index.js';

/** The parsed flags. */
export interface EncryptionFlags {
  encrypted?: boolean;
  encryptionProvider?: string;
  cipher?: string;
  keySize?: string;
}

/** Add the encryption options to `command`. */
export function addEncryptionOptions(command: Command): Command {
  return command
    .option('--encrypted', 'encrypt the volume on the host (dm-crypt; the key is kept in the key store under the state directory)')
    .option('--encryption-provider <provider>', 'luks (LUKS1, default), luks2 or plain; implies --encrypted')
    .option('--cipher <spec>', 'cryptsetup cipher, e.g. aes-xts-plain64; implies --encrypted')
    .option('--key-size <bits>', 'key size in bits, e.g. 256 or 512; implies --encrypted');
}

/**
 * The library's `encryption` option from the flags, or undefined when none is given. Values are
 * passed as they are: the library validates them (errors name `encryption.provider`, ...).
 */
export function encryptionOption(flags: EncryptionFlags): EncryptionDocument | undefined {
  if (!flags.encrypted && flags.encryptionProvider === undefined && flags.cipher === undefined && flags.keySize === undefined) return undefined;
  return {
    provider: flags.encryptionProvider ?? 'luks',
    ...(flags.cipher !== undefined ? { cipher: flags.cipher } : {}),
    ...(flags.keySize !== undefined ? { key_size: flags.keySize } : {}),
    control_location: 'front-end',
  };
}
