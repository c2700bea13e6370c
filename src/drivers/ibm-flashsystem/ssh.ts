/**
 * A small pool of SSH connections to an array's management CLI, on the `ssh2` library.
 *
 * Cinder's `SanDriver` keeps an `SSHPool` (`ssh_min_pool_conn`..`ssh_max_pool_conn`
 * paramiko connections, `ssh_conn_timeout`) and runs each command on a channel of a pooled
 * connection. Brick does the same, and adds what Cinder left to paramiko's policy:
 * - **host-key verification**: the server's key must match a configured key or fingerprint;
 *   an unknown key is refused unless the configuration explicitly allows it;
 * - **command timeouts**: a command that does not finish in time is abandoned, its connection
 *   dropped, and {@link ProcessTimeoutError} thrown;
 * - **typed connection errors**: refused credentials -> {@link AuthenticationError} naming the
 *   credential key, an untrusted host key -> {@link AuthenticationError} naming
 *   `san_ssh_host_key` and telling the presented fingerprint, an unreachable address ->
 *   {@link BackendUnreachableError} naming `san_ip`.
 *
 * The password and private key are only handed to `ssh2`; they never appear in logs or errors.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import type { Client as SshClient, ClientChannel, ConnectConfig } from 'ssh2';
import { AuthenticationError, BackendUnreachableError, ProcessTimeoutError } from '../../errors.js';
import { maskText } from '../../exec/mask.js';
import type { Logger } from '../../log.js';
import { silentLogger } from '../../log.js';

/** Options of {@link SshConnectionPool}. */
export interface SshPoolOptions {
  host: string;
  port: number;
  username: string;
  /** Password (secret). */
  password?: string;
  /** Private key text, OpenSSH or PEM (secret). */
  privateKey?: string;
  /** Passphrase of an encrypted private key (secret). */
  passphrase?: string;
  /** Trusted host keys: OpenSSH SHA256 fingerprints (`SHA256:...`). */
  trustedFingerprints: readonly string[];
  /** Accept a host key that is not trusted (logged with its fingerprint). Default false. */
  allowUnknownHostKey?: boolean;
  /** Handshake bound in ms (Cinder's `ssh_conn_timeout`, seconds there). */
  connectTimeoutMs: number;
  /** Default bound on one command in ms. */
  commandTimeoutMs: number;
  /** Most connections open at once (Cinder's `ssh_max_pool_conn`). */
  maxConnections: number;
  logger?: Logger;
  /** Key names used in error messages (which configuration key to fix). */
  fields?: { host?: string; password?: string; privateKey?: string; hostKey?: string };
}

/** A finished command. `exitCode` is null when the server sent none (e.g. killed by a signal). */
export interface SshResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
}

/** OpenSSH's fingerprint of a public key blob: `SHA256:` and the unpadded base64 of its SHA-256. */
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

interface PooledConnection {
  client: SshClient;
  alive: boolean;
}

/**
 * Runs commands over pooled SSH connections. Connections are opened on demand up to
 * `maxConnections`, kept open while idle and reused; callers beyond the limit wait for a free
 * connection (bounded by the command timeout). {@link SshConnectionPool.close} ends them all.
 */
export class SshConnectionPool {
  private readonly options: SshPoolOptions;
  private readonly logger: Logger;
  private readonly idle: PooledConnection[] = [];
  private readonly all = new Set<PooledConnection>();
  private opening = 0;
  private readonly waiters: ((c: PooledConnection | Error) => void)[] = [];
  private closed = false;
  /** Connections opened so far (for tests and diagnostics). */
  opened = 0;

