/**
 * Input checks of the object API, run before anything is stored or a driver is called (Cinder's
 * API-layer validation of `size`, `name` and `description`).
 *
 * @module
 */
import { InvalidInputError } from '../errors.js';

/**
 * A size in GiB: a finite, whole, positive number.
 * @param field the input's name, reported in the error (`size`, `new_size`)
 * @throws {@link InvalidInputError} naming `field` otherwise
 */
export function validateSize(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new InvalidInputError(field, `must be a number of GiB, got ${JSON.stringify(value)}`);
  if (!Number.isInteger(value)) throw new InvalidInputError(field, `must be a whole number of GiB, got ${value}`);
  if (value <= 0) throw new InvalidInputError(field, `must be at least 1 GiB, got ${value}`);
  return value;
}

/**
 * An optional text field (`name`, `description`): absent or null gives `''`.
 * @param max the longest accepted length in characters (Cinder: 255 for names)
 * @throws {@link InvalidInputError} naming `field` for a non-string or a longer text
 */
export function optionalText(value: unknown, field: string, max = 255): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new InvalidInputError(field, 'must be a string');
  if (value.length > max) throw new InvalidInputError(field, `must be at most ${max} characters`);
  return value;
}

/** The longest accepted description, in characters. */
export const DESCRIPTION_MAX = 4096;

/**
 * The optional `name` (at most 255 characters) and `description` (at most {@link DESCRIPTION_MAX})
 * of a new volume or snapshot, `''` when absent.
 * @throws {@link InvalidInputError} (field `name` or `description`)
 */
export function nameAndDescription(options: { name?: unknown; description?: unknown }): { name: string; description: string } {
  const name = optionalText(options.name, 'name');
  return { name, description: optionalText(options.description, 'description', DESCRIPTION_MAX) };
}
