/**
 * The open-iscsi initiator: target portals, node records, sessions, login, logout, discovery.
 *
 * Sessions are read from sysfs (`/sys/class/iscsi_session/sessionN`, its connection's
 * `persistent_address`/`persistent_port`, and its device directory
 * `/sys/devices/platform/hostH/sessionN`), not parsed from `iscsiadm -m session`: it is what
 * the kernel knows, it costs no process, and it gives the SCSI host at once.
 * Everything else goes through `iscsiadm` (open-iscsi 2.1), run by the Executor.
 *
 * **CHAP secrets never reach a process argument.** `iscsiadm -o update -n
 * node.session.auth.password -v SECRET` (what os-brick runs) puts the secret in every process
 * listing for as long as iscsiadm runs. Brick instead creates the node record with `iscsiadm -m
 * node -o new` (all defaults from iscsid.conf) and then edits the record file itself: it is the
 * same `key = value` text iscsiadm writes (`idbm.c`, `idbm_print`/`idbm_recinfo_config`, read
 * back by `idbm_rec_read` at login), kept at mode 0600, under `/etc/iscsi/nodes/<iqn>/<addr>,<port>`
 * (tpgt unknown) or `/etc/iscsi/nodes/<iqn>/<addr>,<port>,<tpgt>/<iface>` (after discovery);
 * `/var/lib/iscsi/nodes` on distributions that keep the database there. The write happens in
 * Node (running as root) or by piping the file on stdin to `tee` behind the root helper; the
 * secret is also passed to the Executor's `secrets` so any error text is masked. The same is done
 * for discovery CHAP in the `send_targets/<addr>,<port>/st_config` record.
 *
 * iscsiadm exit statuses used (open-iscsi `iscsi_err.h`): 15 session exists, 21 no records
 * found, 24 login authentication failed, 19 fatal login error, 8 transport timeout.
 *
 * @module
 */
import { basename, dirname } from 'node:path';
import { AuthenticationError, HostIoError, InvalidInputError, TargetPortalLoginError, ProcessExecutionError } from '../errors.js';
import type { HostContext } from './context.js';
import { listDir, readAttr, resolvePath, readFilePrivileged, writeFilePrivate } from './sysfs.js';
import { retry } from './retry.js';

/** iscsiadm exit status: a session to that node already exists. */
export const ISCSI_ERR_SESS_EXISTS = 15;
/** iscsiadm exit status: no records (nodes, sessions) found. */
export const ISCSI_ERR_NO_OBJS_FOUND = 21;
/** iscsiadm exit status: the target refused the login's authentication. */
export const ISCSI_ERR_LOGIN_AUTH_FAILED = 24;

/** A parsed target portal. */
export interface Portal {
  /** The address without brackets: `192.0.2.10`, `fd00::1`, or a host name. */
  address: string;
  /** TCP port; 3260 when the text gave none. */
  port: number;
  /** Canonical text for iscsiadm `-p`: `192.0.2.10:3260`, `[fd00::1]:3260`. */
  text: string;
}

/**
 * Parse a target portal: `IPv4[:port]`, `[IPv6][:port]`, a bare IPv6 address, or `host[:port]`;
 * the port defaults to 3260 (os-brick `_get_ips` / Cinder's `target_portal`).
 * @throws {@link InvalidInputError} naming `field` for anything else (empty, bad port, bad brackets)
 */
