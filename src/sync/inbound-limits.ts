/**
 * Bounds on what one Nodes frame from a peer may cost before the log sees
 * it: nodes per frame and links per node, counted in place.
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { AddOptions, SyncableLog } from '../core/types.js'
import { VarintReader } from '../core/bytes/varint.js'
import { MAX_LINKS_PER_APPEND } from '../core/codec/node.js'

/** Default most nodes in one Nodes frame: a sender's default maxInFlight, which caps its frames. */
export const DEFAULT_MAX_NODES_PER_FRAME = 8192
/** Default most links one node may carry: twice what this log ever writes (MAX_LINKS_PER_APPEND). */
export const DEFAULT_MAX_LINKS_PER_NODE = 2 * MAX_LINKS_PER_APPEND

const TAG_WRITER = 0x0a
const TAG_SEQ = 0x10
const TAG_LINK = 0x1a

export interface InboundLimits {
  /** Most nodes in one Nodes frame (default 8192). */
  maxNodesPerFrame?: number
  /** Most links one received node may carry (default 64, at least 32). */
  maxLinksPerNode?: number
}

/** Throws INVALID_ARGUMENT unless each limit given is a positive integer, and maxLinksPerNode at least MAX_LINKS_PER_APPEND. */
export function checkInboundLimits(limits: InboundLimits): Required<InboundLimits> {
  const out = {
    maxNodesPerFrame: limits.maxNodesPerFrame ?? DEFAULT_MAX_NODES_PER_FRAME,
    maxLinksPerNode: limits.maxLinksPerNode ?? DEFAULT_MAX_LINKS_PER_NODE,
  }
  for (const [option, value] of Object.entries(out)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${option} must be a positive integer, got ${value}`, { details: { option } })
    }
  }
  if (out.maxLinksPerNode < MAX_LINKS_PER_APPEND) {
    // Lower would refuse nodes any honest log writes.
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `maxLinksPerNode must be at least ${MAX_LINKS_PER_APPEND}, got ${out.maxLinksPerNode}`, {
      details: { option: 'maxLinksPerNode' },
    })
  }
  return out
}

/**
 * `log` as replication sessions see it: addMany() refuses a frame over the
 * limits with LIMIT_EXCEEDED before any of it is decoded, hashed or looked
 * up, and stores nothing of it. (A frame is not split for the log: one
 * signature per writer covers the whole frame.)
 */
export function limitInbound(log: SyncableLog, limits: InboundLimits = {}): SyncableLog {
  const { maxNodesPerFrame, maxLinksPerNode } = checkInboundLimits(limits)
  return {
    get writer() {
      return log.writer
    },
    get length() {
      return log.length
    },
    get writerKey() {
      return log.writerKey
    },
    sign: (message) => log.sign(message),
    verifySignature: (publicKey, message, signature) => log.verifySignature(publicKey, message, signature),
    signaturesFor: (entries, withKey) => log.signaturesFor(entries, withKey),
    clock: () => log.clock(),
    readMissingPages: (remote) => log.readMissingPages(remote),
    onChange: (listener) => log.onChange(listener),
    tipOf: log.tipOf && ((hex) => log.tipOf!(hex)),
    keyAt: log.keyAt && ((writer, seq) => log.keyAt!(writer, seq)),
    rechain: log.rechain && ((fromSeq) => log.rechain!(fromSeq)),
    addMany(nodes: Uint8Array[], origin?: unknown, options?: AddOptions) {
      if (nodes.length > maxNodesPerFrame) {
        return Promise.reject(limitExceeded(`a frame of ${nodes.length} nodes is over maxNodesPerFrame (${maxNodesPerFrame})`, { maxNodesPerFrame }))
      }
      for (let i = 0; i < nodes.length; i++) {
        const links = countLinks(nodes[i])
        if (links > maxLinksPerNode) {
          return Promise.reject(limitExceeded(`node ${i} of a frame has ${links} links, over maxLinksPerNode (${maxLinksPerNode})`, { maxLinksPerNode, index: i }))
        }
      }
      return log.addMany(nodes, origin, options)
    },
  }
}

/**
 * Links of a node laid out canonically (writer, seq, then its links), read
 * in place; 0 for other layouts, which the log refuses anyway.
 */
export function countLinks(node: Uint8Array): number {
  if (node.length < 2 || node[0] !== TAG_WRITER) return 0
  let pos = 2 + node[1]
  if (node[pos] !== TAG_SEQ) return 0
  const reader = new VarintReader(node, pos + 1)
  if (reader.next() < 0) return 0
  pos = reader.pos
  let links = 0
  while (pos + 1 < node.length && node[pos] === TAG_LINK) {
    links++
    // A link's length fits one varint byte when it is the 32 bytes the log accepts.
    pos += 2 + node[pos + 1]
  }
  return links
}

function limitExceeded(message: string, details: Record<string, unknown>): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.LIMIT_EXCEEDED, message, { details })
}
