/**
 * `brick/testing`: what Brick's own tests use, for users who test their code against Brick.
 *
 * - {@link RecordingExecutor}: answers programs from handlers and records every call (argv with
 *   secrets masked as the real executor would log them); an unexpected command fails.
 * - {@link createFixtureTree} / {@link fixtureContext}: a scratch host root (`/sys`, `/dev`, ...)
 *   and a host context over it, so connector code runs against files instead of a kernel.
 * - {@link createCapturingLogger}: a pino logger whose lines a test can read (for "no secret is
 *   logged" assertions).
 * - The array simulators: {@link startEseriesSimulator} (the NetApp E-Series / SANtricity Web
 *   Services REST API over HTTPS) and {@link startFlashSystemSimulator} (the IBM FlashSystem /
 *   Storwize SSH CLI), with in-memory state and fault injection; point Brick's drivers, or your
 *   own client, at them.
 *
 * @module
 */
export { RecordingExecutor, type RecordedCall, type FakeHandler, type FakeMatcher, type FakeResult } from '../exec/recording.js';
export { createCapturingLogger } from '../log.js';
export { createFixtureTree, fixtureContext, type FixtureEntry, type FixtureTree } from './fixture-tree.js';
export {
  startEseriesSimulator,
  EseriesSimState,
  type EseriesSimulator,
  type EseriesSimulatorOptions,
  type SimFault as EseriesSimFault,
  type SimPoolSpec as EseriesSimPoolSpec,
  type SimPortalSpec as EseriesSimPortalSpec,
} from '../../sims/eseries/simulator.js';
export {
  startFlashSystemSimulator,
  generateSshKeyPair,
  FlashSystemState,
  type FlashSystemSimulator,
  type FlashSystemSimulatorOptions,
  type SimulatorUser as FlashSystemSimulatorUser,
  type SimFault as FlashSystemSimFault,
} from '../../sims/flashsystem/index.js';
