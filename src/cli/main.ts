#!/usr/bin/env node
/**
 * The `brick` command (commander). Every command takes `--json`; errors exit non-zero with a
 * status derived from the error code (see `exitCodeFor`): 2 bad input, usage or config, 3 not
 * found, 4 invalid state, 5 capacity, 6 privilege, 7 timeout, 8 device/login, 9 backend; 10 is
 * `host cleanup`'s "owned leftovers remain" (see `host-cleanup.ts`). Usage
 * errors (a missing option, an unknown command) are bad input too: exit 2 and, under `--json`,
 * the same error document as every other error (see `usage.ts`).
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { CommanderError, Option } from 'commander';
import { exitCodeFor, exitCodeForCode, InvalidInputError, NotFoundError } from '../errors.js';
import type { ConnectorProperties } from '../initiator/properties.js';
import type { Connector, ConnectorOptions, DeviceInfo } from '../initiator/connector.js';
import type { Executor } from '../exec/executor.js';
import type { GlobalFlags, Runtime } from './runtime.js';
import { printError, printObject, printRows, snapshotView, volumeView, connectionView } from './output.js';
import type { QuickstartStep } from './quickstart.js';
import { BrickCommand, exitStatusHelp, jsonRequested, usageError } from './usage.js';
import { requireRootHelper } from './privilege.js';
import { validateConnectorProperties } from './connector-document.js';
import type { Volume } from '../library/volume.js';
import type { SingleBar } from 'cli-progress';
import { registerCsiCommand } from '../csi/command.js';
import { registerHostCommand } from './host.js';

// Start-up (issue 18): `brick --help` loads commander and the command table only. The runtime
// (configuration, store, library, drivers), the connectors, the host context and the progress
// bars are imported by the commands that use them, below.

/** The connector for `protocol` (every connector registered first). */
async function connectorFor(protocol: string, options: ConnectorOptions & { lockPath?: string }): Promise<Connector> {
  await import('../initiator/connectors/index.js');
  return (await import('../initiator/factory.js')).connectorFor(protocol, options);
}
import { registerConnectionCommands } from './connection-commands.js';
import { registerHostCleanupCommand } from './host-cleanup.js';
import { addEncryptionOptions, encryptionOption, type EncryptionFlags } from './encryption-options.js';

const program = new BrickCommand();
// Set before any command is added: subcommands inherit the output and exit handling. Under
// --json commander's plain text is dropped; the entry point prints the JSON error instead.
program
  .exitOverride()
  .configureOutput({ writeErr: (text) => void (jsonRequested(process.argv.slice(2)) || process.stderr.write(text)) })
  .showHelpAfterError()
  .addHelpText('after', exitStatusHelp());
program
  .name('brick')
  .description('Volume discovery and local storage management: attach block volumes and drive storage backends (os-brick + cinderlib for Node.js).')
  .option('-c, --config <file>', 'configuration file, YAML or JSON (env BRICK_CONFIG)')
  .option('--json', 'print JSON instead of tables')
  .option('-b, --backend <name>', 'backend to use (default: the configured default)')
  .option('--root-helper <cmd>', 'prefix for privileged commands, e.g. "sudo -n" (default: none as root, "sudo -n" otherwise)')
  .option('-v, --verbose', 'structured debug logs (JSON lines, secrets masked) on stderr');

function flags(): GlobalFlags {
  return program.opts<GlobalFlags>();
}

let exitCode = 0;

async function progressReporter(json: boolean): Promise<((op: string, done: number, total: number) => void) | undefined> {
  if (json || !process.stderr.isTTY) return undefined;
  const { SingleBar, Presets } = await import('cli-progress');
  const bars = new Map<string, SingleBar>();
  return (op, done, total) => {
    let bar = bars.get(op);
    if (!bar) {
      bar = new SingleBar({ format: `${op} [{bar}] {percentage}% {value}/{total} MiB`, stream: process.stderr }, Presets.shades_classic);
      bar.start(Math.ceil(total / 1048576), 0);
      bars.set(op, bar);
    }
    bar.update(Math.floor(done / 1048576));
    if (done >= total) {
      bar.stop();
      bars.delete(op);
    }
  };
}

