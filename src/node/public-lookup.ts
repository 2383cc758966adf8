import * as dns from 'node:dns'
import type { LookupFunction } from 'node:net'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { isPrivateHost, isPrivateIP } from '../sync/addresses.js'

/**
 * A `lookup` for net.connect and `ws` that fails when a name resolves to
 * any private address: the check happens on the very addresses the socket
 * then connects to, so a name that changes its answer (DNS rebinding)
 * cannot slip a private one in after a check.
 */
export const publicLookup: LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '', 0)
    const refused = addresses.find((a) => isPrivateIP(a.address))
    if (refused !== undefined || addresses.length === 0) {
      return callback(privateAddress(`${hostname} resolves to ${refused?.address ?? 'nothing'}`) as NodeJS.ErrnoException, '', 0)
    }
    if (options.all) (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses)
    else callback(null, addresses[0].address, addresses[0].family)
  })
}

/** Throws CONNECTION_FAILED when `host` is a private address or a name for this machine (names are checked again on connect, by publicLookup). */
export function checkPublicHost(host: string): void {
  if (isPrivateHost(host) === true) throw privateAddress(host)
}

function privateAddress(what: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `refused to dial a private address announced by a peer (${what})`, {
    details: { reason: 'private-address' },
  })
}
