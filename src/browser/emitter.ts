import type { EventMap } from '../core/emitter.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { ReplicatedEmitter, type EventPeerMessage } from '../sync/replicated.js'
import type { FrameChannel } from '../transport/channel.js'
import { connectWebSocket } from '../transport/websocket.js'

/** HyperEmitter for browsers: the core plus WebSocket replication through a hub. */
export class BrowserHyperEmitter<E extends EventMap = EventMap> extends ReplicatedEmitter<E> {
  protected dial(address: string): Promise<FrameChannel> {
    return connectWebSocket(address, { maxFrameSize: this.replication.maxFrameSize })
  }

  protected pickAddress(addresses: EventPeerMessage['addresses']): string | undefined {
    return addresses.find((a) => a.url)?.url
  }

  protected toAddress(target: string | number): string {
    if (typeof target === 'string' && /^wss?:\/\//.test(target)) return target
    throw new HyperEmitterError(
      ErrorCodes.NOT_SUPPORTED,
      `browsers connect over WebSocket only: pass a ws:// or wss:// URL, not ${String(target)}`,
    )
  }
}
