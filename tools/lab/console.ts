/**
 * The guest's serial console as the host sees it: the last 64 KiB kept in memory (and every
 * byte written to `console.log` in the run's control directory), the tail shown when a run
 * fails, and the kernel-crash detector that stops a run whose guest kernel has oopsed.
 *
 * @module
 */
import * as fs from 'node:fs';

/** Console lines that mean the guest kernel has crashed (after which the guest command may hang forever). Soft-lockup and RCU-stall warnings, which a loaded TCG guest can print and survive, do not count. */
const OOPS_RE = /^.*(?:BUG: (?:kernel |unable to handle)|kernel BUG at|Oops: |general protection fault|Kernel panic - not syncing).*$/m;

/** The crash line and the following `RIP:` line in console text, or undefined. */
export function findKernelOops(consoleText: string): string | undefined {
  const m = OOPS_RE.exec(consoleText);
  if (!m) return undefined;
  const rip = /^.*RIP: .*$/m.exec(consoleText.slice(m.index));
  const clean = (l: string): string => l.replace(/^\[\s*[\d.]+\]\s*/, '').trim();
  return rip ? `${clean(m[0])}; ${clean(rip[0])}` : clean(m[0]);
}

/** How much console text is kept in memory for crash detection and the failure tail, in bytes. */
const KEEP_BYTES = 64 * 1024;

/** The serial console of one run: every byte goes to the log file, the last {@link KEEP_BYTES} are kept in memory. */
export class ConsoleCapture {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private readonly log: fs.WriteStream;

  /** @param logPath the file every console byte is appended to (created or truncated) */
  constructor(logPath: string) {
    this.log = fs.createWriteStream(logPath);
  }

  /** Records bytes QEMU wrote (its stdout is the serial console; its stderr is recorded alike). */
  add(b: Buffer): void {
    this.chunks.push(b);
    this.bytes += b.length;
    while (this.bytes > KEEP_BYTES && this.chunks.length > 1) this.bytes -= this.chunks.shift()!.length;
    this.log.write(b);
  }

  /** The kept text (about the last 64 KiB). */
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /** The last 40 lines, or a sentence saying the console stayed silent. */
  tail(): string {
    const consoleText = this.text();
    return consoleText.trim() === ''
      ? '(the serial console stayed silent: QEMU did not start the kernel, or it was still decompressing)'
      : consoleText.split('\n').slice(-40).join('\n');
  }

  /** Closes the log file. */
  end(): void {
    this.log.end();
  }
}
