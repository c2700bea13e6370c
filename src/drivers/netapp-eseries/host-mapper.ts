/**
 * Mapping volumes to hosts on an E-Series array, Cinder's `netapp/eseries/host_mapper.py`
 * (`map_volume_to_single_host`, `map_volume_to_multiple_hosts`, `unmap_volume_from_host`) with
 * the host look-up of its library (`_get_or_create_host`): find the host by initiator IQN or
 * create it with the configured host type, choose a free LUN, and for multi-attach move the
 * mapping to the `cinder-multi-attach` host group.
 *
 * Fixes over upstream: `moveLUNMapping` gets the mapping reference; a mapping to the
 * multi-attach group is kept until the last attached host detaches, tracked in the array's
 * persistent record {@link ATTACHMENTS_KEY_PREFIX}`<volumeRef>` (upstream read Cinder's volume
 * status); a LUN taken by a concurrent attach is chosen again a bounded number of times.
 *
 * @module
 */
import { BackendError, BrickError, InsufficientCapacityError, InvalidStateError } from '../../errors.js';
import type { EseriesArray } from './array.js';
import { isNotFound, type EsHost, type EsHostGroup, type EsHostType, type EsMapping, type EsVolume } from './types.js';
import { MAX_LUNS_PER_HOST, MULTI_ATTACH_HOST_GROUP_NAME, NULL_REF, normaliseIqn, randomLabel } from './utils.js';

/** Persistent-record key prefix of the multi-attach attachment lists (per volume ref). */
export const ATTACHMENTS_KEY_PREFIX = 'brick-attach-';

/** Maps and unmaps volumes for host initiators. One per driver. */
export class HostMapper {
  /** The array's host type for new hosts; learnt by the driver's `checkForSetupError`. */
  hostType: EsHostType | undefined;
  private multiattachGroupRef: string | undefined;

  /**
   * @param random random source in [0, 1) for the LUN choice
   */
  constructor(
    private readonly array: EseriesArray,
    private readonly random: () => number,
  ) {}

  /** The ref of the `cinder-multi-attach` host group, created on first use and remembered. */
  async ensureMultiattachGroup(): Promise<string> {
    if (this.multiattachGroupRef) return this.multiattachGroupRef;
    const { client } = this.array;
    const groups = await client.get<EsHostGroup[]>('/host-groups');
    const found = groups.find((g) => g.label === MULTI_ATTACH_HOST_GROUP_NAME);
    if (found) return (this.multiattachGroupRef = found.clusterRef);
    const created = await client.post<EsHostGroup>('/host-groups', { name: MULTI_ATTACH_HOST_GROUP_NAME });
    return (this.multiattachGroupRef = created.clusterRef);
  }

  /**
   * Map `vol` for initiator `iqn` (creating its host) under the array-wide mapping lock, and
   * with multi-attach record the host as attached.
   * @returns the LUN id the host sees the volume at
   * @throws {@link InvalidStateError} when the driver is not set up, or the volume is attached elsewhere without multi-attach
   * @throws {@link InsufficientCapacityError} when the host has no free LUN id
   */
  async mapToInitiator(vol: EsVolume, iqn: string): Promise<number> {
    return this.array.ctx.locks.withLock(`eseries-map-${this.array.client.systemId}`, async () => {
      const host = await this.findOrCreateHost(iqn);
      const lun = await this.mapVolume(vol, host);
      if (this.array.config.enableMultiattach) {
        const list = await this.attachments(vol.volumeRef);
        if (!list.includes(host.hostRef)) await this.saveAttachments(vol.volumeRef, [...list, host.hostRef]);
      }
      return lun;
    });
  }

  /**
   * Remove the mapping of `vol` for `initiator` under the array-wide mapping lock: the host's
   * own mapping goes; a mapping to the multi-attach group goes with the last attached host;
   * `initiator` null removes the volume's mapping whatever its target. A volume that is not
   * mapped, or not to this host, is left as it is.
   * @param volumeId the Cinder volume id (for logs)
   * @throws {@link InvalidStateError} when the volume is mapped to a foreign host group of this host
   */
  async unmapFromInitiator(vol: EsVolume, volumeId: string, initiator: string | null): Promise<void> {
    const { client, log } = this.array;
    await this.array.ctx.locks.withLock(`eseries-map-${client.systemId}`, async () => {
      const mapping = (await client.get<EsMapping[]>('/volume-mappings')).find((m) => m.volumeRef === vol.volumeRef);
      if (!mapping) {
        log.info({ volume_id: volumeId }, 'terminate connection: volume not mapped');
        await this.saveAttachments(vol.volumeRef, []);
        return;
      }
      if (initiator === null) return this.unmap(vol, mapping);
      const host = await this.findHost(initiator);
      if (!host) {
        log.info({ volume_id: volumeId, initiator }, 'terminate connection: no host with this initiator');
        return;
      }
      if (mapping.mapRef === host.hostRef) return this.unmap(vol, mapping);
      if (host.clusterRef !== NULL_REF && mapping.mapRef === host.clusterRef) return this.leaveGroupMapping(vol, volumeId, mapping, host);
      log.info({ volume_id: volumeId, initiator }, 'terminate connection: volume is not mapped to this host');
    });
  }

