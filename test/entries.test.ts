// Which entry accepts which schema: hyperemitter/lean (src/lean.ts) takes
// generated descriptors only, so the .proto parser stays out of its bundle;
// the full browser entry and the Node entry accept text too. Each test loads
// the entry into a fresh module graph, without the text parser the test
// setup hands to the shared one (test/helpers/text-schemas.ts).
import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it, vi } from 'vitest'

const TEXT = 'syntax = "proto3"; message Note { string text = 1; }'
const closers: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
})

function db(): MemoryLevel<Uint8Array, Uint8Array> {
  return new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
}

async function fresh<T>(path: string): Promise<T> {
  vi.resetModules()
  return (await import(path)) as T
}

type Entry = typeof import('../src/lean.js')

describe('entries and text schemas', () => {
  it('hyperemitter/lean refuses .proto text with INVALID_SCHEMA naming the entry that takes it', async () => {
    const { HyperEmitter, ErrorCodes, isHyperEmitterError } = await fresh<Entry>('../src/lean.js')
    let thrown: unknown
    try {
      HyperEmitter(db(), TEXT)
    } catch (err) {
      thrown = err
    }
    expect(isHyperEmitterError(thrown, ErrorCodes.INVALID_SCHEMA)).toBe(true)
    expect((thrown as Error).message).toMatch(/import "hyperemitter" for \.proto text/)
  })

  it('hyperemitter/lean emits and delivers with generated descriptors', async () => {
    const { HyperEmitter } = await fresh<Entry>('../src/lean.js')
    const { AddressSchema } = await import('../src/gen/hyperemitter/v1/peer_pb.js')
    const emitter = HyperEmitter(db(), [AddressSchema])
    closers.push(() => emitter.close())
    const got: unknown[] = []
    emitter.on('Address', (m) => void got.push(m))
    await emitter.emit('Address', { ip: '127.0.0.1', port: 9, url: '' })
    await vi.waitFor(() => expect(got).toEqual([{ ip: '127.0.0.1', port: 9, url: '' }]), { timeout: 5_000 })
  })

  for (const [name, path] of [
    ['the full browser entry', '../src/browser.js'],
    ['the Node entry', '../src/index.js'],
  ]) {
    it(`${name} accepts .proto text`, async () => {
      const { HyperEmitter } = await fresh<Entry>(path)
      const emitter = HyperEmitter(db(), TEXT)
      closers.push(() => emitter.close())
      expect(Object.keys(emitter.messages)).toContain('Note')
      await emitter.emit('Note', { text: 'hi' })
    })
  }
})
