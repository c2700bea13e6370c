/**
 * The FlashSystem as the driver's parts see it: one object that runs `svcinfo` / `svctask`
 * commands over the SSH pool (Cinder's `_ssh` / `_assert_ssh_return`), reads and changes vdisks,
 * holds what set-up learned (nodes, whether FlashCopy exists), and takes the per-vdisk and
 * per-host locks (Cinder 1.0.2's `flashsystem-map` file locks, finer grained). The driver, the
 * host mapper and the copier share it.
 *
 * @module
 */
import { BackendError, NotFoundError } from '../../errors.js';
import type { DriverContext } from '../driver.js';
import { attr, cliError, cmmvcCode, NOT_FOUND_CODES, parseConcise, parseDetailed, renderCommand, v, type CliErrorContext, type CliWord, type DetailedView } from './cli.js';
import type { FlashSystemConfig } from './config.js';
import type { SshConnectionPool, SshResult } from './ssh.js';

/** 1 GiB in bytes. */
export const GIB = 1024 ** 3;

/** An online node with the iSCSI addresses found for it. */
export interface FlashSystemNode {
  id: string;
  name: string;
  ioGroupId: string;
  iscsiName: string;
  configNode: boolean;
  ipv4: string[];
  ipv6: string[];
}

/** A command's result with the rendered command line (for errors). */
export type CliRun = SshResult & { line: string };

/** The array connection and the state set-up found. */
export class FlashSystemArray {
  /** Online nodes and their iSCSI addresses (filled by the driver's set-up). */
  nodes: FlashSystemNode[] = [];
  /** Whether snapshots and clones use FlashCopy (decided by the driver's set-up). */
  flashCopy = false;

  constructor(
    readonly config: FlashSystemConfig,
    readonly ctx: DriverContext,
    private readonly ssh: SshConnectionPool,
  ) {}

  /** Run a command; the caller judges exit status and stderr. */
  async runRaw(words: readonly CliWord[], timeoutMs?: number): Promise<CliRun> {
    const line = renderCommand(words);
    this.ctx.logger.debug({ command: line }, 'FlashSystem CLI');
    const r = await this.ssh.run(line, timeoutMs !== undefined ? { timeoutMs } : {});
    return { ...r, line };
  }