/**
 * Run `fn` with a runtime, print errors, set the exit status. `before` runs first, before the
 * configuration is loaded or the store opened: checks of the command's own input go there.
 */
async function withRuntime(fn: (rt: Runtime, json: boolean) => Promise<void>, before?: () => Promise<void>): Promise<void> {
  const json = Boolean(flags().json);
  let rt: Runtime | undefined;
  try {
    await before?.();
    const { createRuntime } = await import('./runtime.js');
    rt = await createRuntime(flags(), process.env, await progressReporter(json));
    await fn(rt, json);
  } catch (err) {
    printError(json, err);
    exitCode = exitCodeFor(err);
  } finally {
    await rt?.close().catch(() => undefined);
  }
}

/** Run `fn` without a runtime (host-side connector commands need no store). */
async function plain(fn: (json: boolean) => Promise<void>): Promise<void> {
  const json = Boolean(flags().json);
  try {
    await fn(json);
  } catch (err) {
    printError(json, err);
    exitCode = exitCodeFor(err);
  }
}

/**
 * Fail before anything changes when host-side work needs root that this process cannot get.
 * @throws {@link PrivilegeError} when not root and the root helper is missing or does not work
 */
async function needRoot(executor: Executor, task: string): Promise<void> {
  await requireRootHelper(executor, process.getuid?.() ?? 0, task, 'losetup, iscsiadm, nvme, multipath, blockdev');
}

/** A whole-number option value (e.g. `--device-scan-attempts`). @throws {@link InvalidInputError} naming `field` */
function wholeNumber(field: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidInputError(field, `must be a whole number, got ${JSON.stringify(value)}`);
    return Number(value);
  };
}

function parseSize(value: string, field: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(value.trim())) throw new InvalidInputError(field, `must be a whole number of GiB, got ${JSON.stringify(value)}`);
  return Number(value);
}

