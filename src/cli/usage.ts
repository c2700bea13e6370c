/**
 * Usage errors and help for the `brick` command line.
 *
 * commander reports a usage error (a missing required option, an unknown command or option, a
 * missing or extra argument) by printing plain text and exiting 1. Brick's commands promise
 * exit status 2 for bad input and, under `--json`, the same error document every other error
 * prints. {@link BrickCommand} records each usage error as an {@link InvalidInputError} naming
 * the option or argument at the moment commander detects it (commander's own hooks hand over
 * the option, flag or argument, so no text is parsed), and {@link usageError} gives that error
 * to the entry point once commander has given up (with `exitOverride`).
 *
 * @module
 */
import { Command, CommanderError, type Option } from 'commander';
import { InvalidInputError, type BrickErrorCode } from '../errors.js';

/** commander's internal hooks that report usage errors (commander 14; not in its typings). */
interface UsageHooks {
  missingMandatoryOptionValue(option: Option): void;
  optionMissingArgument(option: Option): void;
  unknownOption(flag: string): void;
  missingArgument(name: string): void;
  unknownCommand(): void;
  _excessArguments(received: string[]): void;
}

const base = Command.prototype as unknown as UsageHooks;

/** The usage error commander is reporting right now, recorded by the hooks below. */
let pending: InvalidInputError | undefined;

/** The field name for an option: its long name in snake_case, as Brick's errors name inputs (`--device-scan-attempts` is `device_scan_attempts`). */
export function optionField(option: Option): string {
  return (option.long ?? option.short ?? option.flags).replace(/^-+/, '').replace(/-/g, '_');
}

/**
 * A commander `Command` whose usage errors are recorded as {@link InvalidInputError}s. Its
 * subcommands (made with `.command()`) are `BrickCommand`s too. The text commander prints is
 * unchanged; what the entry point prints under `--json` and the exit status come from
 * {@link usageError}.
 */
export class BrickCommand extends Command {
  override createCommand(name?: string): BrickCommand {
    return new BrickCommand(name);
  }

  /** commander hook: `option` is required and was not given. */
  missingMandatoryOptionValue(option: Option): void {
    pending = new InvalidInputError(optionField(option), `is required (${option.flags})`);
    base.missingMandatoryOptionValue.call(this, option);
  }

  /** commander hook: `option` was given without its value. */
  optionMissingArgument(option: Option): void {
    pending = new InvalidInputError(optionField(option), `${option.flags} needs a value`);
    base.optionMissingArgument.call(this, option);
  }

  /** commander hook: `flag` is not an option of this command. */
  unknownOption(flag: string): void {
    pending = new InvalidInputError(flag, `is not an option of ${this.commandPath()} (see --help)`);
    base.unknownOption.call(this, flag);
  }

  /** commander hook: the required argument `name` is missing. */
  missingArgument(name: string): void {
    pending = new InvalidInputError(name, `is required: ${this.commandPath()} ${this.usage()}`);
    base.missingArgument.call(this, name);
  }

  /** commander hook: the first operand is not a subcommand. */
  unknownCommand(): void {
    pending = new InvalidInputError('command', `${JSON.stringify(this.args[0])} is not a command of ${this.commandPath()} (see --help)`);
    base.unknownCommand.call(this);
  }

  /** commander hook: more operands than the command takes. */
  _excessArguments(received: string[]): void {
    pending = new InvalidInputError('arguments', `${this.commandPath()} takes ${this.registeredArguments.length} argument(s), got ${received.length}`);
    base._excessArguments.call(this, received);
  }

  /** This command as the user typed it, e.g. `brick volume create`. */
  private commandPath(): string {
    return this.parent instanceof BrickCommand ? `${this.parent.commandPath()} ${this.name()}` : this.name();
  }
}

/** True when `--json` is among the command-line arguments (before any `--`). */
export function jsonRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * What a failed parse means for the user: `undefined` when commander only showed the help or
 * the version as asked (exit 0); otherwise the error to report. commander's usage errors become
 * the {@link InvalidInputError} recorded by {@link BrickCommand} (a command group run without a
 * subcommand is field `command`); Brick errors thrown by option parsers are returned as they are.
 */
export function usageError(err: unknown): unknown {
  if (!(err instanceof CommanderError)) return err;
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || (err.code === 'commander.help' && err.exitCode === 0)) return undefined;
  const recorded = pending;
  pending = undefined;
  if (recorded) return recorded;
  if (err.code === 'commander.help') return new InvalidInputError('command', 'a subcommand is required (see --help)');
  return new InvalidInputError('command', err.message.replace(/^error: /, ''));
}

/** The exit statuses of `brick`, as `exitCodeFor` (src/errors.ts) assigns them, and `host cleanup`'s own 10 (no error: a result). Listed in the top-level help. */
export const EXIT_STATUSES: readonly { status: number; meaning: string; codes: readonly BrickErrorCode[] }[] = [
  { status: 0, meaning: 'success', codes: [] },
  { status: 1, meaning: 'unexpected error', codes: ['BRICK_ERROR', 'PROCESS_EXECUTION'] },
  { status: 2, meaning: 'bad input, usage or configuration', codes: ['INVALID_INPUT', 'INVALID_CONFIG', 'PROTOCOL_NOT_SUPPORTED'] },
  { status: 3, meaning: 'not found', codes: ['NOT_FOUND'] },
  { status: 4, meaning: 'invalid state, or already exists', codes: ['INVALID_STATE', 'ALREADY_EXISTS'] },
  { status: 5, meaning: 'not enough capacity', codes: ['INSUFFICIENT_CAPACITY'] },
  { status: 6, meaning: 'root or a working root helper required', codes: ['PRIVILEGE_REQUIRED'] },
  { status: 7, meaning: 'timeout: a command, a lock or a retry ran out of time', codes: ['PROCESS_TIMEOUT', 'LOCK_TIMEOUT', 'RETRY_EXHAUSTED'] },
  { status: 8, meaning: 'device, login or encryption failure', codes: ['VOLUME_DEVICE_NOT_FOUND', 'VOLUME_PATH_NOT_REMOVED', 'TARGET_PORTAL_LOGIN_FAILED', 'AUTHENTICATION_FAILED', 'EXTEND_FAILED', 'ENCRYPTION_FAILED'] },
  { status: 9, meaning: 'backend or store error', codes: ['BACKEND_ERROR', 'BACKEND_UNREACHABLE', 'PERSISTENCE_ERROR'] },
  { status: 10, meaning: 'brick host cleanup: owned leftovers remain, skipped as open, mounted or held, failed, or only listed by --dry-run', codes: [] },
];

/** The "Exit status" section of the top-level help, from {@link EXIT_STATUSES}. */
export function exitStatusHelp(): string {
  const lines = EXIT_STATUSES.map((e) => `  ${e.status}  ${e.meaning}${e.codes.length > 0 ? ` (${e.codes.join(', ')})` : ''}`);
  return `\nExit status (with --json, errors print { ok: false, error, code, message, field? } on stdout):\n${lines.join('\n')}\n`;
}
