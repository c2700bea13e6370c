/**
 * `brick host ...`: commands about this host itself rather than volumes.
 *
 * ```
 * brick host doctor [--protocol ISCSI,NVMEOF,FIBRE_CHANNEL] [--no-multipath] [--json]
 * ```
 *
 * `doctor` runs `runHostDoctor` (`host/doctor.ts`) with the configuration's `lock_path` and
 * `data_dir` (the configuration is loaded, nothing is created and no store is opened) and prints
 * one row per check, or `{ "ok": bool, "checks": [{ name, ok, severity, message, fix }] }` with
 * `--json`. Exit status 1 when a check failed with severity `error` (an attach would fail),
 * 0 otherwise; the usual error statuses for bad input or configuration.
 *
 * @module
 */
import type { Command } from 'commander';
import { exitCodeFor } from '../errors.js';
import { ProcessExecutor } from '../exec/executor.js';
import { createHostContext, type HostContext } from '../host/context.js';
import { runHostDoctor, type DoctorReport } from '../host/doctor.js';
import { loadConfig } from './config.js';
import { printError, printRows } from './output.js';
import { resolveRootHelper, type GlobalFlags } from './runtime.js';

/** Options of `brick host doctor`. */
interface DoctorCliOptions {
  protocol?: string;
  multipath: boolean;
}

/** The exit status for a doctor report: 1 when an attach would fail, else 0. */
export function doctorExitCode(report: DoctorReport): number {
  return report.ok ? 0 : 1;
}

/**
 * Print `report`: `{ ok, checks }` as JSON, or a table (check, ok, severity, message, fix) and a
 * last line saying whether attaches would work.
 */
export function printDoctorReport(json: boolean, report: DoctorReport): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ ok: report.ok, checks: report.checks }, null, 2)}\n`);
    return;
  }
  const rows = report.checks.map((c) => ({ check: c.name, ok: c.ok ? 'ok' : 'FAILED', severity: c.ok ? '' : c.severity, message: c.message, fix: c.fix ?? '' }));
  printRows(false, ['check', 'ok', 'severity', 'message', 'fix'], rows);
  const errors = report.checks.filter((c) => !c.ok && c.severity === 'error').length;
  const warnings = report.checks.filter((c) => !c.ok && c.severity === 'warning').length;
  process.stdout.write(report.ok ? `host ready: ${warnings} warning(s)\n` : `host NOT ready: ${errors} error(s), ${warnings} warning(s); an attach would fail\n`);
}

/**
 * Run the doctor as the CLI does: the configuration (from `--config` or `BRICK_CONFIG`) gives
 * `lock_path`, `data_dir`, the root helper and whether a file backend (loop devices) is used.
 * @param ctx the host seams; default the real host with the configured root helper
 * @throws {@link InvalidConfigError} for a configuration that cannot be read
 * @throws {@link InvalidInputError} (field `protocols`) for an unknown `--protocol`
 */
export async function doctorFromConfig(flags: GlobalFlags, env: NodeJS.ProcessEnv, o: DoctorCliOptions, ctx?: HostContext): Promise<DoctorReport> {
  const uid = process.geteuid?.() ?? 0;
  const config = await loadConfig(flags.config ?? env.BRICK_CONFIG, env, uid);
  const rootHelper = resolveRootHelper(flags.rootHelper, config, process.getuid?.() ?? 0);
  const host = ctx ?? createHostContext({ executor: new ProcessExecutor({ rootHelper }), lockPath: config.lockPath });
  return runHostDoctor(host, {
    protocols: o.protocol?.split(',').map((p) => p.trim()).filter(Boolean),
    multipath: o.multipath,
    loopDevices: config.backends.some((b) => b.volume_driver === 'file'),
    directories: { lock_path: config.lockPath, data_dir: config.dataDir },
    uid,
  });
}

/**
 * Add the `host` command group with `doctor` to `program`.
 * @param flags the global flags, read when a command runs
 * @param setExitCode records the process exit status
 */
export function registerHostCommand(program: Command, flags: () => GlobalFlags, setExitCode: (code: number) => void): Command {
  const host = program.command('host').description('this host: check it is ready to attach volumes');
  host
    .command('doctor')
    .description('check this host before the first attach (iscsid, initiator name, multipathd and its settings, udev, NVMe host NQN/id, kernel modules, lock and data directories) and say how to fix each problem; exit 1 when an attach would fail')
    .option('--protocol <list>', 'the protocols this host attaches with, comma-separated: ISCSI, NVMEOF, FIBRE_CHANNEL (default ISCSI,NVMEOF); problems of the others are warnings')
    .option('--no-multipath', 'this host does not attach with multipath (multipathd problems are warnings)')
    .action(async (o: DoctorCliOptions) => {
      const json = Boolean(flags().json);
      try {
        const report = await doctorFromConfig(flags(), process.env, o);
        printDoctorReport(json, report);
        setExitCode(doctorExitCode(report));
      } catch (err) {
        printError(json, err);
        setExitCode(exitCodeFor(err));
      }
    });
  return host;
}