export function parsePortal(value: unknown, field = 'target_portal'): Portal {
  if (typeof value !== 'string' || value.trim() === '') throw new InvalidInputError(field, 'must be a non-empty string such as "192.0.2.10:3260" or "[fd00::1]:3260"');
  const v = value.trim();
  let address: string;
  let portText: string | undefined;
  if (v.startsWith('[')) {
    const m = /^\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\](?::(\d+))?$/.exec(v);
    if (!m || !m[1]!.includes(':')) throw new InvalidInputError(field, `is not a valid bracketed IPv6 portal: ${JSON.stringify(v)}`);
    address = m[1]!.toLowerCase();
    portText = m[2];
  } else if ((v.match(/:/g) ?? []).length > 1) {
    if (!/^[0-9A-Fa-f:.]+$/.test(v)) throw new InvalidInputError(field, `is not a valid IPv6 address: ${JSON.stringify(v)}`);
    address = v.toLowerCase();
  } else {
    const m = /^([A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d+))?$/.exec(v);
    if (!m) throw new InvalidInputError(field, `is not a valid portal (address[:port]): ${JSON.stringify(v)}`);
    address = m[1]!;
    portText = m[2];
    if (/^\d+(\.\d+){3}$/.test(address) && address.split('.').some((o) => Number(o) > 255)) {
      throw new InvalidInputError(field, `has an invalid IPv4 address: ${JSON.stringify(v)}`);
    }
  }
  const port = portText === undefined ? 3260 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidInputError(field, `has an invalid port: ${JSON.stringify(v)}`);
  const text = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  return { address, port, text };
}

/** An iSCSI session as sysfs shows it. */
export interface IscsiSession {
  /** Session number N of `sessionN` (iscsiadm's `-r N`). */
  id: number;
  /** Target IQN (`targetname`). */
  targetIqn: string;
  /** Portal of the session's leading connection. */
  portal: Portal;
  /** Target portal group tag. */
  tpgt: number | undefined;
  /** iface name (`default`, `iser`, ...). */
  iface: string | undefined;
  /** Session state (`LOGGED_IN`, `FAILED`, `FREE`). */
  state: string | undefined;
  /** SCSI host number that carries the session's LUNs. */
  host: number;
  /** Host path of the session's sysfs device directory (`/sys/devices/platform/host2/session1`), parent of `targetH:C:T`. */
  deviceDir: string;
  /**
   * The SCSI target id the session's LUNs get (`target_id`; the channel is always 0): the kernel
   * scans `H:0:<target_id>:L` for it (`iscsi_user_scan`). Undefined when sysfs does not show it.
   */
  targetId?: number;
}

/**
 * Every iSCSI session on the host, from `/sys/class/iscsi_session` (os-brick reads
 * `iscsiadm -m session`). Sessions whose sysfs entries vanish while being read are skipped.
 */
export async function listSessions(ctx: HostContext): Promise<IscsiSession[]> {
  const out: IscsiSession[] = [];
  for (const name of await listDir(ctx, '/sys/class/iscsi_session')) {
    const m = /^session(\d+)$/.exec(name);
    if (!m) continue;
    const s = await readSession(ctx, Number(m[1]));
    if (s) out.push(s);
  }
  return out;
}

/** The session `sessionN` from sysfs, or `undefined` when it is gone or incomplete. */
export async function readSession(ctx: HostContext, id: number): Promise<IscsiSession | undefined> {
  const base = `/sys/class/iscsi_session/session${id}`;
  const targetIqn = await readAttr(ctx, `${base}/targetname`);
  const deviceDir = await resolvePath(ctx, `${base}/device`);
  if (!targetIqn || !deviceDir) return undefined;
  const hm = /^host(\d+)$/.exec(basename(dirname(deviceDir)));
  if (!hm) return undefined;
  let address: string | undefined;
  let port: string | undefined;
  for (const conn of await listDir(ctx, '/sys/class/iscsi_connection')) {
    if (!conn.startsWith(`connection${id}:`)) continue;
    const c = `/sys/class/iscsi_connection/${conn}`;
    address = (await readAttr(ctx, `${c}/persistent_address`)) || (await readAttr(ctx, `${c}/address`));
    port = (await readAttr(ctx, `${c}/persistent_port`)) || (await readAttr(ctx, `${c}/port`));
    break;
  }
  if (!address) return undefined;
  let portal: Portal;
  try {
    portal = parsePortal(address.includes(':') ? `[${address}]:${port ?? 3260}` : `${address}:${port ?? 3260}`);
  } catch {
    return undefined;
  }
  const tpgtText = await readAttr(ctx, `${base}/tpgt`);
  const targetIdText = await readAttr(ctx, `${base}/target_id`);
  return {
    id,
    targetIqn,
    portal,
    tpgt: tpgtText !== undefined && /^-?\d+$/.test(tpgtText) ? Number(tpgtText) : undefined,
    iface: await readAttr(ctx, `${base}/ifacename`),
    state: await readAttr(ctx, `${base}/state`),
    host: Number(hm[1]),
    deviceDir,
    ...(targetIdText !== undefined && /^\d+$/.test(targetIdText) ? { targetId: Number(targetIdText) } : {}),
  };
}

