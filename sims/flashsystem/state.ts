/**
 * The FlashSystem simulator's state and CLI: vdisks, hosts with iSCSI ports, vdisk-to-host
 * mappings, nodes, I/O groups, IP ports, the storage pool and FlashCopy mappings, driven by the
 * `svcinfo` / `svctask` commands the Cinder FlashSystem driver (1.0.12) and Brick's
 * `ibm_flashsystem` driver send.
 *
 * It follows Cinder's `FlashSystemManagementSimulator` (test_ibm_flashsystem.py) with the
 * fidelity upgrades the research notes list: real CMMVC codes and a non-zero exit for every
 * error, LUNs unique per host (not per array), the real SCSI id in `lsvdiskhostmap`, `lsvdisk`
 * by name or id, pool free capacity that follows the vdisks, `rmvdisk` refusing a mapped vdisk
 * without `-force`, `rmhost` refusing a host with mappings, an IQN allowed on one host only,
 * and FlashCopy (`mkfcmap`, `prestartfcmap`, `startfcmap`, `lsfcmap`, `stopfcmap`, `rmfcmap`)
 * whose background copy progresses with time.
 *
 * Output follows the CLI's two shapes: the concise view (a header line and rows) and the
 * detailed view (`attribute<delim>value` lines), with `-delim` (default: aligned columns).
 *
 * This module holds the state and runs command lines; the parsing is in `command.ts`, the
 * output shapes in `format.ts`, and the commands in one module per family: `system.ts`,
 * `vdisks.ts`, `hosts.ts` (hosts and mappings), `fcmaps.ts` (FlashCopy).
 *
 * Side effects that a real-storage backing needs (create, delete, resize, copy, map, unmap)
 * are reported to an optional {@link SimulatorBackingStore}, so that in the lab a mapped vdisk
 * is a real iSCSI LUN.
 *
 * @module
 */
import { tokenize, ShellSyntaxError } from './tokenize.js';
import { CliError } from './errors.js';
import { parseCommand, type Output, type ParsedCommand } from './command.js';
import { SYSTEM_COMMANDS } from './system.js';
import { VDISK_COMMANDS } from './vdisks.js';
import { HOST_COMMANDS } from './hosts.js';
import { FCMAP_COMMANDS } from './fcmaps.js';

/** 1 GiB in bytes. */
export const GIB = 1024 ** 3;

/** A virtual disk. */
export interface SimVdisk {
  id: number;
  name: string;
  /** Capacity in bytes. */
  capacity: number;
  ioGroupId: number;
  status: 'online' | 'offline';
  /** SCSI NAA identifier (32 hex digits) as `vdisk_UID` prints it. */
  uid: string;
}

/** A host object with its iSCSI ports (IQNs) and FC ports (WWPNs). */
export interface SimHost {
  id: number;
  name: string;
  iscsiNames: string[];
  wwpns: string[];
}

/** A vdisk-to-host mapping. */
export interface SimMapping {
  id: number;
  hostId: number;
  vdiskId: number;
  /** The LUN the host sees. */
  scsiId: number;
}

/** A node (canister) of the cluster. */
export interface SimNode {
  id: number;
  name: string;
  ioGroupId: number;
  wwnn: string;
  status: 'online' | 'offline';
  iscsiName: string;
  configNode: boolean;
}

/** One row of `lsportip`: an Ethernet port of a node. */
export interface SimPortIp {
  /** Port id (1-based, repeated on every node). */
  id: number;
  nodeId: number;
  ip: string;
  ip6: string;
  state: 'configured' | 'online' | 'offline' | 'unconfigured';
  speed: string;
  failover: boolean;
}

/** A FlashCopy mapping. */
export interface SimFcMap {
  id: number;
  name: string;
  sourceId: number;
  targetId: number;
  status: 'idle_or_copied' | 'preparing' | 'prepared' | 'copying' | 'stopped';
  /** Percent copied. */
  progress: number;
  copyRate: number;
  autodelete: boolean;
  startedAt?: number;
}

/** A fault to inject into the next run(s) of one command. */
export type SimFault =
  /** Fail with this CMMVC code (and optional text). */
  | { kind: 'error'; code: string; text?: string }
  /** Print this on stdout instead of the real output (exit 0). */
  | { kind: 'output'; stdout: string }
  /** Never answer (until the connection is closed): tests command timeouts. */
  | { kind: 'hang' }
  /** `lssystem`: report `open_access_enabled on`. */
  | { kind: 'open_access' }
  /** `lsmdiskgrp`: report the pool `offline`. */
  | { kind: 'pool_offline' }
  /** Concise views: drop the last header column (Cinder's `header_mismatch`). */
  | { kind: 'header_mismatch' };

/** What a command produced. */
export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** Set when the command must not be answered (an injected hang). */
  hang?: boolean;
}

/**
 * Real storage behind the simulator (the lab's LIO backing). Every hook may be async; the
 * command fails with CMMVC5786E if a hook throws, and state is changed only after it succeeds.
 */
