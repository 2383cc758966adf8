// What integration suites watch for: status events, and failures escaping everything.
import { afterAll, beforeAll } from 'vitest'

interface StatusSource {
  status: { on(event: string, handler: (info: any) => void): unknown; off(event: string, handler: (info: any) => void): unknown }
}

/** Resolves with the next status `event` of `e` whose payload passes `match`; rejects after `ms`. */
export function nextStatus(e: StatusSource, event: string, match: (info: any) => boolean = () => true, ms = 20_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const handler = (info: any) => {
      if (!match(info)) return
      clearTimeout(timer)
      e.status.off(event, handler)
      resolve(info)
    }
    const timer = setTimeout(() => {
      e.status.off(event, handler)
      reject(new Error(`timed out waiting for status ${event}`))
    }, ms)
    e.status.on(event, handler)
  })
}

/** Collects, while the calling suite runs, every unhandled rejection and uncaught exception: a suite asserts it stays empty. */
export function collectEscapes(): unknown[] {
  const escaped: unknown[] = []
  const onEscape = (err: unknown): void => {
    escaped.push(err)
  }
  beforeAll(() => {
    process.on('unhandledRejection', onEscape)
    process.on('uncaughtException', onEscape)
  })
  afterAll(() => {
    process.off('unhandledRejection', onEscape)
    process.off('uncaughtException', onEscape)
  })
  return escaped
}
