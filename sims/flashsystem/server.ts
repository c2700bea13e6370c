/**
 * The FlashSystem simulator's SSH server (the `ssh2` library's server side): password or
 * public-key login, one `exec` channel per CLI command, output on stdout, `CMMVC` messages on
 * stderr and the exit status the array's CLI gives.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, ServerChannel, ParsedKey } from 'ssh2';
import { FlashSystemState, type FlashSystemStateOptions } from './state.js';

/** A user the simulator accepts: a password, a public key (OpenSSH `ssh-ed25519 AAAA...` line), or both. */
export interface SimulatorUser {
  name: string;
  password?: string;
  publicKey?: string;
}

/** Options of {@link startFlashSystemSimulator}. */
export interface FlashSystemSimulatorOptions extends FlashSystemStateOptions {
  /** TCP port; default 0 (a free port). */
  port?: number;
  /** Address to listen on; default `127.0.0.1`. */
  host?: string;
  /** Accepted logins; default `[{ name: 'superuser', password: 'passw0rd' }]`. */
  users?: SimulatorUser[];
  /** The host private key (OpenSSH or PEM text); default a fresh ed25519 key. */
  hostKey?: string;
  /** Use this state instead of a new one (e.g. one shared with a lab backing). */
  state?: FlashSystemState;
}

/** A running simulator. */
export interface FlashSystemSimulator {
  /** The TCP port it listens on. */
  port: number;
  /** The address it listens on. */
  host: string;
  /** The host public key as an OpenSSH line (`ssh-ed25519 AAAA...`), for `san_ssh_host_key`. */
  publicKey: string;
  /** The host key's OpenSSH SHA256 fingerprint (`SHA256:...`), also accepted by `san_ssh_host_key`. */
  hostKeyFingerprint: string;
  /** The simulated cluster (tests inspect it and inject faults). */
  state: FlashSystemState;
  /** Number of SSH connections accepted so far (tests check the driver's pooling). */
  connections(): number;
  /** Stop listening and drop every connection. */
  close(): Promise<void>;
}

/** OpenSSH's fingerprint of a public key blob: `SHA256:` + unpadded base64 of its SHA-256. */
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * A fresh ed25519 key pair in OpenSSH format (`private`, `public` line). `ssh2`'s generator
 * now and then (about 1 in 200) emits a key its own parser rejects, so the pair is checked
 * and generated again when that happens.
 */
export function generateSshKeyPair(): { private: string; public: string } {
  for (let i = 0; ; i++) {
    const k = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(k.private) instanceof Error) && !(ssh2.utils.parseKey(k.public) instanceof Error)) return k;
    if (i >= 20) throw new Error('could not generate a usable ed25519 key pair');
  }
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function parsePublic(line: string): ParsedKey {
  const k = ssh2.utils.parseKey(line);
  if (k instanceof Error) throw k;
  return Array.isArray(k) ? (k[0] as ParsedKey) : k;
}

/**
 * Start a FlashSystem CLI simulator on an SSH port.
 *
 * `brick sim flashsystem` calls this and prints the port, the login and the host key line.
 */
export async function startFlashSystemSimulator(options: FlashSystemSimulatorOptions = {}): Promise<FlashSystemSimulator> {
  const state = options.state ?? new FlashSystemState(options);
  const users = options.users ?? [{ name: 'superuser', password: 'passw0rd' }];
  const userKeys = new Map<string, ParsedKey>();
  for (const u of users) if (u.publicKey) userKeys.set(u.name, parsePublic(u.publicKey));
  const hostKeyText = options.hostKey ?? generateSshKeyPair().private;
  const parsedHost = ssh2.utils.parseKey(hostKeyText);
  if (parsedHost instanceof Error) throw parsedHost;
  const hostKey = Array.isArray(parsedHost) ? (parsedHost[0] as ParsedKey) : parsedHost;
  const blob = hostKey.getPublicSSH();
  const publicKey = `${hostKey.type} ${blob.toString('base64')}`;
  const clients = new Set<Connection>();
  let accepted = 0;

  const server = new ssh2.Server({ hostKeys: [hostKeyText], ident: 'flashsystem-sim' }, (client) => {
    accepted++;
    clients.add(client);
    (client as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true);
    let user: string | undefined;
    client.on('authentication', (ctx) => {
      const u = users.find((x) => x.name === ctx.username);
      if (ctx.method === 'password' && u?.password !== undefined && sameText(ctx.password, u.password)) {
        user = ctx.username;
        return ctx.accept();
      }
      if (ctx.method === 'publickey' && u) {
        const k = userKeys.get(u.name);
        if (k && ctx.key.algo === k.type && ctx.key.data.equals(k.getPublicSSH())) {
          if (ctx.signature && ctx.blob) {
            if (k.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject();
          }
          user = ctx.username;
          return ctx.accept();
        }
      }
      return ctx.reject(['password', 'publickey']);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('exec', (acceptExec, _reject, info) => {
          const stream: ServerChannel = acceptExec();
          state
            .execute(info.command)
            .then((r) => {
              if (r.hang) return; // never answer; the client times out and closes
              if (r.stdout) stream.write(r.stdout);
              if (r.stderr) stream.stderr.write(r.stderr);
              stream.exit(r.exitCode);
              stream.end();
            })
            .catch((err: unknown) => {
              stream.stderr.write(`CMMVC5786E ${(err as Error).message}\n`);
              stream.exit(1);
              stream.end();
            });
        });
        session.on('shell', (_accept, reject) => reject?.());
      });
      void user;
    });
    client.on('error', () => {
      /* a client that drops mid-handshake is not the simulator's problem */
    });
    client.on('close', () => clients.delete(client));
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    host,
    publicKey,
    hostKeyFingerprint: sshFingerprint(blob),
    state,
    connections: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of clients) c.end();
        server.close(() => resolve());
      }),
  };
}