export interface SimulatorBackingStore {
  createVdisk?(vdisk: SimVdisk): Promise<void> | void;
  deleteVdisk?(vdisk: SimVdisk): Promise<void> | void;
  resizeVdisk?(vdisk: SimVdisk, newCapacity: number): Promise<void> | void;
  /** Copy all data of `source` onto `target` (FlashCopy start: the point in time). */
  copyVdisk?(source: SimVdisk, target: SimVdisk): Promise<void> | void;
  mapVdisk?(vdisk: SimVdisk, host: SimHost, scsiId: number): Promise<void> | void;
  unmapVdisk?(vdisk: SimVdisk, host: SimHost, scsiId: number): Promise<void> | void;
}

/** Options of {@link FlashSystemState}. */
export interface FlashSystemStateOptions {
  /** Cluster name (`lssystem name`). Default `flashsystem_sim`. */
  systemName?: string;
  /** Cluster id (`lssystem id`, 16 hex digits). Default `0123456789ABCDEF`. */
  systemId?: string;
  /** Pool name. Default `mdiskgrp0`. */
  poolName?: string;
  /** Pool capacity in bytes. Default 1 TiB. */
  poolCapacity?: number;
  /** Nodes; default two online nodes in I/O group 0, node 1 the config node. */
  nodes?: SimNode[];
  /** IP ports; default port 1 of node 1 at 192.168.1.10 and of node 2 at 192.168.1.11, both online. */
  ports?: SimPortIp[];
  /** Whether the FlashCopy commands exist (a FlashSystem 840/900 has none). Default true. */
  flashCopy?: boolean;
  /** How long a FlashCopy background copy at copy rate 50 takes, in ms (rate 100 is 4x faster). Default 200. */
  copyDurationMs?: number;
  /** The CMMVC code `mkvdiskhostmap` returns for a vdisk mapped elsewhere without `-force`: CMMVC6071E (default) or CMMVC6045E. */
  multiHostMapError?: 'CMMVC6071E' | 'CMMVC6045E';
  /** Real storage behind the vdisks. */
  backing?: SimulatorBackingStore;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

/** One command: the state, the parsed line and the output options; returns stdout. @throws {@link CliError} */
type CommandHandler = (s: FlashSystemState, c: ParsedCommand, o: Output) => string | Promise<string>;

const COMMANDS: Record<string, CommandHandler> = { ...SYSTEM_COMMANDS, ...VDISK_COMMANDS, ...HOST_COMMANDS, ...FCMAP_COMMANDS };

const DEFAULT_NODES: SimNode[] = [
  { id: 1, name: 'node1', ioGroupId: 0, wwnn: '5005076802002B6C', status: 'online', iscsiName: 'iqn.1986-03.com.ibm:2145.flashsystemsim.node1', configNode: true },
  { id: 2, name: 'node2', ioGroupId: 0, wwnn: '5005076802002B6D', status: 'online', iscsiName: 'iqn.1986-03.com.ibm:2145.flashsystemsim.node2', configNode: false },
];
const DEFAULT_PORTS: SimPortIp[] = [
  { id: 1, nodeId: 1, ip: '192.168.1.10', ip6: '', state: 'online', speed: '10Gb/s', failover: false },
  { id: 1, nodeId: 2, ip: '192.168.1.11', ip6: '', state: 'online', speed: '10Gb/s', failover: false },
  { id: 2, nodeId: 1, ip: '', ip6: '', state: 'unconfigured', speed: 'NONE', failover: false },
];

/**
 * The simulated cluster. `execute(line)` runs one command line exactly as the SSH server
 * receives it; the public collections may be read (and, by tests, changed) directly.
 */
export class FlashSystemState {
  readonly systemName: string;
  readonly systemId: string;
  readonly poolName: string;
  poolCapacity: number;
  poolStatus: 'online' | 'offline' = 'online';
  openAccessEnabled = false;
  flashCopy: boolean;
  copyDurationMs: number;
  multiHostMapError: 'CMMVC6071E' | 'CMMVC6045E';
  readonly vdisks = new Map<number, SimVdisk>();
  readonly hosts = new Map<number, SimHost>();
  readonly mappings = new Map<number, SimMapping>();
  readonly fcmaps = new Map<number, SimFcMap>();
  readonly nodes: SimNode[];
  readonly ports: SimPortIp[];
  /** Every command line received, in order (tests assert on it). */
  readonly commandLog: string[] = [];
  backing: SimulatorBackingStore | undefined;
  private readonly faults = new Map<string, { fault: SimFault; times: number }[]>();
  /** The clock (ms). */
  readonly now: () => number;
  private serial = Promise.resolve();

  constructor(options: FlashSystemStateOptions = {}) {
    this.systemName = options.systemName ?? 'flashsystem_sim';
    this.systemId = options.systemId ?? '0123456789ABCDEF';
    this.poolName = options.poolName ?? 'mdiskgrp0';
    this.poolCapacity = options.poolCapacity ?? 1024 ** 4;
    this.nodes = (options.nodes ?? DEFAULT_NODES).map((n) => ({ ...n }));
    this.ports = (options.ports ?? DEFAULT_PORTS).map((p) => ({ ...p }));
    this.flashCopy = options.flashCopy ?? true;
    this.copyDurationMs = options.copyDurationMs ?? 200;
    this.multiHostMapError = options.multiHostMapError ?? 'CMMVC6071E';
    this.backing = options.backing;
    this.now = options.now ?? Date.now;
  }

