/**
 * `brick host ...`: commands about this host itself rather than volumes.
 *
 * ```
 * brick host doctor [--protocol ISCSI,NVMEOF,FIBRE_CHANNEL] [--no-multipath] [--json]
 * ```
 *
 * The command is registered without loading what it runs (start-up stays small); its action
 * imports `host-doctor.ts`. `doctor` runs `runHostDoctor` (`host/doctor.ts`) with the configuration's `lock_path` and
 * `data_dir` (the configuration is loaded, nothing is created and no store is opened) and prints
 * one row per check, or `{ "ok": bool, "checks": [{ name, ok, severity, message, fix }] }` with
 * `--json`. Exit status 1 when a check failed with severity `error` (an attach would fail),
 * 0 otherwise; the usual error statuses for bad input or configuration.
 *
 * @module
 */
import type { Command } from 'commander';
import { exitCodeFor } from '../errors.js';
import { printError } from './output.js';
import type { GlobalFlags } from './runtime.js';
import type { DoctorCliOptions } from './host-doctor.js';

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
        const { doctorExitCode, doctorFromConfig, printDoctorReport } = await import('./host-doctor.js');
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