  /** Run a command that must succeed (exit 0, nothing on stderr); returns stdout. @throws the CMMVC error as a {@link BrickError} */
  async cli(words: readonly CliWord[], ctx: CliErrorContext = {}): Promise<string> {
    const r = await this.runRaw(words);
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, ctx);
    return r.stdout;
  }

  /** Run a command that must print nothing (Cinder's `_assert_ssh_return` for silent commands). @throws {@link BackendError} on output */
  async cliSilent(words: readonly CliWord[], ctx: CliErrorContext = {}): Promise<void> {
    const out = await this.cli(words, ctx);
    if (out.trim() !== '') throw new BackendError(`unexpected output of ${renderCommand(words)}: ${out.trim().slice(0, 200)}`, { details: { command: renderCommand(words) } });
  }

  /** Run a create command whose stdout must say `..., id [N], successfully created`; returns N. @throws {@link BackendError} on other output */
  async cliCreate(words: readonly CliWord[], ctx: CliErrorContext = {}): Promise<string> {
    const out = await this.cli(words, ctx);
    const m = /id \[(\d+)\], successfully created/.exec(out);
    if (!m) throw new BackendError(`unexpected output of ${renderCommand(words)}: ${out.trim().slice(0, 200)}`, { details: { command: renderCommand(words) } });
    return m[1]!;
  }

  /**
   * `lsvdisk -bytes` of one vdisk, or undefined when it does not exist (CMMVC5753E/5754E).
   * @throws {@link BackendError} (or the class {@link cliError} gives the CMMVC code) when `lsvdisk` fails for another reason
   * @throws {@link ProcessTimeoutError}, {@link AuthenticationError} or {@link BackendUnreachableError} from the SSH pool
   */
  async lsvdisk(ref: string | number): Promise<DetailedView | undefined> {
    const r = await this.runRaw(['svcinfo', 'lsvdisk', '-bytes', '-delim', '!', typeof ref === 'number' ? ref : v(ref)]);
    if (r.exitCode === 0 && r.stderr.trim() === '') return parseDetailed(r.stdout);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return undefined;
    throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk', id: String(ref) });
  }

  /** `lsvdisk` of a vdisk that must exist. @throws {@link NotFoundError} */
  async requireVdisk(name: string): Promise<DetailedView> {
    const view = await this.lsvdisk(name);
    if (!view) throw new NotFoundError('vdisk', name);
    return view;
  }

  /** The capacity in bytes of an `lsvdisk -bytes` view. @throws {@link BackendError} when absent */
  capacityOf(view: DetailedView, name: string): number {
    const c = attr(view, 'capacity');
    if (c === undefined || !/^\d+$/.test(c)) throw new BackendError(`lsvdisk ${name} printed no capacity in bytes`);
    return Number(c);
  }

  /** `mkvdisk` in the configured pool and I/O group; returns the new id. */
  mkvdisk(name: string, size: number, unit: 'gb' | 'b'): Promise<string> {
    return this.cliCreate(['svctask', 'mkvdisk', '-name', v(name), '-mdiskgrp', v(this.config.pool), '-iogrp', this.config.ioGroup, '-size', size, '-unit', unit], { kind: 'vdisk', id: name });
  }

  /** `expandvdisksize` by `deltaBytes`. */
  expandVdisk(name: string, deltaBytes: number): Promise<void> {
    return this.cliSilent(['svctask', 'expandvdisksize', '-size', deltaBytes, '-unit', 'b', v(name)], { kind: 'vdisk', id: name });
  }

  /**
   * `rmvdisk`; a vdisk that does not exist (or goes meanwhile) counts as deleted. Removes a FlashCopy mapping that targets it first.
   * @throws {@link BackendError} when `rmvdisk` prints anything, or fails other than with a not-found code; the class
   *   {@link cliError} gives the CMMVC code otherwise (e.g. {@link InvalidStateError} for a vdisk still mapped or in a FlashCopy)
   * @throws {@link ProcessTimeoutError}, {@link AuthenticationError} or {@link BackendUnreachableError} from the SSH pool
   */
  async rmvdisk(name: string): Promise<void> {
    const view = await this.lsvdisk(name);
    if (!view) {
      this.ctx.logger.warn({ vdisk: name }, 'vdisk to delete does not exist; treating it as deleted');
      return;
    }
    if (Number(attr(view, 'fc_map_count') ?? '0') > 0 && this.flashCopy) await this.removeTargetFcMaps(name);
    const r = await this.runRaw(['svctask', 'rmvdisk', v(name)]);
    if (r.exitCode === 0 && r.stderr.trim() === '') {
      if (r.stdout.trim() !== '') throw new BackendError(`unexpected output of rmvdisk ${name}: ${r.stdout.trim().slice(0, 200)}`);
      return;
    }
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return; // deleted meanwhile
    throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk', id: name });
  }

  private async removeTargetFcMaps(name: string): Promise<void> {
    const rows = parseConcise(await this.cli(['svcinfo', 'lsfcmap', '-delim', '!']), 'lsfcmap', ['id', 'target_vdisk_name']);
    for (const row of rows.filter((r) => r.target_vdisk_name === name)) {
      await this.runRaw(['svctask', 'stopfcmap', '-force', Number(row.id)]);
      await this.runRaw(['svctask', 'rmfcmap', '-force', Number(row.id)]);
    }
  }

  private lockName(kind: string, name: string): string {
    return `flashsystem-${this.config.sanIp}-${kind}-${name}`;
  }

  /** Run `fn` under the lock of vdisk `name`. */
  withVdiskLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.ctx.locks.withLock(this.lockName('vdisk', name), fn, { timeoutMs: this.config.lockTimeoutMs ?? this.config.copyTimeoutMs + 60_000 });
  }

  /** Run `fn` under the locks of every vdisk of `names`, taken in sorted order (no deadlock). */
  withVdiskLocks<T>(names: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(names)].sort();
    const step = (i: number): Promise<T> => (i >= sorted.length ? fn() : this.withVdiskLock(sorted[i]!, () => step(i + 1)));
    return step(0);
  }

  /** Run `fn` under the lock of the host objects named with `prefix`. */
  withHostLock<T>(prefix: string, fn: () => Promise<T>): Promise<T> {
    return this.ctx.locks.withLock(this.lockName('host', prefix), fn, { timeoutMs: this.config.lockTimeoutMs ?? this.config.commandTimeoutMs * 10 });
  }
}