/** Sessions to `iqn` at `portal` (address compared case-insensitively, as os-brick does). Several may exist (os-brick bug 2116553). */
export function sessionsFor(sessions: readonly IscsiSession[], iqn: string, portal: Portal): IscsiSession[] {
  return sessions.filter(
    (s) => s.targetIqn.toLowerCase() === iqn.toLowerCase() && s.portal.address.toLowerCase() === portal.address.toLowerCase() && s.portal.port === portal.port,
  );
}

/** Where node records live; the first that exists is used. */
export const NODE_DB_ROOTS = ['/etc/iscsi', '/var/lib/iscsi'] as const;

/**
 * The host path of the node record file for (`iqn`, `portal`, `iface`), or `undefined` when
 * iscsiadm has none. Both layouts are recognised: `nodes/<iqn>/<addr>,<port>` (a file, made by
 * `-o new` with tpgt unknown) and `nodes/<iqn>/<addr>,<port>,<tpgt>/<iface>` (made by discovery).
 */
export async function nodeRecordFile(ctx: HostContext, iqn: string, portal: Portal, iface = 'default'): Promise<string | undefined> {
  const prefix = `${portal.address},${portal.port}`;
  for (const root of NODE_DB_ROOTS) {
    const dir = `${root}/nodes/${iqn}`;
    for (const entry of await listDir(ctx, dir)) {
      if (entry.toLowerCase() !== prefix.toLowerCase() && !entry.toLowerCase().startsWith(`${prefix.toLowerCase()},`)) continue;
      const inner = await listDir(ctx, `${dir}/${entry}`);
      if (inner.length > 0) {
        if (inner.includes(iface)) return `${dir}/${entry}/${iface}`;
        continue;
      }
      // A flat record file; its iface is recorded inside.
      const text = await readFilePrivileged(ctx, `${dir}/${entry}`);
      if (text === undefined) continue;
      const ifaceLine = /^iface\.iscsi_ifacename\s*=\s*(\S+)/m.exec(text);
      if (!ifaceLine || ifaceLine[1] === iface) return `${dir}/${entry}`;
    }
  }
  return undefined;
}

/** What a node record should say. Values are iscsiadm record keys and values. */
export type NodeSettings = Record<string, string>;

/**
 * The node settings for CHAP (`node.session.auth.*`); `undefined` method means no authentication
 * (authmethod `None`, os-brick writes nothing and relies on the default).
 */
export function chapSettings(prefix: 'node.session.auth' | 'discovery.sendtargets.auth', method?: string, username?: string, password?: string): NodeSettings {
  if (!method) return { [`${prefix}.authmethod`]: 'None' };
  return { [`${prefix}.authmethod`]: 'CHAP', [`${prefix}.username`]: username ?? '', [`${prefix}.password`]: password ?? '' };
}

/**
 * `text` (an iscsiadm record) with each key of `settings` set: an existing `key = value` line is
 * replaced, a missing key is inserted before `# END RECORD` (or appended). Pure.
 */
export function editRecord(text: string, settings: NodeSettings): string {
  const lines = text.split('\n');
  const pending = new Map(Object.entries(settings));
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^#\s=][^=]*?)\s*=/.exec(lines[i]!);
    if (m && pending.has(m[1]!)) {
      lines[i] = `${m[1]} = ${pending.get(m[1]!)}`;
      pending.delete(m[1]!);
    }
  }
  if (pending.size > 0) {
    const add = [...pending].map(([k, v]) => `${k} = ${v}`);
    let end = lines.findIndex((l) => l.startsWith('# END RECORD'));
    if (end < 0) {
      while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
      lines.push(...add, '');
    } else {
      lines.splice(end, 0, ...add);
      end += add.length;
    }
  }
  return lines.join('\n');
}

