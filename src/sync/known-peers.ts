import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire'
import type { Db } from '../core/emitter.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { KnownPeerSchema, type KnownPeer } from '../gen/hyperemitter/v1/peer_pb.js'
import type { KnownPeerRecord, KnownPeerStore } from './peers.js'

/**
 * Field number of the token in a KnownPeer record: `string token = 3`, on
 * the wire exactly as if proto/hyperemitter/v1/peer.proto declared it. The
 * generated KnownPeer does not have it, so it travels as an unknown field:
 * records written before tokens were stored simply lack it, and code that
 * only knows fields 1 and 2 skips it.
 */
const TOKEN_FIELD = 3

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
    const message = create(KnownPeerSchema, { address, lastSynced: BigInt(lastSynced) })
    if (token) message.$unknown = [{ no: TOKEN_FIELD, wireType: WireType.LengthDelimited, data: new BinaryWriter().string(token).finish() }]
    const value = toBinary(KnownPeerSchema, message)
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
  let token: string | undefined
  // The last occurrence wins, as for any protobuf scalar field.
  for (const field of message.$unknown ?? []) {
    if (field.no !== TOKEN_FIELD || field.wireType !== WireType.LengthDelimited) continue
    try {
      token = new BinaryReader(field.data).string()
    } catch {
      token = undefined
    }
  }
  return token ? { lastSynced: Number(message.lastSynced), token } : { lastSynced: Number(message.lastSynced) }
}

async function storage<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op()
  } catch (cause) {
    throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, 'could not read or write known peers', { cause })
  }
}