  /** Delete `mapping` (gone already is fine) and, with multi-attach, the volume's attachment list. */
  private async unmap(vol: EsVolume, mapping: EsMapping): Promise<void> {
    await this.array.client.delete(`/volume-mappings/${mapping.lunMappingRef}`).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    if (this.array.config.enableMultiattach) await this.saveAttachments(vol.volumeRef, []);
  }

  /** `host` detaches from a volume mapped to its host group: unmap only when it was the last attached host. */
  private async leaveGroupMapping(vol: EsVolume, volumeId: string, mapping: EsMapping, host: EsHost): Promise<void> {
    const group = await this.array.client.get<EsHostGroup>(`/host-groups/${mapping.mapRef}`);
    if (group.label !== MULTI_ATTACH_HOST_GROUP_NAME) {
      throw new InvalidStateError(`volume ${vol.label} is mapped to host group ${group.label}, which this driver does not manage`, {
        details: { host_group: group.label },
      });
    }
    const left = (await this.attachments(vol.volumeRef)).filter((h) => h !== host.hostRef);
    if (left.length === 0) return this.unmap(vol, mapping);
    await this.saveAttachments(vol.volumeRef, left);
    this.array.log.info({ volume_id: volumeId, still_attached: left.length }, 'volume stays mapped to the multi-attach group');
  }

  /** The host with an initiator port `iqn` (IQNs compare case-insensitively). */
  async findHost(iqn: string): Promise<EsHost | undefined> {
    const hosts = await this.array.client.get<EsHost[]>('/hosts');
    const want = normaliseIqn(iqn);
    return hosts.find((h) => (h.hostSidePorts ?? []).some((p) => normaliseIqn(p.address) === want));
  }

  private requireHostType(): EsHostType {
    if (!this.hostType) throw new InvalidStateError('the E-Series driver is not set up: call checkForSetupError() after doSetup()');
    return this.hostType;
  }

  /** The host of `iqn`, its host type corrected (best effort), or a new host with a random label. */
  private async findOrCreateHost(iqn: string): Promise<EsHost> {
    const { client, log } = this.array;
    const type = this.requireHostType();
    const host = await this.findHost(iqn);
    if (host) {
      if (host.hostTypeIndex !== type.index) {
        try {
          await client.post(`/hosts/${host.hostRef}`, { hostType: type });
          host.hostTypeIndex = type.index;
        } catch (err) {
          log.warn({ host: host.label, err: (err as Error).message }, 'could not change the host type of an existing host');
        }
      }
      return host;
    }
    const created = await client.post<EsHost>('/hosts', {
      name: randomLabel(),
      hostType: type,
      groupId: null,
      ports: [{ type: 'iscsi', port: iqn, label: randomLabel() }],
    });
    log.info({ host: created.label, initiator: iqn }, 'created E-Series host');
    return created;
  }

  /** LUNs in use for a host (its and its group's mappings) or a host group (its and its members'). */
  private lunsInUse(targetRef: string, mappings: EsMapping[], hosts: EsHost[], exclude?: string): Set<number> {
    const refs = new Set([targetRef]);
    const host = hosts.find((h) => h.hostRef === targetRef);
    if (host && host.clusterRef !== NULL_REF) refs.add(host.clusterRef);
    for (const h of hosts) if (h.clusterRef === targetRef) refs.add(h.hostRef);
    return new Set(mappings.filter((m) => refs.has(m.mapRef) && m.lunMappingRef !== exclude).map((m) => m.lun));
  }

  /** A random free LUN in 1..255 for `targetRef` (LUN 0 stays free, as upstream). */
  private freeLun(targetRef: string, mappings: EsMapping[], hosts: EsHost[], exclude?: string): number {
    const used = this.lunsInUse(targetRef, mappings, hosts, exclude);
    const free: number[] = [];
    for (let l = 1; l < MAX_LUNS_PER_HOST; l++) if (!used.has(l)) free.push(l);
    if (free.length === 0) {
      throw new InsufficientCapacityError(`no free LUN ids left: at most ${MAX_LUNS_PER_HOST} volumes can be attached to one host`, { details: { target: targetRef } });
    }
    const r = this.random();
    return free[Math.min(free.length - 1, Math.max(0, Math.floor(r * free.length)))]!;
  }

