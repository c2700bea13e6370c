/**
 * What `brick host doctor` runs (loaded by its action in `host.ts`).
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
import { ProcessExecutor } from '../exec/executor.js';
import { createHostContext, type HostContext } from '../host/context.js';
import { runHostDoctor, type DoctorReport } from '../host/doctor.js';
import { loadConfig } from './config.js';
import { printRows } from './output.js';
import { resolveRootHelper, type GlobalFlags } from './runtime.js';

/** Options of `brick host doctor`. */
export interface DoctorCliOptions {
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

