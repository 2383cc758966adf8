/**
 * nextTurn(): yield to the event loop (I/O included) between commit slices.
 */
// Taken when this module loads, so a test's fake timers installed later
// cannot stall the log: this is scheduling, not a timer anyone waits on.
const immediate = typeof setImmediate === 'function' ? setImmediate : undefined
const timeout = setTimeout

/**
 * A promise that settles in a later macrotask, so pending I/O and timers run
 * first. Node: setImmediate. Browsers: a MessageChannel message, since a
 * zero timeout set from a timer is clamped to 4 ms after a few in a row.
 */
export const nextTurn: () => Promise<void> =
  immediate !== undefined
    ? () => new Promise((resolve) => immediate(resolve))
    : typeof MessageChannel === 'function'
      ? channelTurn()
      : () => new Promise((resolve) => timeout(resolve, 0))

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
