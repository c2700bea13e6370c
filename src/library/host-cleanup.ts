/**
 * {@link hostCleanup}: `brick host cleanup` as a library call. It gathers what the store says is
 * attached on this host and what the file backends export, then hands both to the host layer's
 * `cleanupHost` (`host/cleanup.ts`), which compares them with the attach journal and sysfs.
 *
 * What counts as a claim (issue #16): every connection record with a device whose attached host
 * is this host (`attached_host`, or the connector's `host` when none was recorded): its device
 * path, `scsi_wwn` and `multipath_id`, and the targets of its connection properties, named as the
 * journal names them (`<iqn>,<portal>` for iSCSI and iSER, `<nqn>,<transport>,<traddr>,<trsvcid>`
 * for NVMe-oF, the export for NFS). The file backends given (default: every backend of the
 * context) add their pool directories and, for every volume with a connection record of any
 * status, the volume's pool file: a loop device over a pool file no record exports is a leftover.
 *
 * @module
 */
import { join } from 'node:path';
import { cleanupHost, type CleanupClaims, type HostCleanupResult } from '../host/cleanup.js';
import { AttachJournal } from '../host/journal.js';
import { validateIscsiProperties } from '../initiator/connectors/iscsi/properties.js';
import { parseNvmeofProperties } from '../initiator/connectors/nvmeof.js';
import type { ConnectionRecord } from '../persistence/store.js';
import type { FileDriver } from '../drivers/file/driver.js';
import type { Backend } from './backend.js';
import type { BrickContext } from './context.js';

/** Options for {@link hostCleanup}. */
export interface HostCleanupRequest {
  /** List only: change nothing on the host or in the journal. Default false. */
  dryRun?: boolean;
  /** Remove unowned leftovers too (iSCSI sessions, multipath maps, NVMe-oF controllers nothing accounts for). Default false. */
  includeUnowned?: boolean;
  /** The backends whose exports count (default: every backend created in this context). */
  backends?: readonly Backend[];
  /** The journal to judge (default: the context's, else `<stateDir>/journal`, where the connectors write it). */
  journal?: AttachJournal;
  /**
   * Other names this host's connection records carry in `attached_host` besides the context's
   * `hostName` (the CSI node plugin records its node id there).
   */
  attachedHosts?: readonly string[];
}

/** The targets of a connection's properties as the journal names them; none when the properties do not parse. */
export function connectionTargets(protocol: string, data: Record<string, unknown>): string[] {
  const p = protocol.toUpperCase();
  try {
    if (p === 'ISCSI' || p === 'ISER') return validateIscsiProperties(data).targets.map((t) => `${t.iqn},${t.portal.text}`);
    if (p === 'NVMEOF' || p === 'NVME') {
      const t = parseNvmeofProperties(data);
      return t.portals.map((x) => `${t.nqn},${x.transport},${x.address},${x.port}`);
    }
    if (p === 'NFS' && typeof data.export === 'string') return [data.export];
  } catch {
    /* properties that do not parse claim no target */
  }
  return [];
}

/** Whether connection record `c` is attached on this host, known by the names `hostNames`. */
function attachedHere(c: ConnectionRecord, hostNames: ReadonlySet<string>): boolean {
  if (c.device === null || c.status === 'detached') return false;
  const host = c.attached_host ?? c.connector_info.host;
  return typeof host === 'string' && hostNames.has(host);
}

/** The claims of the store's connection records and of the file backends (see the module notes). */
export async function gatherClaims(context: BrickContext, backends: readonly Backend[], attachedHosts: readonly string[] = []): Promise<CleanupClaims> {
  const names = new Set([context.hostName, ...attachedHosts]);
  const connections = await context.store.getConnections();
  const devicePaths: string[] = [];
  const wwids: string[] = [];
  const targets: string[] = [];
  for (const c of connections) {
    if (!attachedHere(c, names)) continue;
    const d = c.device as Record<string, unknown>;
    for (const k of ['path', 'scsi_wwn', 'multipath_id'] as const) {
      const v = d[k];
      if (typeof v === 'string' && v !== '') (k === 'path' ? devicePaths : wwids).push(v);
    }
    const data = (c.conn_info as { data?: unknown }).data;
    if (data && typeof data === 'object') targets.push(...connectionTargets(c.protocol, data as Record<string, unknown>));
  }
  const poolPaths: string[] = [];
  const exportedFiles: string[] = [];
  for (const b of backends) {
    if (b.driver.driverName !== 'file') continue;
    const driver = b.driver as FileDriver;
    poolPaths.push(driver.config.pool_path);
    for (const c of connections) {
      if (c.backend !== b.id) continue;
      try {
        exportedFiles.push(driver.pathFor(`volume-${c.volume_id}`));
      } catch {
        /* an id that names no pool file */
      }
    }
  }
  return { devicePaths, wwids, targets, poolPaths, exportedFiles };
}

/**
 * List what attaches and detaches left on this host and, unless `dryRun`, remove Brick's part of
 * it in the safe order (see `host/cleanup.ts`): the library side of `brick host cleanup`. Needs
 * root (or the context's root helper) for anything but a dry run.
 * @returns the leftovers (kind, name, owned, action, reason), how many were removed and pruned,
 *   and how many owned leftovers remain
 * @throws PersistenceError (the store's) while reading the connection records; the journal
 *   directory's file system errors; a removal that fails is reported in the result, not thrown
 */
export async function hostCleanup(context: BrickContext, request: HostCleanupRequest = {}): Promise<HostCleanupResult> {
  const backends = request.backends ?? ([...context.backends.values()] as Backend[]);
  await Promise.all(backends.map((b) => b.ready));
  const claims = await gatherClaims(context, backends, request.attachedHosts ?? []);
  const journal = request.journal ?? context.journal ?? new AttachJournal(join(context.stateDir, 'journal'));
  return cleanupHost(context, journal, { dryRun: request.dryRun, includeUnowned: request.includeUnowned, claims });
}
