/**
 * `brick connection list` and `brick connection show ID`: the connections (Cinder's volume
 * attachments) in the store, and one of them with, when it is attached on this host, the
 * volume's condition (`connection.checkCondition()`: device, paths and their states, read test;
 * issue #16).
 *
 * @module
 */
import type { Command } from 'commander';
import { NotFoundError } from '../errors.js';
import type { Backend } from '../library/backend.js';
import type { Connection } from '../library/connection.js';
import type { VolumeCondition } from '../initiator/connector.js';
import { connectionView, printObject, printRows } from './output.js';
import type { Runtime } from './runtime.js';

/** How the commands run: `withRuntime` of `main.ts` (runtime, errors, exit status) and the backends `--backend` selects. */
export interface ConnectionCommandSeams {
  withRuntime(fn: (rt: Runtime, json: boolean) => Promise<void>): Promise<void>;
  selectedBackends(rt: Runtime): Promise<Backend[]>;
}

/**
 * Connection `id` loaded through its backend.
 * @throws {@link NotFoundError} (field `id`) when no connection has that id
 */
export async function findConnection(rt: Runtime, id: string): Promise<Connection> {
  const [rec] = await rt.store.getConnections({ id });
  if (!rec) throw new NotFoundError('connection', id, { field: 'id' });
  const vol = await (await rt.backend(rec.backend)).getVolume(rec.volume_id);
  const conn = vol.connections.find((c) => c.id === id);
  if (!conn) throw new NotFoundError('connection', id, { field: 'id' });
  return conn;
}

/**
 * What `connection show` prints: the connection, and `condition` (a {@link VolumeCondition})
 * when it is attached on this host (its `attached_host` is this host's name), else `condition: null`.
 * A condition check is never an error of the command: the check itself never throws past bad input.
 */
export async function connectionShowView(rt: Runtime, conn: Connection): Promise<Record<string, unknown>> {
  const here = conn.device !== null && (conn.attachedHost === null || conn.attachedHost === rt.context.hostName);
  const condition: VolumeCondition | null = here ? await conn.checkCondition() : null;
  return { ...connectionView(conn), connector_host: conn.connectorInfo.host ?? null, attach_mode: conn.attachMode, condition };
}

/** The condition as table cells: `abnormal`, `message`, one `path` line per path (`sdc  failed  10.0.0.2:3260  dm F`). */
function conditionCells(c: VolumeCondition | null): Record<string, unknown> {
  if (!c) return { condition: 'not attached on this host' };
  const paths = c.paths.map((p) => [p.name, p.state, p.portal ?? '', p.detail ?? ''].join('  ').trim()).join('\n');
  return { condition: c.abnormal ? 'ABNORMAL' : 'normal', condition_message: c.message, paths };
}

/** Add `connection list` and `connection show ID` to `program`. */
export function registerConnectionCommands(program: Command, seams: ConnectionCommandSeams): void {
  const group = program.command('connection').description('connections: the attachments and exports of volumes');
  group
    .command('list')
    .description('list the connections of the selected backend (--backend) or of every backend')
    .option('--volume <id>', 'only the connections of this volume')
    .action(async (o: { volume?: string }) =>
      seams.withRuntime(async (rt, json) => {
        const vols = (await Promise.all((await seams.selectedBackends(rt)).map((b) => b.getVolumes()))).flat().filter((v) => !o.volume || v.id === o.volume);
        printRows(json, ['id', 'volume_id', 'protocol', 'status', 'attached_host', 'path'], vols.flatMap((v) => v.connections.map(connectionView)));
      }),
    );
  group
    .command('show <id>')
    .description('show one connection and, when it is attached on this host, the volume condition: device, paths and their states, read test')
    .action(async (id: string) =>
      seams.withRuntime(async (rt, json) => {
        const view = await connectionShowView(rt, await findConnection(rt, id));
        if (json) return printObject(true, view);
        const { condition, ...rest } = view;
        printObject(false, { ...rest, ...conditionCells(condition as VolumeCondition | null) });
      }),
    );
}