  /**
   * Make the next `times` runs of `command` (e.g. `mkvdiskhostmap`) fail or misbehave as
   * `fault` says. Faults queue up per command and are used first in, first out.
   */
  injectFault(command: string, fault: SimFault, times = 1): void {
    const q = this.faults.get(command) ?? [];
    q.push({ fault, times });
    this.faults.set(command, q);
  }

  /** Drop every pending fault. */
  clearFaults(): void {
    this.faults.clear();
  }

  /** Free pool capacity in bytes (capacity minus the vdisks' capacity). */
  freeCapacity(): number {
    let used = 0;
    for (const v of this.vdisks.values()) used += v.capacity;
    return Math.max(0, this.poolCapacity - used);
  }

  /** The vdisk named or numbered `ref`. */
  findVdisk(ref: string): SimVdisk | undefined {
    if (/^\d+$/.test(ref)) return this.vdisks.get(Number(ref));
    for (const v of this.vdisks.values()) if (v.name === ref) return v;
    return undefined;
  }

  /** The host named or numbered `ref`. */
  findHost(ref: string): SimHost | undefined {
    if (/^\d+$/.test(ref)) return this.hosts.get(Number(ref));
    for (const h of this.hosts.values()) if (h.name === ref) return h;
    return undefined;
  }

  /** The mappings of a host or of a vdisk. */
  mappingsOf(filter: { hostId?: number; vdiskId?: number }): SimMapping[] {
    return [...this.mappings.values()]
      .filter((m) => (filter.hostId === undefined || m.hostId === filter.hostId) && (filter.vdiskId === undefined || m.vdiskId === filter.vdiskId))
      .sort((a, b) => a.scsiId - b.scsiId || a.id - b.id);
  }

  /**
   * Run one command line. Commands run one at a time (the array serialises configuration
   * changes), so concurrent callers see a consistent state.
   */
  execute(line: string): Promise<CommandResult> {
    const run = this.serial.then(() => this.executeNow(line));
    this.serial = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async executeNow(line: string): Promise<CommandResult> {
    this.commandLog.push(line);
    this.tick();
    let words: string[];
    try {
      words = tokenize(line);
    } catch (err) {
      if (err instanceof ShellSyntaxError) return { stdout: '', stderr: `rbash: ${err.message}\n`, exitCode: 2 };
      throw err;
    }
    let parsed: ParsedCommand;
    try {
      parsed = parseCommand(words);
    } catch (err) {
      if (err instanceof CliError) return { stdout: '', stderr: `${err.message}\n`, exitCode: 1 };
      throw err;
    }
    const fault = this.takeFault(parsed.name);
    if (fault?.kind === 'hang') return { stdout: '', stderr: '', exitCode: 0, hang: true };
    if (fault?.kind === 'error') return { stdout: '', stderr: `${new CliError(fault.code, fault.text).message}\n`, exitCode: 1 };
    if (fault?.kind === 'output') return { stdout: fault.stdout, stderr: '', exitCode: 0 };
    try {
      const stdout = await this.dispatch(parsed, fault);
      return { stdout, stderr: '', exitCode: 0 };
    } catch (err) {
      if (err instanceof CliError) return { stdout: '', stderr: `${err.message}\n`, exitCode: 1 };
      return { stdout: '', stderr: `CMMVC5786E ${(err as Error).message}\n`, exitCode: 1 };
    }
  }

  private takeFault(command: string): SimFault | undefined {
    const q = this.faults.get(command);
    if (!q || q.length === 0) return undefined;
    const head = q[0]!;
    head.times -= 1;
    if (head.times <= 0) q.shift();
    return head.fault;
  }

  /** Advance FlashCopy background copies to the current time. */
  tick(): void {
    const t = this.now();
    for (const m of [...this.fcmaps.values()]) {
      if (m.status !== 'copying' || m.startedAt === undefined) continue;
      if (m.copyRate === 0) continue;
      const duration = (this.copyDurationMs * 50) / m.copyRate;
      m.progress = Math.min(100, Math.floor(((t - m.startedAt) / Math.max(1, duration)) * 100));
      if (m.progress >= 100) {
        m.status = 'idle_or_copied';
        m.progress = 100;
        if (m.autodelete) this.fcmaps.delete(m.id);
      }
    }
  }

  private async dispatch(c: ParsedCommand, fault: SimFault | undefined): Promise<string> {
    const delim = typeof c.flags.get('delim') === 'string' ? (c.flags.get('delim') as string) : undefined;
    const handler = Object.hasOwn(COMMANDS, c.name) ? COMMANDS[c.name] : undefined;
    if (!handler) throw new CliError('CMMVC6051E', `An unsupported action was selected: ${c.name}.`);
    return handler(this, c, { delim, headerMismatch: fault?.kind === 'header_mismatch', fault });
  }

}
