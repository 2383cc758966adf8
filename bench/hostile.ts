// Issue 15's hostile-load scenario: a hub in a child process under each
// attack at the figures (time-bounded), with its peak RSS and an
// honest peer's time to sync 1k events, beside the same figures without an
// attack measured in the same run on a hub started the same way. Targets:
// RSS at most 2x, honest sync at most 3x the no-attack figures.
// Attacks 4, 5, 7 and 9 put no load on a hub once refused (they are
// asserted in test/hostile.test.ts, event-size, discovery and cli tests).
import {
  bigFramesBeforeAuth,
  costlyFrames,
  honestSync,
  hugeClocks,
  idleSockets,
  pingsWithoutReading,
  spawnHub,
  type Transport,
} from '../test/helpers/hostile.js'
import { printJson } from './common.js'

const EVENTS = 1000
/** Longest any one attack may run. */
const ATTACK_MS = 20_000

interface Scenario {
  attack: string
  transport: Transport
  /** Starts the attack; resolves when it is over. */
  run?: (port: number) => Promise<unknown>
}

const scenarios: Scenario[] = []
for (const transport of ['tcp', 'websocket'] as const) {
  scenarios.push(
    { attack: 'none', transport },
    // 1: 240 MiB of pings over TCP, 60 MiB over WebSocket, never reading.
    { attack: '1-pings-without-reading', transport, run: (port) => pingsWithoutReading(port, transport, (transport === 'tcp' ? 240 : 60) * 1024 * 1024, ATTACK_MS) },
    // 2: 260 sessions each sending a ~4 MiB Clock of 185k writers.
    { attack: '2-huge-clocks', transport, run: (port) => hugeClocks(port, transport, 260, 185_000) },
    // 6: 1000 unauthenticated connections each sending 4 MiB - 1 bytes of one frame.
    { attack: '6-frames-before-auth', transport, run: (port) => bigFramesBeforeAuth(port, transport, 1000, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024 - 1) },
    // 8: 4 MiB frames of nodes with thousands of links (122k links per frame), from 8 sessions.
    { attack: '8-costly-frames', transport, run: (port) => Promise.all(Array.from({ length: 8 }, () => costlyFrames(port, transport, 4, 8000))) },
  )
}
// 3: 2000 idle sockets, then 1030 slowloris ones (a header byte every 20 s).
scenarios.push({
  attack: '3-idle-and-slowloris-sockets',
  transport: 'tcp',
  run: async (port) => {
    const idle = await idleSockets(port, 2000)
    const slow = await idleSockets(port, 1030, true, 20_000)
    await new Promise((r) => setTimeout(r, 3000))
    idle.stop()
    slow.stop()
  },
})

async function measure({ attack, transport, run }: Scenario) {
  const hub = await spawnHub({ events: EVENTS })
  try {
    // The first sync pays for warming up: every scenario measures a later one.
    await honestSync(hub.port, transport, EVENTS)
    hub.resetPeak()
    const attackDone = run?.(hub.port)
    await new Promise((r) => setTimeout(r, run ? 500 : 0))
    const ms = await honestSync(hub.port, transport, EVENTS, 120_000)
    await attackDone
    return { ms: Math.round(ms), hubPeakRssMb: Math.round(hub.peakRssMb()), hubAlive: hub.alive() }
  } finally {
    await hub.close()
  }
}

const baselines = new Map<Transport, { ms: number; hubPeakRssMb: number }>()
for (const scenario of scenarios) {
  const result = await measure(scenario)
  if (scenario.attack === 'none') baselines.set(scenario.transport, result)
  const base = baselines.get(scenario.transport) ?? baselines.get('tcp')!
  printJson({
    bench: 'hostile',
    scenario: scenario.attack,
    transport: scenario.transport,
    events: EVENTS,
    ...result,
    noAttack: base,
    rssOfNoAttack: Math.round((result.hubPeakRssMb / base.hubPeakRssMb) * 100) / 100,
    syncOfNoAttack: Math.round((result.ms / base.ms) * 100) / 100,
  })
}
