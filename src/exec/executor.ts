/**
 * The Executor: the one way Brick runs a program.
 *
 * Programs run as argv arrays (never through a shell), each with a timeout, optionally behind a
 * root helper prefix (`['sudo']`, `['sudo', '-n']`), with secrets passed on stdin where the
 * program allows it and masked wherever a command is logged or carried by an error. This is the
 * role of os-brick's `root_helper` + `processutils.execute` (oslo.concurrency), with the
 * differences that the timeout is mandatory and the argv is never joined into a string.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { InvalidInputError, ProcessExecutionError, ProcessTimeoutError } from '../errors.js';
import { maskArgv, maskText } from './mask.js';
import { silentLogger, type Logger } from '../log.js';

/** Options for one program run. */
export interface ExecOptions {
  /** Kill the program (SIGKILL to its process group) after this many milliseconds. Default: the executor's `defaultTimeoutMs`. */
  timeoutMs?: number;
  /** Bytes or text written to the program's stdin, then stdin is closed. Use it for secrets the program reads from stdin. */
  input?: string | Buffer;
  /** Values masked in logs, errors and the recorded command (CHAP passwords, array passwords). */
  secrets?: readonly string[];
  /**
   * Exit statuses that count as success. `true` (default) means only 0; `false` accepts any
   * status (the caller inspects `exitCode`); an array lists the accepted statuses.
   */
  checkExitCode?: boolean | readonly number[];
  /** Run through the root helper (default true). Set false for programs that need no privilege. */
  root?: boolean;
  /** Extra environment variables for the program (merged over the executor's environment). */
  env?: Readonly<Record<string, string>>;
  /** Working directory. */
  cwd?: string;
}

/** What a finished program gave back. `stdout`/`stderr` are UTF-8 text, unmasked (the caller's own data). */
export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when killed by a signal. */
  exitCode: number | null;
}

/** Runs programs. Every OS command Brick issues goes through one of these. */
export interface Executor {
  /**
   * Run `argv[0]` with arguments `argv.slice(1)`.
   * @throws {@link ProcessExecutionError} when the exit status is not accepted (command and output masked)
   * @throws {@link ProcessTimeoutError} when the timeout passes (the process group is killed)
   * @throws {@link InvalidInputError} (field `argv`) for an empty argv
   */
  run(argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** The root helper prefix this executor puts before privileged commands (empty when none). */
  readonly rootHelper: readonly string[];
}

/** Options for {@link ProcessExecutor}. */
export interface ProcessExecutorOptions {
  /** Prefix for privileged commands, e.g. `['sudo', '-n']`. Default: none (run as the current user). */
  rootHelper?: readonly string[];
  /** Timeout for commands that do not set one, in ms. Default 120 000. */
  defaultTimeoutMs?: number;
  /** Where command lines (masked), durations and failures are logged at debug level. */
  logger?: Logger;
  /** Base environment for programs. Default: `process.env` with `LC_ALL=C` so tool output parses the same everywhere. */
  env?: Readonly<Record<string, string | undefined>>;
}

function accepted(check: ExecOptions['checkExitCode'], code: number | null): boolean {
  if (check === false) return true;
  if (check === undefined || check === true) return code === 0;
  return code !== null && check.includes(code);
}

/** The real Executor: spawns programs with `child_process.spawn` (no shell), in their own process group. */
export class ProcessExecutor implements Executor {
  readonly rootHelper: readonly string[];
  private readonly defaultTimeoutMs: number;
  private readonly logger: Logger;
  private readonly env: Record<string, string | undefined>;

  constructor(options: ProcessExecutorOptions = {}) {
    this.rootHelper = [...(options.rootHelper ?? [])];
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 120_000;
    this.logger = options.logger ?? silentLogger;
    this.env = { ...(options.env ?? process.env), LC_ALL: 'C', LANG: 'C' };
  }

  run(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    if (argv.length === 0 || !argv[0]) {
      return Promise.reject(new InvalidInputError('argv', 'an empty command cannot be run'));
    }
    const full = options.root === false ? [...argv] : [...this.rootHelper, ...argv];
    const secrets = options.secrets ?? [];
    const shown = maskArgv(full, secrets);
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const started = process.hrtime.bigint();
    return new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(full[0]!, full.slice(1), {
        shell: false,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...this.env, ...(options.env ?? {}) } as NodeJS.ProcessEnv,
        cwd: options.cwd,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let settled = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, timeoutMs);
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.stdin.on('error', () => undefined);
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.logger.debug({ cmd: shown, err: e.code }, 'command could not start');
        reject(new ProcessExecutionError(shown, e.code === 'ENOENT' ? 127 : 126, '', maskText(e.message, secrets), { cause: undefined }));
      });
      child.on('close', (code) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const stdout = Buffer.concat(out).toString('utf8');
        const stderr = Buffer.concat(err).toString('utf8');
        this.logger.debug({ cmd: shown, exit_code: code, ms: Math.round(ms * 10) / 10 }, 'command finished');
        if (timedOut) return reject(new ProcessTimeoutError(shown, timeoutMs));
        if (!accepted(options.checkExitCode, code)) {
          return reject(new ProcessExecutionError(shown, code, maskText(stdout, secrets), maskText(stderr, secrets)));
        }
        resolve({ stdout, stderr, exitCode: code });
      });
      if (options.input !== undefined) child.stdin.end(options.input);
      else child.stdin.end();
    });
  }
}