function iscsiadmError(err: unknown, portal: Portal, iqn: string, what: string): Error {
  if (err instanceof ProcessExecutionError) {
    if (err.exitCode === ISCSI_ERR_LOGIN_AUTH_FAILED) {
      return new AuthenticationError(`CHAP authentication to ${iqn} at ${portal.text} was refused`, {
        field: 'auth_password',
        details: { target_iqn: iqn, target_portal: portal.text, exit_code: err.exitCode },
        cause: err,
      });
    }
    return new TargetPortalLoginError(`${what} ${iqn} at ${portal.text} failed (iscsiadm status ${err.exitCode})`, {
      details: { target_iqn: iqn, target_portal: portal.text, exit_code: err.exitCode },
      cause: err,
    });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** Options of the node-record operations. */
export interface NodeOptions {
  /** iface (`default`, `iser`, or a configured offload iface). Default `default`. */
  iface?: string;
  /** Bound on each iscsiadm run, ms. Default 30 000. */
  timeoutMs?: number;
}

/** Options of {@link ensureNode}. */
export interface EnsureNodeOptions extends NodeOptions {
  /** Runs when no record exists, before iscsiadm creates one (the attach journal's intent). Its error aborts the call. */
  beforeCreate?: () => Promise<void>;
}

/**
 * Make sure a node record exists for (`iqn`, `portal`, iface) and holds `settings`; returns
 * whether this call created the record. Creation is `iscsiadm -m node -T IQN -p PORTAL -I IFACE
 * -o new`; the settings (including CHAP secrets) are written into the record file directly, so
 * no secret is ever an argument (see the module notes).
 * @throws {@link TargetPortalLoginError} when iscsiadm cannot create the record
 * @throws {@link TargetPortalLoginError} when iscsiadm made no record; {@link HostIoError} when it cannot be read or written
 * @throws whatever `beforeCreate` throws (nothing is created then)
 */
export async function ensureNode(ctx: HostContext, iqn: string, portal: Portal, settings: NodeSettings, options: EnsureNodeOptions = {}): Promise<{ created: boolean; file: string }> {
  const iface = options.iface ?? 'default';
  let file = await nodeRecordFile(ctx, iqn, portal, iface);
  let created = false;
  if (!file) {
    await options.beforeCreate?.();
    try {
      await withNodeDb(ctx, iqn, () => ctx.executor.run(['iscsiadm', '-m', 'node', '-T', iqn, '-p', portal.text, '-I', iface, '-o', 'new'], { timeoutMs: options.timeoutMs ?? 30_000 }));
    } catch (err) {
      throw iscsiadmError(err, portal, iqn, 'creating the node record for');
    }
    created = true;
    file = await nodeRecordFile(ctx, iqn, portal, iface);
    if (!file) throw new TargetPortalLoginError(`iscsiadm created no node record for ${iqn} at ${portal.text}`, { details: { target_iqn: iqn, target_portal: portal.text } });
  }
  await writeRecordSettings(ctx, file, settings);
  return { created, file };
}

/**
 * Apply `settings` to the record file at host path `file` (read, edit, write back at mode 0600). Secrets in `settings` are masked in any error.
 * Nothing is written when the record already holds `settings`.
 * @throws {@link HostIoError} (details `path`) when the record is missing or unreadable, even through the root helper;
 *   (details `path`, `errno`) when it cannot be written back ({@link writeFilePrivate})
 * @throws {@link ProcessExecutionError} / {@link ProcessTimeoutError} from `tee` or `chmod` when the write goes through a root helper
 */
export async function writeRecordSettings(ctx: HostContext, file: string, settings: NodeSettings): Promise<void> {
  const text = await readFilePrivileged(ctx, file);
  if (text === undefined) throw new HostIoError(`iSCSI record ${file} is unreadable`, { details: { path: file } });
  const next = editRecord(text, settings);
  if (next === text) return;
  const secrets = Object.entries(settings)
    .filter(([k]) => /password/.test(k))
    .map(([, v]) => v)
    .filter((v) => v !== '');
  await writeFilePrivate(ctx, file, next, 0o600, secrets);
}

/** Options for {@link login}. */
export interface LoginOptions extends NodeOptions {
  /** Secrets to mask in errors (the record's CHAP password). */
  secrets?: readonly string[];
}

/**
 * Log in to (`iqn`, `portal`) through `iface` (`iscsiadm -m node -T -p -I --login`). An existing
 * session (status 15) is success. iscsiadm returns once iscsid has finished the login, retries
 * included (`node.session.initial_login_retry_max`).
 * @throws {@link AuthenticationError} (field `auth_password`) when CHAP is refused (status 24)
 * @throws {@link TargetPortalLoginError} for any other failure, with the iscsiadm status in `details`
 */
export async function login(ctx: HostContext, iqn: string, portal: Portal, options: LoginOptions = {}): Promise<void> {
  try {
    await ctx.executor.run(['iscsiadm', '-m', 'node', '-T', iqn, '-p', portal.text, '-I', options.iface ?? 'default', '--login'], {
      timeoutMs: options.timeoutMs ?? 120_000,
      checkExitCode: [0, ISCSI_ERR_SESS_EXISTS],
      secrets: options.secrets ?? [],
    });
  } catch (err) {
    throw iscsiadmError(err, portal, iqn, 'login to');
  }
}

/**
 * Log out of (`iqn`, `portal`) (`--logout`); no session (status 21) is success.
 * @throws ProcessExecutionError for other failures
 */
export async function logout(ctx: HostContext, iqn: string, portal: Portal, options: NodeOptions = {}): Promise<void> {
  await ctx.executor.run(['iscsiadm', '-m', 'node', '-T', iqn, '-p', portal.text, '-I', options.iface ?? 'default', '--logout'], {
    timeoutMs: options.timeoutMs ?? 60_000,
    checkExitCode: [0, ISCSI_ERR_NO_OBJS_FOUND],
  });
}

/**
 * Delete the node record of (`iqn`, `portal`) (`-o delete`); no record (status 21) is success.
 * @throws ProcessExecutionError for other failures
 */
export async function deleteNode(ctx: HostContext, iqn: string, portal: Portal, options: NodeOptions = {}): Promise<void> {
  const argv = ['iscsiadm', '-m', 'node', '-T', iqn, '-p', portal.text, '-I', options.iface ?? 'default', '-o', 'delete'];
  // Serialised per target (see withNodeDb); a race with a program outside Brick still shows as
  // ISCSI_ERR_IDBM ("could not stat" a record that vanished meanwhile), which is retried.
  await retry(
    () => withNodeDb(ctx, iqn, () => ctx.executor.run(argv, { timeoutMs: options.timeoutMs ?? 30_000, checkExitCode: [0, ISCSI_ERR_NO_OBJS_FOUND] })),
    { attempts: 3, delayMs: 100, retryIf: (e) => e instanceof ProcessExecutionError && e.exitCode === ISCSI_ERR_IDBM },
  );
}

/** iscsiadm's exit status for an iSCSI database failure (open-iscsi `ISCSI_ERR_IDBM`). */
export const ISCSI_ERR_IDBM = 6;

/**
 * Run `fn` holding the node-database lock of target `iqn`. open-iscsi keeps one directory per
 * target under /etc/iscsi/nodes, and `iscsiadm -o delete` (or `-o new`) for one portal walks
 * every portal record of that target: two such calls for two portals of the same target, run in
 * parallel, make one of them fail with "iface iter could not stat ..." (status 6). Logins and
 * scans stay parallel; only these short record changes are serialised, across processes.
 */
export function withNodeDb<T>(ctx: HostContext, iqn: string, fn: () => Promise<T>): Promise<T> {
  return ctx.locks.withLock(`iscsi-nodedb-${iqn}`, fn, { timeoutMs: 60_000 });
}

/** One sendtargets answer: a portal, its portal group tag and a target IQN. */
export interface DiscoveredTarget {
  portal: Portal;
  tpgt: number | undefined;
  iqn: string;
}

/** Parse sendtargets output lines (`192.0.2.10:3260,1 iqn...`, `[fd00::1]:3260,1 iqn...`). Pure. */
export function parseDiscovery(stdout: string): DiscoveredTarget[] {
  const out: DiscoveredTarget[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^\s*(\S+?)(?:,(-?\d+))?\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    try {
      out.push({ portal: parsePortal(m[1]), tpgt: m[2] === undefined ? undefined : Number(m[2]), iqn: m[3]! });
    } catch {
      /* not a target line */
    }
  }
  return out;
}

/** Options for {@link discoverSendTargets}. */
export interface DiscoveryOptions extends NodeOptions {
  /** Discovery CHAP (`discovery_auth_*`). */
  auth?: { method?: string; username?: string; password?: string };
}

/**
 * SendTargets discovery at `portal` without touching the node database (`iscsiadm -m
 * discoverydb -t sendtargets -p PORTAL -I IFACE --discover -o nonpersistent`): the answer is
 * returned and Brick creates only the node records it uses. With discovery CHAP the discoverydb
 * record is created (`-o new`), its `st_config` file edited (secret never in argv), used, and
 * deleted again (it is deleted in any case when this call created it).
 * @throws {@link AuthenticationError} (field `discovery_auth_password`) when discovery CHAP is refused
 * @throws {@link TargetPortalLoginError} when discovery fails otherwise
 */
export async function discoverSendTargets(ctx: HostContext, portal: Portal, options: DiscoveryOptions = {}): Promise<DiscoveredTarget[]> {
  const iface = options.iface ?? 'default';
  const timeoutMs = options.timeoutMs ?? 60_000;
  const base = ['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', portal.text, '-I', iface];
  const auth = options.auth;
  const secrets = auth?.password ? [auth.password] : [];
  let createdDb = false;
  try {
    if (auth?.method) {
      const r = await ctx.executor.run([...base, '-o', 'new'], { timeoutMs, checkExitCode: false });
      createdDb = r.exitCode === 0;
      const file = await stConfigFile(ctx, portal);
      if (!file) throw new TargetPortalLoginError(`no discovery record for ${portal.text}`, { details: { target_portal: portal.text } });
      await writeRecordSettings(ctx, file, chapSettings('discovery.sendtargets.auth', auth.method, auth.username, auth.password));
    }
    const r = await ctx.executor.run([...base, '--discover', '-o', 'nonpersistent'], { timeoutMs, secrets });
    return parseDiscovery(r.stdout);
  } catch (err) {
    if (err instanceof ProcessExecutionError) {
      if (err.exitCode === ISCSI_ERR_LOGIN_AUTH_FAILED) {
        throw new AuthenticationError(`discovery CHAP at ${portal.text} was refused`, { field: 'discovery_auth_password', details: { target_portal: portal.text }, cause: err });
      }
      throw new TargetPortalLoginError(`sendtargets discovery at ${portal.text} failed (iscsiadm status ${err.exitCode})`, { details: { target_portal: portal.text, exit_code: err.exitCode }, cause: err });
    }
    throw err;
  } finally {
    if (createdDb) await ctx.executor.run([...base, '-o', 'delete'], { timeoutMs, checkExitCode: false }).catch(() => undefined);
  }
}

async function stConfigFile(ctx: HostContext, portal: Portal): Promise<string | undefined> {
  for (const root of NODE_DB_ROOTS) {
    const dir = `${root}/send_targets/${portal.address},${portal.port}`;
    if ((await listDir(ctx, dir)).includes('st_config')) return `${dir}/st_config`;
  }
  return undefined;
}

/**
 * The initiator IQN of this host (`InitiatorName=` in `/etc/iscsi/initiatorname.iscsi`), or
 * `undefined` (os-brick `get_initiator`).
 */
export async function initiatorName(ctx: HostContext): Promise<string | undefined> {
  const text = await readFilePrivileged(ctx, '/etc/iscsi/initiatorname.iscsi');
  const m = text ? /^\s*InitiatorName\s*=\s*(\S+)/m.exec(text) : null;
  return m ? m[1] : undefined;
}
