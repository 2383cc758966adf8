import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import type { Db } from '../core/emitter.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { KnownPeerSchema, type KnownPeer } from '../gen/hyperemitter/v1/peer_pb.js'
import type { KnownPeerRecord, KnownPeerStore } from './peers.js'

/**
 * Peers this emitter connected to, kept in their own sublevel of the
 * application's db so a restart reconnects by itself, with the token each
 * was dialed with (in clear: it is whatever the application passed to
 * connect()). Also remembers the last EventPeer announced, so an unchanged
 * address is not announced again.
 */
export class DbKnownPeers implements KnownPeerStore {
  private readonly peers
  private readonly meta

  constructor(db: Db) {
    const root = db.sublevel<string, Uint8Array>('hyperemitter-peers', { keyEncoding: 'utf8', valueEncoding: 'view' })
    this.peers = root.sublevel<string, Uint8Array>('known', { keyEncoding: 'utf8', valueEncoding: 'view' })
    this.meta = root.sublevel<string, Uint8Array>('meta', { keyEncoding: 'utf8', valueEncoding: 'view' })
  }

  /** Every remembered peer, with its token when one was stored. */
  async list(): Promise<KnownPeerRecord[]> {
    const entries = await storage(() => this.peers.iterator().all())
    return entries.map(([address, value]) => ({ address, ...decode(value) }))
  }

  /**
   * Remember (or refresh) a peer; lastSynced is Unix ms of its last
   * completed catch-up (0: never). The record holds `token` when given (and
   * non-empty), and no token otherwise: it replaces what was stored.
   */
  async remember(address: string, lastSynced: number, token?: string): Promise<void> {
    const value = toBinary(KnownPeerSchema, create(KnownPeerSchema, { address, lastSynced: BigInt(lastSynced), token: token ?? '' }))
    await storage(() => this.peers.put(address, value))
  }

  async forget(address: string): Promise<void> {
    await storage(() => this.peers.del(address))
  }

  /** The last synced time recorded for `address`, or undefined. */
  async lastSynced(address: string): Promise<number | undefined> {
    const value = await storage(() => this.peers.get(address))
    return value === undefined ? undefined : decode(value).lastSynced
  }

  /** Bytes of the last EventPeer this emitter announced, if any. */
  async lastAnnounced(): Promise<Uint8Array | undefined> {
    return storage(() => this.meta.get('announced'))
  }

  async setLastAnnounced(bytes: Uint8Array): Promise<void> {
    await storage(() => this.meta.put('announced', bytes))
  }
}

/**
 * A stored record's last synced time and token (none in records written
 * before tokens were stored). A record that does not decode still names a
 * peer, by its key: it is reconnected without a token rather than dropped.
 */
function decode(value: Uint8Array): { lastSynced: number; token?: string } {
  let message: KnownPeer
  try {
    message = fromBinary(KnownPeerSchema, value)
  } catch {
    return { lastSynced: 0 }
  }
  const lastSynced = Number(message.lastSynced)
  return message.token ? { lastSynced, token: message.token } : { lastSynced }
}

async function storage<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op()
  } catch (cause) {
    throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, 'could not read or write known peers', { cause })
  }
}
