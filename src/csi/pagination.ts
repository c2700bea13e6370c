/**
 * Pagination of ListVolumes and ListSnapshots (`starting_token`, `max_entries`, `next_token`).
 *
 * Entries are ordered by creation time, then id, and a token names the last entry of the page
 * before it (its creation time and id, base64url-encoded). The next page starts after that key,
 * not at an offset, so deleting an entry of an earlier page neither skips nor repeats entries,
 * and entries created since the first page appear at the end (csi-sanity's "pagination should
 * detect volumes added between pages" case).
 *
 * @module
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { CsiError, invalidArgument } from './status.js';

/** The sort key of a listed entry: ISO-8601 creation time and id. */
export interface PageKey {
  createdAt: string;
  id: string;
}

/** One page: the entries and the token of the next page (empty on the last page). */
export interface Page<T> {
  entries: T[];
  nextToken: string;
}

function compareKeys(a: PageKey, b: PageKey): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The token that starts the page after `key`. */
export function encodeToken(key: PageKey): string {
  return Buffer.from(JSON.stringify([key.createdAt, key.id]), 'utf8').toString('base64url');
}

/**
 * The key a token names.
 * @throws {@link CsiError} ABORTED (the spec's code for an invalid `starting_token`) when it is not one this plugin made
 */
export function decodeToken(token: string): PageKey {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' && !Number.isNaN(Date.parse(v[0]))) {
      return { createdAt: v[0], id: v[1] };
    }
  } catch {
    /* not base64url JSON: refused below */
  }
  throw new CsiError(GrpcStatus.ABORTED, `starting_token ${JSON.stringify(token)} is not a token this plugin returned`);
}

/**
 * The page of `items` after `startingToken` (from the first entry when empty), at most
 * `maxEntries` long (0: all the rest).
 * @throws {@link CsiError} INVALID_ARGUMENT for a negative `max_entries`; ABORTED for a token this plugin did not make
 */
export function paginate<T>(items: readonly T[], keyOf: (item: T) => PageKey, startingToken: string, maxEntries: number): Page<T> {
  if (!Number.isInteger(maxEntries) || maxEntries < 0) throw invalidArgument(`max_entries must not be negative, got ${maxEntries}`);
  const sorted = [...items].sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
  const after = startingToken === '' ? undefined : decodeToken(startingToken);
  const rest = after === undefined ? sorted : sorted.filter((item) => compareKeys(keyOf(item), after) > 0);
  if (maxEntries === 0 || rest.length <= maxEntries) return { entries: rest, nextToken: '' };
  const entries = rest.slice(0, maxEntries);
  return { entries, nextToken: encodeToken(keyOf(entries[entries.length - 1]!)) };
}
