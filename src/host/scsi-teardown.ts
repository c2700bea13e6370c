/**
 * The one teardown of a SCSI volume's host side, shared by the iSCSI and Fibre Channel
 * connectors: flush the multipath map (or, without one, each path device), delete every path at
 * its SCSI address, wait for the devices to leave sysfs, drop stale by-id links, and remove the
 * map if it is still there.
 *
 * Follows os-brick's `linuxscsi.remove_connection` (with `_remove_scsi_symlinks`) and the
 * connectors' use of it, including its flush semantics (`flush_multipath_device` in an
 * `ExceptionChainer` context): a failed flush raises at once, before anything is removed, unless
 * `force`; with `force` the failure is recorded in the {@link ErrorChain}, the teardown goes on
 * (data still queued in the map is lost) and the map is removed without flushing at the end.
 * Every later step records its failure and goes on, so a forced teardown leaves as clean a host
 * as it can; {@link finishDisconnect} then raises everything recorded, unless `ignoreErrors`.
 *
 * @module
 */
import type { HostContext } from './context.js';
import type { ErrorChain } from './error-chain.js';
import { flushMap, mapForPath, removeMap, type MultipathMap } from './multipath.js';
import { waitFor } from './retry.js';
import { deletePinnedDevice, deleteScsiAddress, flushDevice, formatHctl, removableName, removeStaleByIdLinks, waitForRemoval, type Hctl, type RemovableDevice } from './scsi.js';
import { pathExists } from './sysfs.js';

/** What a volume has on this host: its multipath maps and its path devices. */
export interface ScsiVolumeDevices {
  /** Multipath maps over the paths (usually one; none for a single-path attach). */
  maps: readonly MultipathMap[];
  /** Path block devices, pinned to their SCSI address wherever it is known (see {@link RemovableDevice}). */
  devices: readonly RemovableDevice[];
  /** SCSI addresses of the volume's LUN that have no block device (probed, never given a disk). */
  blockless?: readonly Hctl[];
}

/** Options for {@link removeConnection}. */
export interface RemoveConnectionOptions {
  /** Accept data loss: go on past a failed flush (os-brick `force`). */
  force: boolean;
  /** Prefix of the log lines (`iscsi`, `fc`). */
  label: string;
  /** Bound on the wait for the deleted devices to leave sysfs, ms. Default 30 000 (os-brick). */
  removalWaitMs?: number;
  /**
   * Work that may run side by side with the removal of the maps at the end (the iSCSI logouts).
   * It must record its own failures in the chain rather than throw.
   */
  alongside?: () => Promise<void>;
}

/**
 * Tear down the host side of a SCSI volume (os-brick `remove_connection`): flush the maps (or,
 * without a map, every path device), delete every path device and blockless address, wait for
 * the devices to go (`removalWaitMs`), unlink stale `/dev/disk/by-id` links, then remove any map
 * still present (one whose flush failed under `force`, or one multipathd made again from a late
 * path event) while `alongside` runs. Failures after the flush are recorded in `chain`.
 * @throws the flush's own error (ProcessExecutionError / ProcessTimeoutError) when a flush fails
 * without `force`; nothing has been removed then
 */
export async function removeConnection(ctx: HostContext, volume: ScsiVolumeDevices, options: RemoveConnectionOptions, chain: ErrorChain): Promise<void> {
  const flushFailed = await flushVolume(ctx, volume, options, chain);
  for (const d of volume.devices) await chain.run(true, `delete ${removableName(d)}`, () => deletePinnedDevice(ctx, d, { force: options.force }));
  for (const h of volume.blockless ?? []) {
    await chain.run(true, `delete ${formatHctl(h)}`, async () => {
      await deleteScsiAddress(ctx, h);
      await waitFor(async () => !(await pathExists(ctx, `/sys/bus/scsi/devices/${formatHctl(h)}`)), { timeoutMs: 10_000, description: `removal of SCSI device ${formatHctl(h)}` });
    });
  }
  await chain.run(true, 'wait for removal', () => waitForRemoval(ctx, volume.devices, options.removalWaitMs));
  await removeStaleByIdLinks(ctx, volume.devices);
  // A map still there now has no paths (multipathd may have made it again from a late path
  // event): removing it and the caller's other work are independent, so they run side by side.
  const left: MultipathMap[] = [];
  for (const m of volume.maps) if (flushFailed.has(m.name) || (await mapForPath(ctx, m.name))) left.push(m);
  await Promise.all([...left.map((m) => chain.run(true, `remove map ${m.name}`, () => removeMap(ctx, m.name))), options.alongside?.()]);
}

/** The flush step: every map, or without a map every path device. Returns the names of maps whose flush failed under `force`. */
async function flushVolume(ctx: HostContext, volume: ScsiVolumeDevices, options: RemoveConnectionOptions, chain: ErrorChain): Promise<Set<string>> {
  const failed = new Set<string>();
  if (volume.maps.length === 0) {
    for (const d of volume.devices) await chain.run(options.force, `flush /dev/${removableName(d)}`, () => flushDevice(ctx, `/dev/${removableName(d)}`));
    return failed;
  }
  for (const m of volume.maps) {
    try {
      await flushMap(ctx, m.name);
    } catch (err) {
      if (!options.force) throw err;
      failed.add(m.name);
      chain.add(`flush map ${m.name}`, err);
      ctx.logger.warn({ map: m.name, err: (err as Error).message }, `${options.label}: map flush failed; forcing removal (data loss accepted)`);
    }
  }
  return failed;
}

/** Options for {@link finishDisconnect}. */
export interface FinishDisconnectOptions {
  /** Prefix of the log line (`iscsi`, `fc`). */
  label: string;
  /** What was being done, for the error message (`iSCSI disconnect`). */
  what: string;
  /** Log the failures but do not raise (os-brick `ignore_errors`). */
  ignoreErrors?: boolean;
}

/**
 * End of a disconnect: when `chain` holds failures, log them (one warning, field `err`) and,
 * unless `ignoreErrors`, raise them as one error (os-brick: `if exc: ... if not ignore_errors:
 * raise exc`).
 * @throws {@link VolumePathNotRemovedError} carrying every recorded failure (`details.errors`)
 */
export function finishDisconnect(ctx: HostContext, chain: ErrorChain, options: FinishDisconnectOptions): void {
  if (!chain.failed) return;
  ctx.logger.warn({ err: chain.messages }, `${options.label}: disconnect finished with errors; leftovers may remain`);
  if (!options.ignoreErrors) chain.throwIfFailed(options.what);
}
