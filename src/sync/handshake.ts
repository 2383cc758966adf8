/**
 * The key proof: each side signs the other's fresh challenge in its Identity.
 * A peer is accepted once its proof checks out and authenticate agrees; an
 * accepting side (a hub) shows its own Identity only then.
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { SyncableLog } from '../core/types.js'
import { toHex } from '../core/bytes/bytes.js'
import { sha256 } from '../core/bytes/hash.js'
import { PUBLIC_KEY_BYTES } from '../core/identity/ed25519.js'
import { CHAIN_BYTES, CHALLENGE_BYTES, handshakeMessage, writerIdOf } from '../core/identity/writer-key.js'
import { handshakeFrame, identityFrame, PROTOCOL_VERSION, type FrameOf } from './protocol.js'
import { protocolError } from './session-errors.js'
import type { SessionOptions } from './session-options.js'

/** What the proof needs of the session around it. */
export interface ProofHost {
  readonly closed: boolean
  readonly remote: string
  send(frame: Uint8Array): void
}

type ProofLog = Pick<SyncableLog, 'writer' | 'writerKey' | 'sign' | 'verifySignature'>

export class PeerProof {
  /** The peer's Identity was verified and authenticated: only now does anything of the log leave, and Pings get Pongs. */
  accepted = false
  /** The remote's writer id and public key (hex), once accepted. */
  remoteWriter?: string
  remoteKey?: string

  /** Our fresh challenge, which the peer's Identity must sign, and the peer's. */
  private readonly challenge = crypto.getRandomValues(new Uint8Array(CHALLENGE_BYTES))
  private peerChallenge?: Uint8Array
  private identitySent = false
  private gotIdentity = false
  private readonly wantLive: boolean
  private readonly token: string
  private readonly authenticate?: SessionOptions['authenticate']
  private readonly accepting: boolean

  constructor(
    private readonly log: ProofLog,
    private readonly host: ProofHost,
    options: SessionOptions,
  ) {
    this.wantLive = options.live ?? true
    this.token = options.token ?? ''
    this.authenticate = options.authenticate
    this.accepting = options.accepting === true
  }

  /** Our Handshake, the session's first frame. */
  handshakeFrame(maxFrameSize: number): Uint8Array {
    return handshakeFrame(this.wantLive, this.challenge, PROTOCOL_VERSION, maxFrameSize)
  }

  /** Checks the peer's Handshake; resolves to the session's mode: live when both sides want it. */
  async onHandshake(hs: FrameOf<'handshake'>): Promise<boolean> {
    if (hs.protocolVersion !== PROTOCOL_VERSION) {
      throw new HyperEmitterError(
        ErrorCodes.VERSION_MISMATCH,
        `peer speaks protocol version ${hs.protocolVersion}, this side speaks version ${PROTOCOL_VERSION}`,
        { details: { local: PROTOCOL_VERSION, remote: hs.protocolVersion } },
      )
    }
    if (hs.challenge.byteLength !== CHALLENGE_BYTES) throw protocolError(`handshake challenge is ${hs.challenge.byteLength} bytes, expected ${CHALLENGE_BYTES}`)
    this.peerChallenge = hs.challenge.slice()
    const live = this.wantLive && hs.live
    // A dialing side proves itself first; an accepting one waits to have accepted the peer.
    if (!this.accepting) await this.sendIdentity()
    return live
  }

  /**
   * Verifies the peer's Identity and asks the authenticate hook; throws
   * BAD_SIGNATURE, UNAUTHORIZED or PROTOCOL_ERROR. Resolves true once the
   * peer is accepted and our own Identity is out, false if the session
   * closed meanwhile.
   */
  async onIdentity(identity: FrameOf<'identity'>): Promise<boolean> {
    if (this.gotIdentity) throw protocolError('second identity')
    this.gotIdentity = true
    const key = identity.key
    if (key === undefined || key.publicKey.byteLength !== PUBLIC_KEY_BYTES || key.chain.byteLength !== CHAIN_BYTES) {
      throw protocolError('identity without a well-formed key')
    }
    const writerBytes = writerIdOf(sha256, key)
    const writer = toHex(writerBytes)
    if (writer === toHex(this.log.writer)) throw protocolError(`connected to self (peer announced our own writer ${writer})`)
    const publicKey = toHex(key.publicKey)
    const remote = this.host.remote
    if (!(await this.log.verifySignature(key.publicKey, handshakeMessage(this.challenge, writerBytes), identity.signature))) {
      throw new HyperEmitterError(ErrorCodes.BAD_SIGNATURE, `peer at ${remote} did not prove its key ${publicKey}`, {
        details: { publicKey, remote },
      })
    }
    if (this.host.closed) return false
    if (this.authenticate) {
      let accepted = false
      let cause: unknown
      try {
        accepted = (await this.authenticate({ writer, publicKey, token: identity.token, remote })) === true
      } catch (err) {
        cause = err
      }
      if (this.host.closed) return false
      if (!accepted) {
        throw new HyperEmitterError(ErrorCodes.UNAUTHORIZED, `peer ${writer} at ${remote} was refused`, {
          cause,
          details: { writer, publicKey, remote },
        })
      }
    }
    this.accepted = true
    this.remoteWriter = writer
    this.remoteKey = publicKey
    await this.sendIdentity()
    return !this.host.closed
  }

  /** Our Identity: our key, signing the peer's challenge. */
  private async sendIdentity(): Promise<void> {
    if (this.identitySent || this.host.closed) return
    this.identitySent = true
    const signature = await this.log.sign(handshakeMessage(this.peerChallenge!, this.log.writer))
    if (!this.host.closed) this.host.send(identityFrame(this.log.writerKey, signature, this.token))
  }
}
