import type { Clock, LogEntry, SyncableLog } from '../../src/core/types.js'

/** Every entry a peer holding `remote` lacks, flattened from the pages the sync layer reads. */
export async function* readMissing(log: Pick<SyncableLog, 'readMissingPages'>, remote: Clock): AsyncGenerator<LogEntry, void, undefined> {
  for await (const page of log.readMissingPages(remote)) yield* page
}