  constructor(options: SshPoolOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * Run `command` on a pooled connection and return its output and exit status (a non-zero
   * status is returned, not thrown: the caller interprets CMMVC messages).
   * @throws {@link ProcessTimeoutError} when the command does not finish in `timeoutMs`
   * @throws {@link AuthenticationError} / {@link BackendUnreachableError} when no connection can be opened
   */
  async run(command: string, options: { timeoutMs?: number } = {}): Promise<SshResult> {
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const conn = await this.acquire(deadline, command);
      try {
        const result = await this.exec(conn, command, Math.max(1, deadline - Date.now()), timeoutMs);
        this.release(conn);
        return result;
      } catch (err) {
        this.discard(conn);
        // A connection that died while idle fails at channel open: retry once on a fresh one.
        if (err instanceof ChannelOpenError && attempt === 1 && Date.now() < deadline) continue;
        throw err instanceof ChannelOpenError ? new BackendUnreachableError(`SSH channel to ${this.where()} could not be opened: ${err.message}`, { field: this.options.fields?.host ?? 'san_ip' }) : err;
      }
    }
  }

  /** Close every connection; later `run` calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(new BackendUnreachableError(`SSH pool to ${this.where()} is closed`));
    const ends: Promise<void>[] = [];
    for (const c of this.all) {
      ends.push(
        new Promise<void>((resolve) => {
          if (!c.alive) return resolve();
          c.client.once('close', () => resolve());
          c.client.end();
          setTimeout(resolve, 1000).unref();
        }),
      );
      c.alive = false;
    }
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(ends);
  }

  private where(): string {
    return `${this.options.username}@${this.options.host}:${this.options.port}`;
  }

  private async acquire(deadline: number, command: string): Promise<PooledConnection> {
    if (this.closed) throw new BackendUnreachableError(`SSH pool to ${this.where()} is closed`);
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (c.alive) return c;
    }
    if (this.all.size + this.opening < this.options.maxConnections) {
      this.opening++;
      try {
        const c = await this.connect();
        this.all.add(c);
        return c;
      } finally {
        this.opening--;
      }
    }
    return new Promise<PooledConnection>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new ProcessTimeoutError(['ssh', this.where(), command], Math.max(0, deadline - Date.now())));
      }, Math.max(1, deadline - Date.now()));
      const waiter = (c: PooledConnection | Error): void => {
        clearTimeout(timer);
        if (c instanceof Error) reject(c);
        else resolve(c);
      };
      this.waiters.push(waiter);
    });
  }

  private release(conn: PooledConnection): void {
    if (!conn.alive || this.closed) return this.discard(conn);
    const w = this.waiters.shift();
    if (w) w(conn);
    else this.idle.push(conn);
  }

  private discard(conn: PooledConnection): void {
    conn.alive = false;
    try {
      conn.client.end();
    } catch {
      /* already closed */
    }
    this.all.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    // A waiter can now open a connection of its own.
    const w = this.waiters.shift();
    if (w) {
      this.opening++;
      this.connect()
        .then((c) => {
          this.all.add(c);
          w(c);
        })
        .catch((err: Error) => w(err))
        .finally(() => this.opening--);
    }
  }

  private connect(): Promise<PooledConnection> {
    const o = this.options;
    const secrets = [o.password ?? '', o.passphrase ?? ''].filter((s) => s !== '');
    const client = new ssh2.Client();
    const conn: PooledConnection = { client, alive: false };
    let presented: string | undefined;
    let refusedKey = false;
    const config: ConnectConfig = {
      host: o.host,
      port: o.port,
      username: o.username,
      readyTimeout: o.connectTimeoutMs,
      hostVerifier: (key: Buffer): boolean => {
        presented = sshFingerprint(key);
        if (o.trustedFingerprints.includes(presented)) return true;
        if (o.allowUnknownHostKey) {
          this.logger.warn({ host: o.host, port: o.port, fingerprint: presented }, 'accepting an SSH host key that is not configured (san_ssh_allow_unknown_host_key is true)');
          return true;
        }
        refusedKey = true;
        return false;
      },
    };
    if (o.password !== undefined) config.password = o.password;
    if (o.privateKey !== undefined) config.privateKey = o.privateKey;
    if (o.passphrase !== undefined) config.passphrase = o.passphrase;
    return new Promise<PooledConnection>((resolve, reject) => {
      let settled = false;
      client.on('ready', () => {
        settled = true;
        // One small request and reply per command: without this, Nagle's algorithm and delayed
        // ACKs add tens of ms to every command.
        client.setNoDelay(true);
        conn.alive = true;
        this.opened++;
        this.logger.debug({ host: o.host, port: o.port, fingerprint: presented }, 'SSH connection to the array opened');
        resolve(conn);
      });
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        conn.alive = false;
        if (settled) {
          this.logger.debug({ host: o.host, err: maskText(err.message, secrets) }, 'SSH connection to the array failed');
          return;
        }
        settled = true;
        client.end();
        reject(this.connectError(err, refusedKey, presented, secrets));
      });
      client.on('close', () => {
        conn.alive = false;
        if (!settled) {
          settled = true;
          reject(
            refusedKey
              ? this.connectError(new Error('host key refused'), true, presented, secrets)
              : new BackendUnreachableError(`SSH connection to ${this.where()} closed during the handshake`, { field: o.fields?.host ?? 'san_ip' }),
          );
        }
      });
      try {
        client.connect(config);
      } catch (err) {
        settled = true;
        // ssh2 throws synchronously for a malformed private key.
        reject(new AuthenticationError(`SSH private key for ${this.where()} cannot be used: ${maskText((err as Error).message, secrets)}`, { field: o.fields?.privateKey ?? 'san_private_key' }));
      }
    });
  }

  private connectError(err: Error & { level?: string; code?: string }, refusedKey: boolean, presented: string | undefined, secrets: string[]): Error {
    const o = this.options;
    if (refusedKey) {
      return new AuthenticationError(
        `SSH host key of ${o.host}:${o.port} (${presented ?? 'unknown fingerprint'}) is not trusted: set ${o.fields?.hostKey ?? 'san_ssh_host_key'} to the array's host key or fingerprint (or san_ssh_allow_unknown_host_key: true to accept any key)`,
        { field: o.fields?.hostKey ?? 'san_ssh_host_key', details: { fingerprint: presented ?? null } },
      );
    }
    if (err.level === 'client-authentication') {
      const field = o.password !== undefined ? (o.fields?.password ?? 'san_password') : (o.fields?.privateKey ?? 'san_private_key');
      return new AuthenticationError(`SSH login to ${this.where()} was refused: check san_login and ${field}`, { field });
    }
    const msg = maskText(err.message, secrets);
    if (err.level === 'client-timeout' || /timed out/i.test(msg)) {
      return new BackendUnreachableError(`SSH handshake with ${o.host}:${o.port} timed out after ${o.connectTimeoutMs} ms`, { field: o.fields?.host ?? 'san_ip' });
    }
    if (/private key|passphrase|Cannot parse privateKey/i.test(msg)) {
      return new AuthenticationError(`SSH private key for ${this.where()} cannot be used: ${msg}`, { field: o.fields?.privateKey ?? 'san_private_key' });
    }
    return new BackendUnreachableError(`SSH connection to ${o.host}:${o.port} failed: ${msg}`, { field: o.fields?.host ?? 'san_ip', details: { code: err.code ?? null } });
  }

  private exec(conn: PooledConnection, command: string, leftMs: number, timeoutMs: number): Promise<SshResult> {
    return new Promise<SshResult>((resolve, reject) => {
      let stream: ClientChannel | undefined;
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        conn.alive = false;
        try {
          stream?.close();
        } catch {
          /* the connection is dropped anyway */
        }
        reject(new ProcessTimeoutError(['ssh', this.where(), command], timeoutMs));
      }, leftMs);
      conn.client.exec(command, (err, ch) => {
        if (done) return;
        if (err) {
          done = true;
          clearTimeout(timer);
          return reject(new ChannelOpenError(err.message));
        }
        stream = ch;
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let exitCode: number | null = null;
        ch.on('data', (d: Buffer) => out.push(d));
        ch.stderr.on('data', (d: Buffer) => errOut.push(d));
        ch.on('exit', (code: number | null) => {
          exitCode = typeof code === 'number' ? code : null;
        });
        ch.on('close', () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), exitCode });
        });
      });
    });
  }
}

class ChannelOpenError extends Error {}
