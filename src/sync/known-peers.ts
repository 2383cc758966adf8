import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import type { Db } from '../core/emitter.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { KnownPeerSchema } from '../gen/hyperemitter/v1/peer_pb.js'
import type { KnownPeerStore } from './peers.js'

/**
 * Peers this emitter connected to, kept in their own sublevel of the
 * application's db so a restart reconnects by itself. Also remembers the
 * last EventPeer announced, so an unchanged address is not announced again.
 */
export class DbKnownPeers implements KnownPeerStore {
  private readonly peers
  private readonly meta

  constructor(db: Db) {
    const root = db.sublevel<string, Uint8Array>('hyperemitter-peers', { keyEncoding: 'utf8', valueEncoding: 'view' })
    this.peers = root.sublevel<string, Uint8Array>('known', { keyEncoding: 'utf8', valueEncoding: 'view' })
    this.meta = root.sublevel<string, Uint8Array>('meta', { keyEncoding: 'utf8', valueEncoding: 'view' })
  }

  /** Addresses of every remembered peer. */
  async list(): Promise<string[]> {
    return storage(() => this.peers.keys().all())
  }

  /** Remember (or refresh) a peer; lastSynced is Unix ms of its last completed catch-up (0: never). */
  async remember(address: string, lastSynced: number): Promise<void> {
    const value = toBinary(KnownPeerSchema, create(KnownPeerSchema, { address, lastSynced: BigInt(lastSynced) }))
    await storage(() => this.peers.put(address, value))
  }

  async forget(address: string): Promise<void> {
    await storage(() => this.peers.del(address))
  }

  /** The last synced time recorded for `address`, or undefined. */
  async lastSynced(address: string): Promise<number | undefined> {
    const value = await storage(() => this.peers.get(address))
    return value === undefined ? undefined : Number(fromBinary(KnownPeerSchema, value).lastSynced)
  }

  /** Bytes of the last EventPeer this emitter announced, if any. */
  async lastAnnounced(): Promise<Uint8Array | undefined> {
    return storage(() => this.meta.get('announced'))
  }

  async setLastAnnounced(bytes: Uint8Array): Promise<void> {
    await storage(() => this.meta.put('announced', bytes))
  }
}

async function storage<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op()
  } catch (cause) {
    throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, 'could not read or write known peers', { cause })
  }
}
