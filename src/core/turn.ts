/**
 * A promise that settles in a later macrotask, so pending I/O and timers run
 * first. Node: setImmediate. Browsers: a MessageChannel message, since a
 * zero timeout set from a timer is clamped to 4 ms after a few in a row.
 */
export const nextTurn: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise((resolve) => setImmediate(resolve))
    : typeof MessageChannel === 'function'
      ? channelTurn()
      : () => new Promise((resolve) => setTimeout(resolve, 0))

function channelTurn(): () => Promise<void> {
  const channel = new MessageChannel()
  const waiting: (() => void)[] = []
  channel.port1.onmessage = () => waiting.shift()?.()
  return () =>
    new Promise((resolve) => {
      waiting.push(resolve)
      channel.port2.postMessage(null)
    })
}
