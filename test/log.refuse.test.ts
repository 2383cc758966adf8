/**
 * Log.addMany with onRefused: one writer's bad nodes are refused (nothing of
 * them stored, told once) while the other writers of the same request land.
 */
import { MemoryLevel } from 'memory-level'
import { beforeAll, describe, expect, it } from 'vitest'
import { toHex } from '../src/core/bytes/bytes.js'
import { ErrorCodes } from '../src/core/errors.js'
import { encodeNode, decodeNode, Log } from '../src/core/log/log.js'
import type { LogEntry, NodeSignature, Refusal } from '../src/core/types.js'
import { readMissing } from './helpers/missing.js'
import { signatureOver } from './helpers/signing.js'

const enc = (s: string) => new TextEncoder().encode(s)

async function openLog(): Promise<Log> {
  const log = new Log(new MemoryLevel())
  await log.open()
  return log
}

async function entries(log: Log, remote = new Map<string, number>()): Promise<LogEntry[]> {
  const out: LogEntry[] = []
  for await (const e of readMissing(log, remote)) out.push(e)
  return out
}

async function addRefusing(log: Log, nodes: Uint8Array[], signatures: NodeSignature[]): Promise<{ stored: LogEntry[]; refused: Refusal[] }> {
  const refused: Refusal[] = []
  const stored = await log.addMany(nodes, undefined, { signatures, onRefused: (r) => refused.push(r) })
  return { stored, refused }
}

let a: Log
let b: Log
let aNodes: Uint8Array[]
let bNodes: Uint8Array[]
let aSig: NodeSignature
let bSig: NodeSignature

beforeAll(async () => {
  a = await openLog()
  b = await openLog()
  for (let i = 0; i < 3; i++) await a.append(enc(`a${i}`))
  for (let i = 0; i < 3; i++) await b.append(enc(`b${i}`))
  aNodes = (await entries(a)).map((e) => e.bytes)
  bNodes = (await entries(b)).map((e) => e.bytes)
  aSig = await signatureOver(a, aNodes[2])
  bSig = await signatureOver(b, bNodes[2])
})

describe('addMany with onRefused', () => {
  it("refuses the writer whose signature fails and stores the other writers' nodes", async () => {
    const log = await openLog()
    const bad = { ...bSig, signature: bSig.signature.slice().fill(7, 0, 4) }
    const { stored, refused } = await addRefusing(log, [...aNodes, ...bNodes], [aSig, bad])
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3])
    expect(refused).toHaveLength(1)
    expect(refused[0].writerHex).toBe(b.writerId)
    expect(refused[0].seq).toBe(1)
    expect(refused[0].error.code).toBe(ErrorCodes.BAD_SIGNATURE)
    expect(log.clock()).toEqual(new Map([[a.writerId, 3]]))
    // The refused writer's key was not learnt from a frame it failed in...
    expect(log.authorOf(b.writer)).toBeUndefined()
    // ...and its honest nodes land later.
    expect(await log.addMany(bNodes, undefined, { signatures: [bSig] })).toHaveLength(3)
  })

  it('skips nodes it already holds and stores the rest, with nothing refused', async () => {
    const log = await openLog()
    await log.addMany(aNodes.slice(0, 2), undefined, { signatures: [await signatureOver(a, aNodes[1])] })
    // A relay sends A's whole chain again, with its third node and B's.
    const { stored, refused } = await addRefusing(log, [...aNodes, ...bNodes], [aSig, bSig])
    expect(refused).toEqual([])
    expect(stored.map((e) => [toHex(e.writer), e.seq])).toEqual([[a.writerId, 3], [b.writerId, 1], [b.writerId, 2], [b.writerId, 3]])
    expect(log.clock()).toEqual(new Map([[a.writerId, 3], [b.writerId, 3]]))
  })

  it('refuses a fork from the forking seq, and whatever links the refused nodes, keeping the rest', async () => {
    const log = await openLog()
    await log.addMany(aNodes.slice(0, 2), undefined, { signatures: [await signatureOver(a, aNodes[1])] })
    // A second, validly signed node of A at seq 2.
    const first = decodeNode(aNodes[0])
    const fork = encodeNode({ writer: a.writer, seq: 2, links: [await keyOf(log, 1)], value: enc('the copy') })
    expect(decodeNode(fork).links[0]).toEqual((await entries(log))[0].key)
    // C links the forked node; B stands alone.
    const c = await openLog()
    await c.addMany([aNodes[0], fork], undefined, { signatures: [await signatureOver(a, fork)] })
    const cOwn = await c.append(enc('c on the fork'))
    const { stored, refused } = await addRefusing(log, [aNodes[0], fork, cOwn.bytes, ...bNodes], [await signatureOver(a, fork), await signatureOver(c, cOwn.bytes), bSig])
    expect(first.seq).toBe(1)
    expect(stored.map((e) => toHex(e.writer))).toEqual([b.writerId, b.writerId, b.writerId])
    const byWriter = new Map(refused.map((r) => [r.writerHex, r]))
    expect(byWriter.get(a.writerId)!.seq).toBe(2)
    expect(byWriter.get(a.writerId)!.error.code).toBe(ErrorCodes.SEQ_MISMATCH)
    expect(byWriter.get(a.writerId)!.error.details?.fork).toBe(true)
    expect(byWriter.get(c.writerId)!.error.code).toBe(ErrorCodes.MISSING_LINK)
    expect(refused).toHaveLength(2)
    expect(log.clock()).toEqual(new Map([[a.writerId, 2], [b.writerId, 3]]))
  })

  it("drops a refused writer's earlier nodes of the request too (its signature covers its last node only)", async () => {
    const log = await openLog()
    // A's seq 3 replaced by a gap: seq 4.
    const gap = encodeNode({ ...decodeNode(aNodes[2]), seq: 4 })
    const { stored, refused } = await addRefusing(log, [aNodes[0], aNodes[1], gap, ...bNodes], [await signatureOver(a, gap), bSig])
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3])
    expect(stored.every((e) => toHex(e.writer) === b.writerId)).toBe(true)
    expect(refused.map((r) => [r.writerHex, r.seq, r.error.code, r.error.details?.seq])).toEqual([[a.writerId, 1, ErrorCodes.SEQ_MISMATCH, 4]])
  })

  it('still rejects the whole request for an undecodable node', async () => {
    const log = await openLog()
    await expect(addRefusing(log, [...aNodes, Uint8Array.of(1, 2, 3)], [aSig])).rejects.toMatchObject({ code: ErrorCodes.INVALID_NODE })
    expect(log.length).toBe(0)
  })
})

async function keyOf(log: Log, change: number): Promise<Uint8Array> {
  for await (const e of log.read({ since: change - 1, limit: 1 })) return e.key
  throw new Error('no entry')
}
