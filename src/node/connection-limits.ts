import { ErrorCodes, HyperEmitterError } from '../core/errors.js'

/** Default cap on connections held at once. */
export const DEFAULT_MAX_CONNECTIONS = 1024
/** Default cap on connections held at once from one remote address. */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 32
/** Default share of maxConnections kept for addresses that authenticated before. */
export const DEFAULT_RESERVED_FRACTION = 1 / 8
/** Addresses remembered as having authenticated (oldest forgotten first). */
const KNOWN_ADDRESSES = 4096

export interface ConnectionLimitOptions {
  maxConnections?: number
  maxConnectionsPerAddress?: number
  reservedConnections?: number
}

/** Why a connection was refused, or undefined when admitted. */
export type Refusal = 'total' | 'address' | 'unauthenticated'

/**
 * Counts a hub's connections: in total, per remote address, and those not
 * yet authenticated. Unauthenticated connections may fill all but
 * `reservedConnections` slots; the rest stay free for addresses that
 * authenticated before, so a flood of idle sockets cannot lock them out.
 */
export class ConnectionLimits {
  readonly maxConnections: number
  readonly maxConnectionsPerAddress: number
  readonly reservedConnections: number
  private total = 0
  private unauthenticated = 0
  private readonly perAddress = new Map<string, number>()
  /** Insertion-ordered, so the oldest is dropped first. */
  private readonly known = new Set<string>()
  private readonly held = new Map<object, { address: string; authenticated: boolean }>()

  /** Throws INVALID_ARGUMENT for a bound that is not a positive integer, or a reserve not below maxConnections. */
  constructor(options: ConnectionLimitOptions) {
    this.maxConnections = positiveInt(options.maxConnections ?? DEFAULT_MAX_CONNECTIONS, 'maxConnections')
    this.maxConnectionsPerAddress = positiveInt(options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, 'maxConnectionsPerAddress')
    const reserved = options.reservedConnections ?? Math.floor(this.maxConnections * DEFAULT_RESERVED_FRACTION)
    if (!Number.isInteger(reserved) || reserved < 0 || reserved >= this.maxConnections) {
      throw new HyperEmitterError(
        ErrorCodes.INVALID_ARGUMENT,
        `reservedConnections must be an integer from 0 to maxConnections - 1, got ${reserved}`,
        { details: { option: 'reservedConnections' } },
      )
    }
    this.reservedConnections = reserved
  }

  /** Count `connection` from `address` in, or say which bound refuses it. */
  admit(connection: object, address: string): Refusal | undefined {
    if (this.held.has(connection)) return undefined
    const key = normalize(address)
    if (this.total >= this.maxConnections) return 'total'
    if ((this.perAddress.get(key) ?? 0) >= this.maxConnectionsPerAddress) return 'address'
    if (this.unauthenticated >= this.maxConnections - this.reservedConnections && !this.known.has(key)) return 'unauthenticated'
    this.held.set(connection, { address: key, authenticated: false })
    this.total++
    this.unauthenticated++
    this.perAddress.set(key, (this.perAddress.get(key) ?? 0) + 1)
    return undefined
  }

  /** The peer on `connection` was authenticated: its slot leaves the unauthenticated pool, its address is known from now on. */
  authenticated(connection: object): void {
    const entry = this.held.get(connection)
    if (entry === undefined || entry.authenticated) return
    entry.authenticated = true
    this.unauthenticated--
    this.known.delete(entry.address)
    this.known.add(entry.address)
    if (this.known.size > KNOWN_ADDRESSES) this.known.delete(this.known.values().next().value!)
  }

  /** `connection` closed: its slot is free. */
  release(connection: object): void {
    const entry = this.held.get(connection)
    if (entry === undefined) return
    this.held.delete(connection)
    this.total--
    if (!entry.authenticated) this.unauthenticated--
    const left = (this.perAddress.get(entry.address) ?? 1) - 1
    if (left === 0) this.perAddress.delete(entry.address)
    else this.perAddress.set(entry.address, left)
  }
}

/** An IPv4 peer seen through a dual-stack socket ("::ffff:1.2.3.4") is the same address as "1.2.3.4". */
function normalize(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}

function positiveInt(value: number, option: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${option} must be a positive integer, got ${value}`, { details: { option } })
  }
  return value
}
