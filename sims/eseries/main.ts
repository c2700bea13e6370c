/**
 * Run the SANtricity Web Services simulator on its own:
 * `node dist/sims/eseries/main.js [--port N] [--host ADDR] [--login USER] [--embedded]`.
 * The Web Services password and the array password are read from the environment
 * (`ESERIES_SIM_PASSWORD`, `ESERIES_SIM_ARRAY_PASSWORD`) so they never show in process listings.
 * Prints one JSON line `{ url, webservice_path }` and serves until SIGINT/SIGTERM.
 *
 * @module
 */
import { startEseriesSimulator, type EseriesSimulatorOptions } from './simulator.js';

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Parse the command line and environment into simulator options. */
export function simulatorOptionsFromArgs(argv: string[], env: NodeJS.ProcessEnv): EseriesSimulatorOptions {
  const opts: EseriesSimulatorOptions = {};
  const port = argValue(argv, '--port');
  if (port !== undefined) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid --port: ${port}`);
    opts.port = n;
  }
  const host = argValue(argv, '--host');
  if (host !== undefined) opts.host = host;
  const login = argValue(argv, '--login');
  if (login !== undefined) opts.login = login;
  if (env.ESERIES_SIM_PASSWORD) opts.password = env.ESERIES_SIM_PASSWORD;
  if (env.ESERIES_SIM_ARRAY_PASSWORD) opts.arrayPassword = env.ESERIES_SIM_ARRAY_PASSWORD;
  if (argv.includes('--embedded')) opts.mode = 'embedded';
  return opts;
}

async function main(): Promise<void> {
  const sim = await startEseriesSimulator(simulatorOptionsFromArgs(process.argv.slice(2), process.env));
  process.stdout.write(JSON.stringify({ url: sim.url, webservice_path: '/devmgr/v2', mode: sim.state.options.mode }) + '\n');
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  });
}