async function readJsonInput(file: string, field: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidInputError(field, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new InvalidInputError(field, `${file} is not a JSON object: ${(err as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Map Cinder's `driver_volume_type` to os-brick's connector protocol name. */
export function protocolForDriverVolumeType(t: string): string {
  const map: Record<string, string> = { iscsi: 'ISCSI', iser: 'ISER', fibre_channel: 'FIBRE_CHANNEL', nvmeof: 'NVMEOF', aoe: 'AOE', local: 'LOCAL', nfs: 'NFS', rbd: 'RBD', huaweisdshypervisor: 'HUAWEISDSHYPERVISOR' };
  return map[t.toLowerCase()] ?? t.toUpperCase();
}

/** Accept either connection properties or a full `{ driver_volume_type, data }` document. */
function splitConnectionDoc(doc: Record<string, unknown>): { protocol?: string; data: Record<string, unknown> } {
  if (typeof doc.driver_volume_type === 'string' && doc.data && typeof doc.data === 'object') {
    return { protocol: protocolForDriverVolumeType(doc.driver_volume_type), data: doc.data as Record<string, unknown> };
  }
  const inner = doc.conn_info as Record<string, unknown> | undefined;
  if (inner && typeof inner.driver_volume_type === 'string') return splitConnectionDoc(inner);
  return { data: doc };
}

/** The backend named by --backend, or every configured backend. */
async function selectedBackends(rt: Runtime) {
  return flags().backend ? [await rt.backend()] : rt.allBackends();
}

/**
 * The protocol and connection properties for a connector command: `PROTOCOL FILE` (FILE may be
 * `-`), or `--connection FILE` holding `{ driver_volume_type, data }` (the protocol comes from it).
 * @throws {@link InvalidInputError} (field `file`, `connection` or `protocol`)
 */
async function connectionTarget(protocolArg: string | undefined, file: string | undefined, connection: string | undefined): Promise<{ protocol: string; doc: { data: Record<string, unknown> } }> {
  const src = connection ?? file;
  if (!src) throw new InvalidInputError('file', 'give the connection properties as FILE (or -) or --connection FILE');
  const doc = splitConnectionDoc(await readJsonInput(src, connection ? 'connection' : 'file'));
  const protocol = connection ? doc.protocol : protocolArg;
  if (!protocol) throw new InvalidInputError('protocol', 'give the PROTOCOL (e.g. ISCSI) or a --connection document with driver_volume_type');
  return { protocol, doc };
}

async function findVolume(rt: Runtime, id: string): Promise<Volume> {
  const b = await rt.backend();
  return b.getVolume(id);
}

// ---- quickstart -------------------------------------------------------------------------
program
  .command('quickstart')
  .description('create, attach, write/read, snapshot, clone, extend, detach and delete a volume on the default backend, verifying every step')
  .option('--size <GiB>', 'volume size in GiB', '1')
  .action(async (o: { size: string }) => {
    await withRuntime(async (rt, json) => {
      const size = parseSize(o.size, 'size');
      if (!Number.isInteger(size) || size < 1) throw new InvalidInputError('size', `must be a whole number of GiB of at least 1, got ${o.size}`);
      const onStep = json || !process.stderr.isTTY ? undefined : (s: QuickstartStep) => process.stderr.write(`${s.ok ? 'ok  ' : 'FAIL'} ${s.name} (${s.seconds.toFixed(2)} s)${s.detail ? `: ${s.detail}` : ''}\n`);
      const { runQuickstart } = await import('./quickstart.js');
      const r = await runQuickstart(rt, { sizeGiB: size, uid: process.getuid?.() ?? 0, onStep });
      if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else {
        printRows(false, ['step', 'ok', 'seconds', 'detail'], r.steps.map((s) => ({ step: s.name, ok: s.ok ? 'ok' : 'FAILED', seconds: s.seconds.toFixed(3), detail: s.detail ?? '' })));
        const total = r.steps.reduce((a, s) => a + s.seconds, 0);
        process.stdout.write(r.ok ? `quickstart passed: ${r.steps.length} steps in ${total.toFixed(2)} s on ${r.device}\n` : `quickstart FAILED: ${String(r.error?.message ?? 'see the steps above')}\n`);
      }
      if (!r.ok) exitCode = typeof r.error?.code === 'string' ? exitCodeForCode(r.error.code) : 1;
    });
  });

// ---- volume -----------------------------------------------------------------------------
const volume = program.command('volume').description('volumes: create, attach to this host, connect for another host, snapshot, clone, extend, delete');
addEncryptionOptions(
  volume
    .command('create')
    .description('create a volume on the backend; prints it')
    .requiredOption('--size <GiB>', 'size in GiB (whole number)')
    .option('--name <name>', 'display name')
    .option('--description <text>', 'free-text description'),
).action(async (o: { size: string; name?: string; description?: string } & EncryptionFlags) =>
    withRuntime(async (rt, json) => {
      const v = await (await rt.backend()).createVolume({ size: parseSize(o.size, 'size'), name: o.name, description: o.description, encryption: encryptionOption(o) });
      printObject(json, volumeView(v));
    }),
  );
volume.command('list').description('list the volumes of the selected backend (--backend) or of every backend').action(async () =>
  withRuntime(async (rt, json) => {
    const vols = (await Promise.all((await selectedBackends(rt)).map((b) => b.getVolumes()))).flat();
    printRows(json, ['id', 'name', 'size', 'status', 'backend', 'attached'], vols.map(volumeView));
  }),
);
volume
  .command('show <id>')
  .description('show one volume, its snapshots and connections')
  .action(async (id: string) => withRuntime(async (rt, json) => printObject(json, volumeView(await findVolume(rt, id)))));
volume
  .command('extend <id> <newSizeGiB>')
  .description('grow a volume (and the device, when attached); prints the new size in bytes')
  .action(async (id: string, size: string) =>
    withRuntime(async (rt, json) => {
      const v = await findVolume(rt, id);
      const bytes = await v.extend(parseSize(size, 'new_size'));
      printObject(json, { ...volumeView(v), size_bytes: bytes });
    }),
  );
volume
  .command('delete <id>')
  .description('delete a volume that has no snapshots and is not attached or connected')
  .action(async (id: string) =>
    withRuntime(async (rt, json) => {
      const v = await findVolume(rt, id);
      await v.delete();
      printObject(json, { id, status: 'deleted' });
    }),
  );
volume
  .command('attach <id>')
  .description('attach to this host (needs root or a working root helper); prints the device')
  .action(async (id: string) =>
    withRuntime(async (rt, json) => {
      await needRoot(rt.context.executor, 'brick volume attach sets up a device on this host');
      const v = await findVolume(rt, id);
      const c = await v.attach();
      printObject(json, { ...connectionView(c), path: c.path });
    }),
  );
volume
  .command('detach <id>')
  .description('detach from this host what `volume attach` attached (needs root or a working root helper)')
  .option('--force', 'accept data loss to leave a clean host')
  .option('--ignore-errors', 'do not fail on cleanup errors')
  .action(async (id: string, o: { force?: boolean; ignoreErrors?: boolean }) =>
    withRuntime(async (rt, json) => {
      await needRoot(rt.context.executor, 'brick volume detach removes a device from this host');
      const v = await findVolume(rt, id);
      await v.detach({ force: o.force, ignoreErrors: o.ignoreErrors });
      printObject(json, volumeView(v));
    }),
  );
volume
  .command('snapshot <id>')
  .description('snapshot a volume; prints the snapshot')
  .option('--name <name>', 'display name')
  .option('--description <text>', 'free-text description')
  .action(async (id: string, o: { name?: string; description?: string }) =>
    withRuntime(async (rt, json) => {
      const s = await (await findVolume(rt, id)).createSnapshot(o);
      printObject(json, snapshotView(s));
    }),
  );
volume
  .command('clone <id>')
  .description('create a new volume holding a copy of a volume; prints the new volume')
  .option('--name <name>', 'display name of the new volume')
  .option('--size <GiB>', 'size of the new volume in GiB (default: the source size)')
  .action(async (id: string, o: { name?: string; size?: string }) =>
    withRuntime(async (rt, json) => {
      const v = await (await findVolume(rt, id)).clone({ name: o.name, size: o.size === undefined ? undefined : parseSize(o.size, 'size') });
      printObject(json, volumeView(v));
    }),
  );
volume
  .command('connect <id>')
  .description('export and map the volume for another host; prints the connection info for that host')
  .requiredOption('--connector <file>', "the consumer's connector properties (JSON, from `brick connector properties`; - for stdin)")
  .action(async (id: string, o: { connector: string }) => {
    let connector: ConnectorProperties | undefined;
    const readConnector = async () => void (connector = validateConnectorProperties(await readJsonInput(o.connector, 'connector')));
    await withRuntime(async (rt) => {
      const c = await (await findVolume(rt, id)).connect(connector!);
      // The consumer needs the secrets in conn_info to log in: this document is the wire format.
      process.stdout.write(`${JSON.stringify({ connection_id: c.id, volume_id: id, ...(c.connInfo as object) }, null, 2)}\n`);
    }, readConnector);
  });
volume
  .command('disconnect <id>')
  .description('terminate a connection made with `volume connect` (the consumer detaches first)')
  .requiredOption('--connection <connectionId>', 'the connection id `volume connect` printed')
  .action(async (id: string, o: { connection: string }) =>
    withRuntime(async (rt, json) => {
      const v = await findVolume(rt, id);
      const c = v.connections.find((x) => x.id === o.connection);
      if (!c) throw new InvalidInputError('connection', `volume ${id} has no connection ${o.connection}`);
      await c.disconnect();
      printObject(json, volumeView(v));
    }),
  );

// ---- snapshot ---------------------------------------------------------------------------
const snapshot = program.command('snapshot').description('snapshots: list, delete, create a volume from one');
snapshot
  .command('list')
  .description('list the snapshots of the selected backend (--backend) or of every backend')
  .option('--volume <id>', 'only the snapshots of this volume')
  .action(async (o: { volume?: string }) =>
    withRuntime(async (rt, json) => {
      const snaps = (await Promise.all((await selectedBackends(rt)).map((b) => b.getSnapshots()))).flat().filter((s) => !o.volume || s.volumeId === o.volume);
      printRows(json, ['id', 'name', 'volume_id', 'volume_size', 'status'], snaps.map(snapshotView));
    }),
  );
async function findSnapshot(rt: Runtime, id: string) {
  const all = await (await rt.backend()).getSnapshots();
  const s = all.find((x) => x.id === id);
  if (!s) throw new NotFoundError('snapshot', id);
  return s;
}
snapshot.command('delete <id>').description('delete a snapshot').action(async (id: string) =>
  withRuntime(async (rt, json) => {
    await (await findSnapshot(rt, id)).delete();
    printObject(json, { id, status: 'deleted' });
  }),
);
snapshot
  .command('create-volume <id>')
  .description('create a new volume from a snapshot; prints the new volume')
  .option('--name <name>', 'display name of the new volume')
  .option('--size <GiB>', 'size of the new volume in GiB (default: the snapshot size)')
  .action(async (id: string, o: { name?: string; size?: string }) =>
    withRuntime(async (rt, json) => {
      const v = await (await findSnapshot(rt, id)).createVolume({ name: o.name, size: o.size === undefined ? undefined : parseSize(o.size, 'size') });
      printObject(json, volumeView(v));
    }),
  );

// ---- backend ----------------------------------------------------------------------------
const backend = program.command('backend').description('storage backends: list them, show their capacity, re-create their exports after a reboot');
backend.command('list').description('list the configured backends and their drivers').action(async () =>
  withRuntime(async (rt, json) => {
    printRows(
      json,
      ['name', 'driver', 'default'],
      rt.config.backends.map((b) => ({ name: b.volume_backend_name, driver: b.volume_driver, default: b.volume_backend_name === rt.config.defaultBackend })),
    );
  }),
);
backend
  .command('stats')
  .description("the selected backend's capacity and capabilities (Cinder's volume stats)")
  .option('--refresh', 'ask the driver again instead of using cached stats')
  .action(async (o: { refresh?: boolean }) =>
    withRuntime(async (rt, json) => {
      const s = await (await rt.backend()).stats({ refresh: o.refresh ?? true });
      printObject(json, s as Record<string, unknown>);
    }),
  );
backend
  .command('ensure-exports')
  .description('after a reboot of the storage host: re-create the exports (loop devices, targets) of the volumes that have connections, on the selected backend (--backend) or every backend; prints one row per volume (no other command re-creates exports)')
  .action(async () =>
    withRuntime(async (rt, json) => {
      const outcomes = [];
      for (const b of await selectedBackends(rt)) outcomes.push(...(await b.ensureExports()));
      const rows = outcomes.map((o) => ({ volume_id: o.volumeId, backend: o.backend, result: o.error ? 'failed' : 'ensured', error: o.error?.message ?? null }));
      printRows(json, ['volume_id', 'backend', 'result', 'error'], rows);
      const failed = outcomes.find((o) => o.error);
      if (failed) exitCode = exitCodeFor(failed.error);
    }),
  );

// ---- connector --------------------------------------------------------------------------
const connector = program.command('connector').description('host side: connector properties, attach and detach by connection info');
connector
  .command('properties')
  .description("this host's connector properties (os-brick's keys), for `volume connect` on the storage side")
  .option('--multipath', 'this host wants multipath')
  .option('--enforce-multipath', 'fail attaches that cannot get multipath')
  .option('--my-ip <ip>', 'the IP address this host is reached on (default: the first non-internal IPv4 address)')
  .option('--host <name>', 'the host name to report (default: the system host name)')
  .action(async (o: { multipath?: boolean; enforceMultipath?: boolean; myIp?: string; host?: string }) =>
    plain(async (json) => {
      // As os-brick does, create the NVMe host NQN/id when missing (root only: it writes /etc/nvme).
      const root = (process.getuid?.() ?? 0) === 0;
      const { getConnectorProperties } = await import('../initiator/properties.js');
      const { createHostContext } = await import('../host/context.js');
      const hostCtx = createHostContext({ rootHelper: (await connectorOptions({})).rootHelper });
      const p = await getConnectorProperties({ multipath: o.multipath, enforceMultipath: o.enforceMultipath, myIp: o.myIp, host: o.host, ctx: hostCtx, ensureNvmeIdentity: root ? hostCtx : undefined });
      if (json) process.stdout.write(`${JSON.stringify(p, null, 2)}\n`);
      else printObject(false, p);
    }),
  );
/**
 * Fail before anything changes when `protocol`'s host-side work needs root this process cannot
 * get. LOCAL runs nothing on the host (it hands back the path it was given), so it needs none.
 * @throws {@link PrivilegeError}
 */
async function needHostRoot(protocol: string, rootHelper: string[], task: string): Promise<void> {
  if (protocol.toUpperCase() !== 'LOCAL') await needRoot(new (await import('../exec/executor.js')).ProcessExecutor({ rootHelper }), task);
}
async function connectorOptions(o: { multipath?: boolean; rootHelper?: string }) {
  const rh = flags().rootHelper;
  const { configuredLockPath } = await import('./runtime.js');
  return {
    useMultipath: Boolean(o.multipath),
    rootHelper: rh ? rh.split(/\s+/).filter(Boolean) : (process.getuid?.() ?? 0) === 0 ? [] : ['sudo', '-n'],
    lockPath: configuredLockPath(flags(), process.env),
    // os-brick reads the SDS CLI location from this variable; the connector takes it as an option.
    ...(process.env.HUAWEISDSHYPERVISORCLI_PATH ? { cliPath: process.env.HUAWEISDSHYPERVISORCLI_PATH } : {}),
    ...(process.env.BRICK_MOUNT_POINT_BASE ? { mountPointBase: process.env.BRICK_MOUNT_POINT_BASE } : {}),
  };
}
connector
  .command('connect')
  .description('attach by connection properties (FILE, or - for stdin) or a connection info document (--connection); prints the device info')
  .option('--connection <file>', 'a `{ driver_volume_type, data }` document, e.g. from `brick volume connect`')
  .argument('[protocol]', 'the connector protocol, e.g. ISCSI, NVMEOF, FIBRE_CHANNEL, LOCAL (not needed with --connection)')
  .argument('[file]', 'the connection properties (JSON), or - for stdin')
  .option('--multipath', 'use multipath')
  .addOption(new Option('--device-scan-attempts <n>', 'how many times to look for the device before giving up').argParser(wholeNumber('device_scan_attempts')))
  .action(async (protocolArg: string | undefined, file: string | undefined, o: { connection?: string; multipath?: boolean; deviceScanAttempts?: number }) =>
    plain(async () => {
      const { protocol, doc } = await connectionTarget(protocolArg, file, o.connection);
      const options = await connectorOptions(o);
      await needHostRoot(protocol, options.rootHelper, 'brick connector connect attaches a device to this host');
      const journal = (await import('./runtime.js')).configuredJournal(flags(), process.env);
      const conn = await connectorFor(protocol, { ...options, deviceScanAttempts: o.deviceScanAttempts, ctx: { journal } });
      const device = await conn.connectVolume(doc.data);
      process.stdout.write(`${JSON.stringify(device, null, 2)}\n`);
      // Multipath logins to slow portals finish in the background; wait for them (and their
      // cleanup on failure) before this process exits.
      const pending = conn as { settled?: () => Promise<void> };
      if (typeof pending.settled === 'function') await pending.settled();
    }),
  );
connector
  .command('disconnect')
  .description('detach what `connector connect` attached')
  .option('--connection <file>', 'a `{ driver_volume_type, data }` document')
  .argument('[protocol]', 'the connector protocol, e.g. ISCSI (not needed with --connection)')
  .argument('[file]', 'the connection properties (JSON), or - for stdin')
  .option('--device <file>', 'the device info JSON `connector connect` printed (default: what the host attach journal recorded for these properties)')
  .option('--multipath', 'the device was attached with multipath')
  .option('--force', 'accept data loss to leave a clean host')
  .option('--ignore-errors', 'do not fail on cleanup errors')
  .action(async (protocolArg: string | undefined, file: string | undefined, o: { connection?: string; device?: string; multipath?: boolean; force?: boolean; ignoreErrors?: boolean }) =>
    plain(async (json) => {
      const { protocol, doc } = await connectionTarget(protocolArg, file, o.connection);
      const device = o.device === undefined ? null : ((await readJsonInput(o.device, 'device')) as DeviceInfo);
      const options = await connectorOptions(o);
      await needHostRoot(protocol, options.rootHelper, 'brick connector disconnect removes a device from this host');
      const journal = (await import('./runtime.js')).configuredJournal(flags(), process.env);
      await (await connectorFor(protocol, { ...options, ctx: { journal } })).disconnectVolume(doc.data, device, { force: o.force, ignoreErrors: o.ignoreErrors });
      printObject(json, { disconnected: true, path: device?.path ?? null });
    }),
  );
connector
  .command('extend')
  .description('make the host see a grown volume; prints the new size in bytes')
  .argument('[protocol]', 'the connector protocol, e.g. ISCSI (not needed with --connection)')
  .argument('[file]', 'the connection properties (JSON), or - for stdin')
  .option('--connection <file>', 'a `{ driver_volume_type, data }` document')
  .option('--multipath', 'the device was attached with multipath')
  .action(async (protocolArg: string | undefined, file: string | undefined, o: { connection?: string; multipath?: boolean }) =>
    plain(async (json) => {
      const { protocol, doc } = await connectionTarget(protocolArg, file, o.connection);
      const bytes = await (await connectorFor(protocol, await connectorOptions(o))).extendVolume(doc.data);
      printObject(json, { size_bytes: bytes });
    }),
  );

// ---- keyvalue (remote attach through shared persistence) ---------------------------------
const kv = program.command('kv').description('key-value store shared through persistence (cinderlib KeyValue)');
kv.command('get [key]').description('list every key and value, or the one named').action(async (key?: string) =>
  withRuntime(async (rt, json) => printRows(json, ['key', 'value'], (await rt.store.getKeyValues(key)) as unknown as Record<string, unknown>[])),
);
kv.command('set <key> <value>').description('set a key to a value (replacing any value it had)').action(async (key: string, value: string) =>
  withRuntime(async (rt, json) => {
    await rt.store.setKeyValue({ key, value });
    printObject(json, { key, value });
  }),
);
// A missing key is NOT_FOUND (exit 3), as `volume delete` and `snapshot delete` of a missing id are.
kv.command('delete <key>')
  .description('delete a key (exit 3 when there is no such key)')
  .action(async (key: string) =>
    withRuntime(async (rt, json) => {
      if ((await rt.store.getKeyValues(key)).length === 0) throw new NotFoundError('key', key, { field: 'key' });
      await rt.store.deleteKeyValue(key);
      printObject(json, { key, status: 'deleted' });
    }),
  );

// ---- connections ------------------------------------------------------------------------
registerConnectionCommands(program, { withRuntime, selectedBackends });

registerCsiCommand(program, flags, (code) => (exitCode = code));
const hostCommand = registerHostCommand(program, flags, (code) => (exitCode = code));

// ---- host -------------------------------------------------------------------------------
registerHostCleanupCommand(hostCommand, flags, (code) => (exitCode = code));

// ---- simulators --------------------------------------------------------------------------
/** Serve until SIGINT/SIGTERM, then close. */
function serveUntilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => void close().then(resolve);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
function portOption(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidInputError('port', `must be 0-65535, got ${v}`);
  return n;
}
const sim = program.command('sim').description('array simulators for trying the drivers without hardware (loopback only)');
sim
  .command('eseries')
  .description('a SANtricity Web Services Proxy simulator (passwords from ESERIES_SIM_PASSWORD / ESERIES_SIM_ARRAY_PASSWORD)')
  .option('--port <n>', 'TCP port (default: a free one)', portOption)
  .option('--host <addr>', 'listen address', '127.0.0.1')
  .option('--login <user>', 'Web Services login', 'rw')
  .action(async (o: { port?: number; host: string; login: string }) =>
    plain(async () => {
      const { startEseriesSimulator } = await import('../../sims/eseries/simulator.js');
      const s = await startEseriesSimulator({ port: o.port, host: o.host, login: o.login, password: process.env.ESERIES_SIM_PASSWORD, arrayPassword: process.env.ESERIES_SIM_ARRAY_PASSWORD });
      const u = new URL(s.url);
      const backend = { volume_backend_name: 'eseries-sim', volume_driver: 'netapp_eseries', netapp_server_hostname: u.hostname, netapp_server_port: Number(u.port), netapp_transport_type: 'http', netapp_login: o.login, netapp_password: '<ESERIES_SIM_PASSWORD>', netapp_controller_ips: s.state.options.controllerAddresses.join(',') };
      process.stdout.write(`${JSON.stringify({ url: s.url, webservice_path: '/devmgr/v2', backend })}\n`);
      await serveUntilSignal(() => s.close());
    }),
  );
sim
  .command('flashsystem')
  .description('an IBM FlashSystem SSH CLI simulator (login password from FLASHSYSTEM_SIM_PASSWORD, default passw0rd)')
  .option('--port <n>', 'TCP port (default: a free one)', portOption)
  .option('--host <addr>', 'listen address', '127.0.0.1')
  .option('--login <user>', 'SSH login', 'superuser')
  .action(async (o: { port?: number; host: string; login: string }) =>
    plain(async () => {
      const { startFlashSystemSimulator } = await import('../../sims/flashsystem/index.js');
      const s = await startFlashSystemSimulator({ port: o.port, host: o.host, users: [{ name: o.login, password: process.env.FLASHSYSTEM_SIM_PASSWORD ?? 'passw0rd' }] });
      const backend = { volume_backend_name: 'flashsystem-sim', volume_driver: 'ibm_flashsystem', san_ip: s.host, san_ssh_port: s.port, san_login: o.login, san_password: '<FLASHSYSTEM_SIM_PASSWORD>', san_ssh_host_key: s.hostKeyFingerprint, flashsystem_connection_protocol: 'iSCSI' };
      process.stdout.write(`${JSON.stringify({ host: s.host, port: s.port, host_key: s.publicKey, host_key_fingerprint: s.hostKeyFingerprint, backend })}\n`);
      await serveUntilSignal(() => s.close());
    }),
  );

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // commander has printed its text already (unless --json); errors thrown by option parsers
  // have not been printed.
  const failure = usageError(err);
  const json = jsonRequested(process.argv.slice(2));
  if (failure === undefined) exitCode = 0;
  else {
    if (json || !(err instanceof CommanderError)) printError(json, failure);
    exitCode = exitCodeFor(failure);
  }
}
process.exitCode = exitCode;