  /** Map `vol` to `host` with a free LUN, or reuse the mapping it has, or share it through the multi-attach group. */
  private async mapVolume(vol: EsVolume, host: EsHost): Promise<number> {
    const { client, config } = this.array;
    for (let attempt = 1; ; attempt++) {
      const [mappings, hosts] = await Promise.all([client.get<EsMapping[]>('/volume-mappings'), client.get<EsHost[]>('/hosts')]);
      const me = hosts.find((h) => h.hostRef === host.hostRef) ?? host;
      const current = mappings.find((m) => m.volumeRef === vol.volumeRef);
      try {
        if (!current) {
          const lun = this.freeLun(me.hostRef, mappings, hosts);
          const m = await client.post<EsMapping>('/volume-mappings', { mappableObjectId: vol.volumeRef, targetId: me.hostRef, lun });
          return m.lun;
        }
        if (current.mapRef === me.hostRef || (me.clusterRef !== NULL_REF && current.mapRef === me.clusterRef)) return current.lun;
        if (!config.enableMultiattach) {
          throw new InvalidStateError(`volume ${vol.label} is already attached to another host; multi-attach is disabled by the netapp_enable_multiattach option`, {
            details: { volume: vol.label },
          });
        }
        return await this.mapThroughGroup(vol, me, current, hosts);
      } catch (err) {
        // Another attach took the LUN in between: choose again, a bounded number of times.
        if (!current && err instanceof BrickError && err.details?.retcode === 'lunCollision' && attempt < 3) continue;
        throw err;
      }
    }
  }

  /**
   * Share `vol`, mapped now by `current`, with `host` through the multi-attach group: both
   * hosts join the group, then the mapping moves to the group with its LUN kept.
   */
  private async mapThroughGroup(vol: EsVolume, host: EsHost, current: EsMapping, hosts: EsHost[]): Promise<number> {
    const group = await this.ensureMultiattachGroup();
    const currentHost = hosts.find((h) => h.hostRef === current.mapRef);
    this.checkGroupable(vol, host, current, currentHost, group);
    if (currentHost) await this.joinGroup(currentHost, group);
    await this.joinGroup(host, group);
    if (!currentHost) return current.lun;
    // Both hosts are in the group now, so the array has checked that the mapping's LUN is free
    // for every member: keep it, so the host already attached sees no change.
    const lun = current.lun;
    const answer = await this.array.client.post<unknown>('/symbol/moveLUNMapping', { lunMappingRef: current.lunMappingRef, lun, mapRef: group });
    if (answer !== 'ok') {
      throw new BackendError(`moving the mapping of volume ${vol.label} to host group ${MULTI_ATTACH_HOST_GROUP_NAME} failed: ${String(answer)}`, {
        details: { retcode: String(answer) },
      });
    }
    return lun;
  }

  /** Refuse to share through the multi-attach group when a host or the mapping belongs to another host group. */
  private checkGroupable(vol: EsVolume, host: EsHost, current: EsMapping, currentHost: EsHost | undefined, group: string): void {
    const foreign = (ref: string): boolean => ref !== NULL_REF && ref !== group;
    if (foreign(host.clusterRef)) {
      throw new InvalidStateError(`host ${host.label} is in a host group other than ${MULTI_ATTACH_HOST_GROUP_NAME}; multi-attach needs that group`, {
        details: { host: host.label },
      });
    }
    if (!currentHost && current.mapRef !== group) {
      throw new InvalidStateError(`volume ${vol.label} is mapped to a host group other than ${MULTI_ATTACH_HOST_GROUP_NAME}`, { details: { volume: vol.label } });
    }
    if (currentHost && foreign(currentHost.clusterRef)) {
      throw new InvalidStateError(`host ${currentHost.label} holding volume ${vol.label} is in a foreign host group`, { details: { host: currentHost.label } });
    }
  }

  /** Put a host that is in no group into the multi-attach group. */
  private async joinGroup(host: EsHost, group: string): Promise<void> {
    if (host.clusterRef !== NULL_REF) return;
    await this.array.client.post(`/hosts/${host.hostRef}`, { groupId: group });
    host.clusterRef = group;
  }

  /** The host refs attached to a multi-attach volume (empty when none are recorded). */
  private async attachments(volumeRef: string): Promise<string[]> {
    const v = await this.array.readRecord(`${ATTACHMENTS_KEY_PREFIX}${volumeRef}`);
    return Array.isArray(v) ? v.map(String) : [];
  }

  private async saveAttachments(volumeRef: string, list: string[]): Promise<void> {
    const key = `${ATTACHMENTS_KEY_PREFIX}${volumeRef}`;
    if (list.length === 0) await this.array.deleteRecord(key);
    else await this.array.writeRecord(key, list);
  }
}
