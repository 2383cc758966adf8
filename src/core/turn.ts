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

/** nextTurn() over one MessageChannel, opened on first use. */
function channelTurn(): () => Promise<void> {
  let channel: MessageChannel | undefined
  const waiting: (() => void)[] = []
  return () =>
    new Promise((resolve) => {
      if (channel === undefined) {
        channel = new MessageChannel()
        channel.port1.onmessage = () => waiting.shift()?.()
      }
      waiting.push(resolve)
      channel.port2.postMessage(null)
    })
}
